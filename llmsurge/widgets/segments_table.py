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
from llmsurge.metrics.stats import thin
from llmsurge.render.format import num, percentile_ms
from llmsurge.widgets.roles import RoleStyles

COLUMNS = (
    "#",
    "load",
    "req/s",
    "out tok/s",
    "TTFT p50",
    "TTFT p99",
    "TPOT p50",
    "cache",
    "in mean/p90",
    "out mean/p90",
    "done",
    "failed",
    "degen",
)
QUALITY = ("quality",)
GOOD = ("good",)
VERSUS = ("vs base tok/s", "vs base p99")
PRIORITY = (
    "#",
    "load",
    "out tok/s",
    "TTFT p50",
    "TTFT p99",
    "good",
    "vs base tok/s",
    "vs base p99",
    "done",
    "failed",
    "req/s",
    "TPOT p50",
    "cache",
    "quality",
    "degen",
    "in mean/p90",
    "out mean/p90",
)
"""Which columns stay when the pane is narrow: a column is dropped whole, never cut through a number."""


def fit_columns(names: tuple[str, ...], widths: dict[str, int], room: int) -> tuple[str, ...]:
    """The columns (in their usual order) that fit in ``room`` cells, kept by :data:`PRIORITY`."""
    kept: set[str] = set()
    used = 0
    for name in PRIORITY:
        if name in names and used + widths[name] <= room:
            kept.add(name)
            used += widths[name]
    return tuple(n for n in names if n in kept)


class SegmentsTable(RoleStyles, DataTable[Text]):
    """Rows are rebuilt only when a figure (or the columns that fit) changed."""

    baseline: SavedRun | None = None
    """A saved run: each row gains the change against its figure at the same load."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self._shown: tuple[str, ...] = ()
        self._rows: list[tuple[Text, ...]] = []
        self._last: Snapshot | None = None
        self.border_subtitle = "* too few for that percentile · ! CPU starved"

    def _row(self, s: SegmentRow, slo: bool) -> dict[str, Text]:
        muted, bad, warn = self.role("muted"), self.role("bad"), self.role("warn")

        def pct(value: float, q: float) -> Text:
            return Text(percentile_ms(value, s.n, q), style=muted if thin(s.n, q) else "")

        label = Text(s.label)
        if s.starved:
            label.append(" !", style=warn)
        if self._many_presets:  # a user's preset name: text, never markup
            label.append(f" {s.scenario}", style=muted)
        cells = {
            "#": Text(str(s.index)),
            "load": label,
            "req/s": Text(num(s.request_throughput, 2)),
            "out tok/s": Text(num(s.output_throughput, 0)),
            "TTFT p50": pct(s.ttft_p50_ms, 50.0),
            "TTFT p99": pct(s.ttft_p99_ms, 99.0),
            "TPOT p50": pct(s.tpot_p50_ms, 50.0),
            "cache": Text("—" if s.cache_hit_rate is None else f"{s.cache_hit_rate:.0%}"),
            "in mean/p90": Text(f"{s.input_mean:,.0f}/{s.input_p90:,.0f}" if s.n else "—"),
            "out mean/p90": Text(f"{s.output_mean:,.0f}/{s.output_p90:,.0f}" if s.n else "—"),
            "done": Text(f"{s.completed:,}"),
            "failed": Text(f"{s.failed:,}", style=bad if s.failed else ""),
            "degen": Text(f"{s.degenerate:,}", style=warn if s.degenerate else muted),
            "quality": Text("—" if s.quality_score is None else f"{s.quality_score:.0%}"),
        }
        if not s.index:  # a model's or a server's whole run, after the segments: what it has
            cells["#"] = Text("·", style=muted)
            for name in ("req/s", "out tok/s", "TPOT p50", "cache", "in mean/p90", "out mean/p90", "degen", "quality"):
                cells[name] = Text("—", style=muted)
        if slo:
            cells["good"] = Text("—" if s.good_share is None else f"{s.good_share:.0%}")
        if self.baseline is not None:
            cells["vs base tok/s"], cells["vs base p99"] = self._versus(s)
        return cells

    def _versus(self, s: SegmentRow) -> tuple[Text, Text]:
        """Output tok/s and TTFT p99 against the baseline at the same load (``—`` where it ran no such load)."""
        level = self.baseline.level(s.label) if self.baseline else None
        if level is None or not s.n:
            return Text("—"), Text("—")
        out = []
        for base, new, lower in (
            (level.output_throughput, s.output_throughput, False),
            (level.value("p99_ttft_ms"), s.ttft_p99_ms, True),
        ):
            if not base:
                out.append(Text("—"))
                continue
            text, better = speed_change(float(base), float(new), lower)
            arrow = "" if better is None else (" ▲" if better else " ▼")
            out.append(Text(text + arrow, style="" if better is None else self.role("good" if better else "bad")))
        return out[0], out[1]

    def on_resize(self) -> None:
        if self._last is not None:
            self.show(self._last)

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``'s segments, newest last (the cursor follows the newest). The preset's name follows
        the load only when the run switched presets (the status line names it otherwise); goodput's and the
        baseline's columns come with an SLO and a baseline."""
        self._last = snap
        self._many_presets = len({s.scenario for s in snap.segments if s.index}) > 1
        slo = bool(snap.slo)
        quality = any(s.quality_score is not None for s in snap.segments)
        names = COLUMNS + (QUALITY if quality else ()) + (GOOD if slo else ()) + (VERSUS if self.baseline else ())
        cells = [self._row(s, slo) for s in snap.segments]
        widths = {n: max([len(n)] + [c[n].cell_len for c in cells]) + 2 for n in names}
        shown = fit_columns(names, widths, max(10, self.size.width - 2))
        rows = [tuple(c[n] for n in shown) for c in cells]
        theme = self.app.theme
        if (
            shown == self._shown
            and theme == getattr(self, "_theme", None)
            and [tuple(x.plain for x in r) for r in rows] == [tuple(x.plain for x in r) for r in self._rows]
        ):
            return
        self._theme = theme
        follow = self.cursor_row >= len(self._rows) - 1
        if shown != self._shown:
            self._shown = shown
            self.clear(columns=True)
            self.add_columns(*shown)
        else:
            self.clear()
        self._rows = rows
        for r in rows:
            self.add_row(*r)
        if follow and rows:
            self.move_cursor(row=len(rows) - 1)
