"""TTFT, TTFC, TPOT, ITL, E2EL: p50, p90, p99 and mean, for the current segment and the whole run, with n."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import compact, ms
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.roles import RoleStyles

ROWS = (("TTFT", "ttft"), ("TTFC", "ttfc"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2EL", "e2el"))
QUANTILES = (50.0, 90.0, 99.0)


class LatencyTable(RoleStyles, Static, can_focus=True):
    """Latency percentiles side by side: this segment | whole run (the run columns need room). A percentile that
    rests on fewer values than it needs is dimmed and starred."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        muted = self.role("muted")
        t = Table(expand=True, box=None, padding=(0, 1), header_style=self.role("strong"))
        t.add_column("ms", style=self.role("strong"), no_wrap=True)
        width = self.size.width
        scopes = ("seg", "run") if width >= 84 else ("seg",)
        names = ("p50", "p90", "p99", "mean", "n") if width >= 50 else ("p50", "p90", "p99", "n")
        for scope in scopes:
            for name in names:
                t.add_column(f"{scope} {name}" if name == "p50" else name, justify="right", no_wrap=True)
        bunched = snap.segment_figures.bunched
        for label, key in ROWS:
            if key == "itl" and bunched:
                label = "ITL†"  # per chunk: the note below says how many gaps were bunched
            cells: list[Text] = []
            for figures in (snap.segment_figures, snap.run_figures)[: len(scopes)]:
                dist = figures[key]
                for q in QUANTILES:
                    value = dist.at(q)
                    weak = dist.thin(q)
                    text = "—" if value is None else ms(value) + ("*" if weak else "")
                    cells.append(Text(text, style=muted if weak else ""))
                if "mean" in names:
                    cells.append(Text(ms(dist.mean) if dist.n else "—"))
                cells.append(Text(compact(dist.n), style=muted))
            t.add_row(label, *cells)
        if bunched:
            share = snap.segment_figures.itl_bunched_share or 0.0
            long = f"† per chunk: {share:.0%} of gaps < 0.1 ms (several tokens per send); per token: TPOT"
            t.caption = long if len(long) <= width else f"† {share:.0%} of gaps < 0.1 ms; per token: TPOT"
            t.caption_style = muted
            t.caption_justify = "left"
        update_static(self, t)
