"""The segments table: one row per load setting — the saturation table, built live.

Throughputs are what arrived while the segment was open; latencies are over the requests that started in it. A
percentile resting on fewer requests than it needs (p99 wants about 100) is dimmed and starred, and a segment
measured while other processes held the CPU is flagged: its timings are inflated.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from llmsurge.metrics.compare import speed_change
from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import SegmentRow, Snapshot
from llmsurge.metrics.stats import min_samples
from llmsurge.widgets.format import ms, num
from llmsurge.widgets.roles import RoleStyles

COLUMNS = ("#", "load", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "cache", "done", "failed")


class SegmentsTable(RoleStyles, DataTable[Text]):
    """Rows are rebuilt only when a figure changed."""

    baseline: SavedRun | None = None
    """A saved run: each row gains the change against its figure at the same load."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)
        self._rows: list[tuple[Text, ...]] = []
        self._slo = False
        self._with_base = False
        self.border_subtitle = "* too few requests for that percentile · ! CPU starved"

    def _row(self, s: SegmentRow) -> tuple[Text, ...]:
        muted, bad, warn = self.role("muted"), self.role("bad"), self.role("warn")

        def pct(value: float, q: float) -> Text:
            if s.n and s.n < min_samples(q):
                return Text(f"{ms(value)}*", style=muted)
            return Text(ms(value) if s.n else "—")

        label = Text(s.label)
        if s.starved:
            label.append(" !", style=warn)
        if self._many_presets:  # a user's preset name: text, never markup
            label.append(f" {s.scenario}", style=muted)
        return (
            Text(str(s.index)),
            label,
            Text(num(s.request_throughput, 2)),
            Text(num(s.output_throughput, 0)),
            pct(s.ttft_p50_ms, 50.0),
            pct(s.ttft_p99_ms, 99.0),
            pct(s.tpot_p50_ms, 50.0),
            Text("—" if s.cache_hit_rate is None else f"{s.cache_hit_rate:.0%}"),
            Text(f"{s.completed:,}"),
            Text(f"{s.failed:,}", style=bad if s.failed else ""),
            *([Text("—" if s.good_share is None else f"{s.good_share:.0%}")] if self._slo else []),
            *(self._versus(s) if self.baseline else ()),
        )

    def _versus(self, s: SegmentRow) -> tuple[Text, Text]:
        """Output tok/s and TTFT p99 against the baseline at the same load (``—`` where it ran no such load)."""
        level = self.baseline.level(s.label) if self.baseline else None
        if level is None or not s.n:
            return Text("—"), Text("—")
        out = []
        for base, new, lower in (
            (level.get("output_throughput"), s.output_throughput, False),
            (level.get("p99_ttft_ms"), s.ttft_p99_ms, True),
        ):
            if not base:
                out.append(Text("—"))
                continue
            text, better = speed_change(float(base), float(new), lower)
            arrow = "" if better is None else (" ▲" if better else " ▼")
            out.append(Text(text + arrow, style="" if better is None else self.role("good" if better else "bad")))
        return out[0], out[1]

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``'s segments, newest last (the cursor follows the newest). The preset's name follows
        the load only when the run switched presets (the status line names it otherwise)."""
        self._many_presets = len({s.scenario for s in snap.segments}) > 1
        slo = bool(snap.slo)
        shape = (slo, self.baseline is not None)
        if shape != (self._slo, self._with_base):  # goodput's and the baseline's columns come and go
            self._slo, self._with_base = shape
            self._rows = []
            self.clear(columns=True)
            extra = (("good",) if slo else ()) + (("vs base tok/s", "vs base p99") if self.baseline else ())
            self.add_columns(*COLUMNS, *extra)
        rows = [self._row(s) for s in snap.segments]
        if [tuple(c.plain for c in r) for r in rows] == [tuple(c.plain for c in r) for r in self._rows]:
            return
        follow = self.cursor_row >= len(self._rows) - 1
        self._rows = rows
        self.clear()
        for r in rows:
            self.add_row(*r)
        if follow and rows:
            self.move_cursor(row=len(rows) - 1)
