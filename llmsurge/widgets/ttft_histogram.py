"""TTFT histogram of the current segment with p50 / p90 / p99 marked."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import ms, percentile_ms
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.pane_plot import PanePlot


class TtftHistogram(Vertical, can_focus=True):
    """Bars of TTFT counts (ms) and vertical lines at the percentiles."""

    def compose(self) -> ComposeResult:
        yield PanePlot(id="ttft-plot", margin_left=5)
        yield Static(id="ttft-marks")

    baseline: SavedRun | None = None
    """A saved run whose TTFT distribution at the current load is drawn over this one's."""

    def on_mount(self) -> None:
        self._plot_ready = True
        self.border_subtitle = "x: ms · current segment"
        self._key: tuple[float | str | None, ...] | None = None

    def show(self, snap: Snapshot) -> None:
        """Redraw when the histogram changed."""
        if not getattr(self, "_plot_ready", False):  # the plot's own children are not composed yet
            return
        edges, counts = snap.ttft_hist
        slo_ms = snap.slo.limits["ttft"] * 1000.0 if "ttft" in snap.slo.limits else None
        size = self.query_one(PanePlot).size  # ticks are fitted to the plot's size: resized, it is drawn again
        key = (snap.segment, slo_ms, id(self.baseline), size.width, size.height, self.app.theme, *counts)
        if key == self._key:
            return
        self._key = key
        plot = self.query_one(PanePlot)
        plot.clear()
        ttft = snap.segment_figures["ttft"]
        theme = self.app.current_theme
        marks = self.query_one("#ttft-marks", Static)
        if not counts:
            plot.fit_ticks((0.0, 1.0), (0.0, 1.0))
            update_static(marks, "waiting for the first completed request of this segment")
            return
        centers = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
        width = edges[1] - edges[0]
        plot.bar(centers, list(counts), width=width * 0.9, bar_style=theme.primary)
        colors = {"p50": theme.success or "green", "p90": theme.warning or "yellow", "p99": theme.error or "red"}
        for name, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0)):
            v = ttft.at(q)
            if v is not None:
                plot.add_v_line(min(max(v, edges[0]), edges[-1]), line_style=colors[name])
        base = self.baseline.values("ttft", snap.load_label) if self.baseline else None
        if base is not None and len(base):  # the baseline's histogram on the same bins, scaled to this n
            base_counts, _ = np.histogram(np.clip(base, edges[0], edges[-1]), bins=list(edges))
            scale = sum(counts) / max(1, int(base_counts.sum()))
            plot.plot(centers, [c * scale for c in base_counts], line_style=theme.secondary or "magenta")
        hi = edges[-1]
        if slo_ms is not None and slo_ms <= edges[-1] + 2 * (edges[-1] - edges[0]):
            # the SLO's threshold, in view when it is near; one far to the right would squeeze the bars into a
            # few columns, so it is then only named below ("SLO 5,000 →")
            plot.add_v_line(slo_ms, line_style=theme.accent or "magenta")
            hi = max(hi, slo_ms * 1.05)
        plot.set_xlimits(edges[0], hi)
        plot.set_ylimits(0, None)
        plot.fit_ticks((edges[0], hi), (0.0, max(counts) * 1.05 or 1.0), whole_y=True)
        # (priority: lower stays longer, part): whole figures only, the least important dropped first; p99 last
        parts: list[tuple[int, Text]] = [
            (3, Text(f"p50 {percentile_ms(ttft.at(50.0), ttft.n, 50.0)}", style=colors["p50"])),
            (4, Text(f"p90 {percentile_ms(ttft.at(90.0), ttft.n, 90.0)}", style=colors["p90"])),
            (0, Text(f"p99 {percentile_ms(ttft.at(99.0), ttft.n, 99.0)} ms", style=colors["p99"])),
        ]
        if slo_ms is not None:  # a far threshold is only said here, so it stays longer than the other marks
            parts.append((1 if slo_ms > hi else 2, Text(f"SLO {ms(slo_ms)}" + (" →" if slo_ms > hi else ""))))
        parts.append((5, Text(f"n={sum(counts):,}")))
        while len(parts) > 1 and sum(p.cell_len + 2 for _, p in parts) > marks.size.width:
            parts.remove(max(parts, key=lambda part: part[0]))
        update_static(marks, Text("  ").join(p for _, p in parts))
