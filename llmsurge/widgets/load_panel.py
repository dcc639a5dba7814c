"""The load panel: target load, in flight, done, failed, current tok/s and req/s, and client health."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Span, Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import clock, ms, num, p50_p99
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.roles import RoleStyles

LABEL_WIDTH = 12  # the longest label ("output tok/s"): labels are never squeezed by long values
BLANK = Text()


class Rows:
    """Rows of a muted label and a right-justified value, drawn as ``Table.grid(padding=(0, 1), expand=True)``
    with a fixed label column draws them — segment for segment — without rich measuring and rendering each cell:
    the grid cost ~10 ms of the UI's ~37 ms a frame (bench/RESULTS.md), this a tenth of it."""

    def __init__(self, label_style: Style | str) -> None:
        self.label_style = label_style
        self.rows: list[tuple[str, Text]] = []
        self.note: Text | None = None
        """A line below the rows, the whole width, wrapped (as ``Group(rows, note)`` draws it)."""

    def add_row(self, label: str, value: Text | str) -> None:
        self.rows.append((label, value if isinstance(value, Text) else Text(value)))

    def __eq__(self, other: object) -> bool:
        """The same rows in the same styles (a panel that says what it said is not drawn again)."""
        if not isinstance(other, Rows):
            return NotImplemented
        notes = [(n.plain, n.spans, n.style) if n is not None else None for n in (self.note, other.note)]
        return self.label_style == other.label_style and self._key() == other._key() and notes[0] == notes[1]

    __hash__ = None  # type: ignore[assignment]

    def _key(self) -> list[tuple[str, str, list[Span], str | Style]]:
        return [(label, value.plain, value.spans, value.style) for label, value in self.rows]

    def grid(self) -> Table:
        """The same rows as a rich grid (what a pane too narrow for the fixed columns gets)."""
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style=self.label_style, no_wrap=True, min_width=LABEL_WIDTH, max_width=LABEL_WIDTH)
        t.add_column(justify="right", no_wrap=True, ratio=1)
        for label, value in self.rows:
            t.add_row(label, value)
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment | Table | Text]:
        room = options.max_width - LABEL_WIDTH - 1
        if room < 1:
            yield self.grid()
            if self.note is not None:
                yield self.note
            return
        style = console.get_style(self.label_style) if isinstance(self.label_style, str) else self.label_style
        gap = Segment(" ", style)
        for label, value in self.rows:
            head = Text(label, style=style)
            head.truncate(LABEL_WIDTH, overflow="ellipsis", pad=True)
            yield from BLANK.join((head,)).render(console)  # join: the base style becomes a span, as rich draws it
            yield gap
            tail = value.copy()
            tail.truncate(room, overflow="ellipsis")
            tail.pad_left(room - tail.cell_len)
            yield from BLANK.join((tail,)).render(console)
            yield Segment.line()
        if self.note is not None:
            yield self.note

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


