"""Output tok/s over the last minutes (textual-plot), with segment changes marked, and req/s beneath."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static
from textual_plot import HiResMode

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.pane_plot import PanePlot

WINDOW_S = 300


class RateChart(Vertical, can_focus=True):
    """Token rate per second with a time axis and value labels; a vertical line at each segment start."""

    def compose(self) -> ComposeResult:
        yield PanePlot(id="rate-plot", margin_left=7)
        yield Static(id="rate-req-label")
        yield Sparkline([], id="rate-req")

    baseline: SavedRun | None = None
    """A saved run whose output tok/s at the current load is drawn as a reference line."""

    def on_mount(self) -> None:
        self._plot_ready = True
        self.border_subtitle = "x: seconds since start · lines: segment changes"
        self._last: tuple[object, ...] | None = None

    def show(self, snap: Snapshot) -> None:
        """Redraw when a new second of history has arrived (or segments changed)."""
        if not getattr(self, "_plot_ready", False):  # the plot's own children are not composed yet
            return
        key = (
            len(snap.history),
            len(snap.segment_starts),
            id(self.baseline),
            round(snap.roofline_aggregate or 0),
            self.query_one(PanePlot).size,  # ticks are fitted to the plot's size: a resized chart is drawn again
            self.app.theme,  # and its colours come from the theme
        )
        if snap.history and self._last == key and snap.history[-1][0] == getattr(self, "_last_t", None):
            return
        self._last = key
        hist = snap.history[-WINDOW_S:]
        self._last_t = hist[-1][0] if hist else None
        plot = self.query_one(PanePlot)
        plot.clear()
        theme = self.app.current_theme
        if hist:
            t0 = self._start_offset(snap)
            xs = [h[0] - t0 for h in hist]
            plot.plot(xs, [h[1] for h in hist], line_style=theme.primary, hires_mode=HiResMode.BRAILLE)
            for start in snap.segment_starts[1:]:
                x = start - t0
                if x >= xs[0] - 1:
                    plot.add_v_line(x, line_style=theme.warning or "yellow")
            x_end = max(xs[-1], xs[0] + 10)
            level = self.baseline.level(snap.load_label) if self.baseline else None
            base = level.output_throughput if level else None
            if base:  # the baseline at this load, for reference
                plot.plot([xs[0], x_end], [base, base], line_style=theme.secondary or "magenta", label="baseline")
            top = max([h[1] for h in hist] + [base or 0.0])
            roof = snap.roofline_aggregate
            ceiling_top = None
            if roof and roof <= 3 * max(top, 1.0):  # the roofline, when it is near enough to read against
                plot.plot([xs[0], x_end], [roof, roof], line_style=theme.error or "red", hires_mode=HiResMode.BRAILLE)
                top = max(top, roof)
                ceiling_top = top * 1.08  # room above the line, so the frame does not hide it
            plot.set_xlimits(xs[0], x_end)
            plot.set_ylimits(0, ceiling_top)
            plot.fit_ticks((xs[0], x_end), (0.0, top * 1.05 or 1.0))
        else:
            plot.fit_ticks((0.0, 1.0), (0.0, 1.0))
        update_static(
            self.query_one("#rate-req-label", Static),
            f"completions each second (req/s: the load pane)   segments: {len(snap.segment_starts)}",
        )
        self.query_one(Sparkline).data = [h[2] for h in hist[-120:]] or [0.0]

    @staticmethod
    def _start_offset(snap: Snapshot) -> float:
        """History times are seconds since the bus started; show them since the first segment."""
        return snap.segment_starts[0] if snap.segment_starts else 0.0
