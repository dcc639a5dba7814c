"""TTFT, TPOT, ITL, E2EL: p50, p90, p99 and mean, for the current segment and the whole run."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from llmsurge.metrics.bus import Snapshot
from llmsurge.widgets.format import ms

ROWS = (("TTFT", "ttft"), ("TTFC", "ttfc"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2EL", "e2el"))


class LatencyTable(Static):
    """Latency percentiles side by side: this segment | whole run (the run columns need room)."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        t = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
        t.add_column("ms", style="bold", no_wrap=True)
        scopes = ("seg", "run") if self.size.width >= 76 else ("seg",)
        for scope in scopes:
            for q in ("p50", "p90", "p99", "mean"):
                t.add_column(
                    f"{scope} {q}" if q == "p50" else q, justify="right", style="" if scope == "seg" else "dim"
                )
        for label, key in ROWS:
            cells = []
            for stats in (snap.segment_stats, snap.run_stats)[: len(scopes)]:
                cells += [
                    ms(stats.get(f"median_{key}_ms")),
                    ms(stats.get(f"p90_{key}_ms")),
                    ms(stats.get(f"p99_{key}_ms")),
                    ms(stats.get(f"mean_{key}_ms")),
                ]
            t.add_row(label, *cells)
        self.update(t, layout=False)  # the pane's size is set by CSS: skip a screen reflow