class LoadPanel(RoleStyles, Static, can_focus=True):
    """What the client is doing now."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        bad, warn, strong, muted = self.role("bad"), self.role("warn"), self.role("strong"), self.role("muted")
        t = Rows(muted)
        t.add_row("target", Text(snap.load_label or "—", style=strong))
        t.add_row("in flight", f"{snap.inflight:,}")
        t.add_row("done", f"{snap.completed:,}")
        t.add_row("failed", Text(f"{snap.failed:,}", style=bad if snap.failed else ""))
        if snap.cancelled:
            t.add_row("cancelled", f"{snap.cancelled:,}")
        st = snap.segment_figures  # TTFT at a glance, whatever pane is shown beside (the compact screen's first sight)
        rate = snap.request_rate.value()
        if snap.inputs_per_request:  # embeddings, rerank: inputs, and the latency of whole answers
            inputs = None if rate is None else rate * snap.inputs_per_request
            t.add_row("inputs/s", Text(num(inputs, 0), style=strong))
        else:
            t.add_row("output tok/s", Text(num(snap.output_tok_s, 0), style=strong))
        t.add_row(f"req/s ({snap.request_rate.seconds:.0f}s)", num(rate, 2))  # the one live rate, with its window
        if st["ttft"].n or not st["e2el"].n:
            t.add_row("TTFT p50/p99", Text(p50_p99(st["ttft"]), style=strong))
        else:  # no first token to time (a whole answer): its latency
            t.add_row("lat. p50/p99", Text(p50_p99(st["e2el"]), style=strong))
        if st.lag_p99_ms is not None:  # open loop: how late requests left against their schedule
            t.add_row(
                "send lag",
                Text(f"p99 {ms(st.lag_p99_ms)} ms, {st.late_share:.0%} late", style="" if st.schedule_kept else warn),
            )
        if snap.roofline[1]:
            t.add_row("of ceiling", Text(snap.roofline[1]))  # decode per stream against the roofline
        self.tooltip = snap.roofline[0] or None
        share = st.good_share if snap.slo else None
        if share is not None:  # goodput of this segment against the SLO
            style = self.role("good") if share >= 0.95 else bad
            t.add_row("good", Text(f"{share:.0%} {num(st.request_goodput, 2)}/s", style=style))
        if snap.errors:
            top = sorted(snap.errors.items(), key=lambda kv: -kv[1])[:2]
            t.add_row("errors", Text(" ".join(f"{k}:{v}" for k, v in top), style=bad))
        c = snap.client
        if c.workers:
            health = warn if c.saturated else ""
            t.add_row("client cpu", Text(f"{c.max_cpu:.0%} ({c.workers}w)", style=health))
            t.add_row("loop lag", Text(f"{c.max_loop_lag_ms:,.0f} ms", style=health))
        if c.saturated:  # the whole width, wrapped: the reason names the remedy
            t.note = Text(f"{str(c.cause).upper()}: {c.reason}", style=warn)
        room = self.content_size.height - len(t.rows) - (3 if t.note is not None else 0)
        across = self.content_size.width - LABEL_WIDTH - 1
        more: list[tuple[str, str]] = []
        for label, value in self._more(snap):  # never a cut value; one row a label (its first form that fits)
            if len(value) <= across and label not in {m[0] for m in more}:
                more.append((label, value))
        for label, value in more[: max(0, room)]:  # what the pane has room for, most wanted first
            t.add_row(label, value)
        update_static(self, t)

    def _more(self, snap: Snapshot) -> list[tuple[str, str]]:
        """Rows for a pane taller than its essentials (the top row's height is the charts'): the segment's other
        latencies, what its requests were, and the run so far."""
        st, run = snap.segment_figures, snap.run_figures
        rows: list[tuple[str, str]] = []
        if st["tpot"].n:
            rows.append(("TPOT p50/p99", p50_p99(st["tpot"])))
        if st["e2el"].n and st["ttft"].n:
            rows.append(("E2EL p50/p99", p50_p99(st["e2el"])))
            e2el = st["e2el"]
            p50, p99 = e2el.at(50.0), e2el.at(99.0)
            if p50 is not None and p99 is not None and p50 >= 1000.0:  # where the ms do not fit: seconds
                star = "*" if e2el.thin(99.0) else ""
                rows.append(("E2EL p50/p99", f"{p50 / 1000:.2f}/{p99 / 1000:.2f}{star}s"))
        if st["itl"].n:
            rows.append(("ITL p50/p99", p50_p99(st["itl"])))
        if st.input_mean and st.output_mean and st["e2el"].n:  # (0: the server reported no usage)
            rows.append(("in/out tok", f"{st.input_mean:,.0f}/{st.output_mean:,.0f}"))
        rows.append(("segment", f"#{snap.segment}"))
        rows.append(("started", f"{snap.started:,}"))
        rows.append(("tokens out", f"{snap.output_tokens:,}"))
        rows.append(("elapsed", clock(snap.elapsed)))
        if run["ttft"].n > st["ttft"].n:
            rows.append(("run TTFT p50", ms(run["ttft"].median)))
        return rows
