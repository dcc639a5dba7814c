"""The latency pane's table: TTFT, TTFC, TPOT, ITL, E2EL: p50, p90, p99 and mean, for the current segment and the
whole run, with n."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich._ratio import ratio_distribute
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import compact, ms, percentile_ms
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.roles import RoleStyles

ROWS = (("TTFT", "ttft"), ("TTFC", "ttfc"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2EL", "e2el"))
QUANTILES = (50.0, 90.0, 99.0)
DROPPED_FIRST = ("ttfc", "itl")
"""Rows left out of a pane too short for all five: TTFC first (it is TTFT but for a reasoning model), then ITL."""
NEW_LINE = Text("\n")


class Figures:
    """A table of figures as ``Table(expand=True, box=None, padding=(0, 1))`` draws it — segment for segment —
    with its first column left-justified in ``first_style`` and the others right-justified, nothing wrapped, and a
    caption below; without rich measuring each cell and rendering it through its padding's layers: the pane's draw
    fell from 10.3 to 4.2 ms, most of what is left Textual's per-line work (bench/RESULTS.md). Too narrow for its
    columns, it is drawn as the rich table (which cuts them)."""

    def __init__(self, headers: Sequence[str], header_style: Style, first_style: Style) -> None:
        self.headers = [Text(h) for h in headers]
        self.header_style = header_style
        self.first_style = first_style
        self.rows: list[list[Text]] = []
        self.caption: Text | None = None

    def add_row(self, *cells: Text) -> None:
        self.rows.append(list(cells))

    def __eq__(self, other: object) -> bool:
        """The same cells in the same styles (a pane that says what it said is not drawn again)."""
        if not isinstance(other, Figures):
            return NotImplemented
        return (self.header_style, self.first_style, self._key()) == (
            other.header_style,
            other.first_style,
            other._key(),
        )

    __hash__ = None  # type: ignore[assignment]

    def _key(self) -> tuple[object, ...]:
        cells = [*self.headers, *(c for row in self.rows for c in row)]  # (the headers fix the rows' length)
        return tuple((t.plain, t.spans, t.style, t.justify) if t is not None else None for t in [*cells, self.caption])

    def table(self) -> Table:
        """The rich table these figures stand for."""
        t = Table(expand=True, box=None, padding=(0, 1), header_style=self.header_style)
        for i, header in enumerate(self.headers):
            if i == 0:
                t.add_column(header.plain, style=self.first_style, no_wrap=True)
            else:
                t.add_column(header.plain, justify="right", no_wrap=True)
        for row in self.rows:
            t.add_row(*row)
        if self.caption is not None:
            t.caption = self.caption
            t.caption_justify = "left"
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = list(zip(self.headers, *self.rows, strict=True))
        widths = [max(cell.cell_len for cell in column) + 2 for column in columns]
        room = options.max_width
        if sum(widths) > room:
            yield self.table()
            return
        if sum(widths) < room:
            widths = [w + pad for w, pad in zip(widths, ratio_distribute(room - sum(widths), widths), strict=True)]
        yield from self._line(console, self.headers, widths, [self.header_style] * len(widths))
        styles = [self.first_style] + [Style.null()] * (len(widths) - 1)
        for row in self.rows:
            yield from self._line(console, row, widths, styles)
        if self.caption is not None:
            yield from console.render(
                self.caption, options.update(width=sum(widths), highlight=False, height=None, justify="left")
            )

    @staticmethod
    def _line(
        console: Console, cells: Sequence[Text], widths: Sequence[int], styles: Sequence[Style]
    ) -> Iterator[Segment]:
        none = Style.null()
        for i, (cell, width, style) in enumerate(zip(cells, widths, styles, strict=True)):
            line = cell.copy()
            inner = width - 2
            if i == 0:
                line.truncate(inner, overflow="ellipsis", pad=True)
            else:
                line.rstrip()
                line.truncate(inner, overflow="ellipsis")
                line.pad_left(inner - line.cell_len)
            segments = [Segment(" ", none), *NEW_LINE.join((line,)).render(console), Segment(" ", none)]
            if style:
                yield from (Segment(text, style + seg_style) for text, seg_style, _ in segments)
            else:
                yield from segments
        yield Segment.line()


NAMES = ("p50", "p90", "p99", "mean", "n")
"""Each scope's columns; the full table is the segment's, then the run's."""
LAYOUTS = (
    (("seg", "run"), NAMES),
    (("seg", "run"), ("p50", "p90", "p99", "n")),
    (("seg",), NAMES),
    (("seg",), ("p50", "p90", "p99", "n")),
)
"""The pane's layouts, richest first: it shows the first whose columns fit its width, and is titled for it."""
TITLES = {("seg", "run"): "latency (ms): segment | run", ("seg",): "latency (ms): this segment"}


class LatencyTable(RoleStyles, Static, can_focus=True):
    """Latency percentiles side by side: this segment | whole run (the run columns where they fit, the pane titled
    for what it shows). A percentile that rests on fewer values than it needs is dimmed and starred."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``: every cell made once, then the richest layout whose columns fit."""
        width = self.content_size.width or self.size.width
        labels, rows = self._cells(snap)
        widths = [max(cell.cell_len for cell in column) + 2 for column in zip(*rows, strict=True)]
        label_width = max(label.cell_len for label in [Text("ms"), *labels]) + 2
        for scopes, names in LAYOUTS:
            keep = [i * len(NAMES) + NAMES.index(n) for i in range(len(scopes)) for n in names]
            headers = [len(f"{scope} {n}" if n == "p50" else n) + 2 for scope in scopes for n in names]
            if label_width + sum(max(widths[i], h) for i, h in zip(keep, headers, strict=True)) <= width:
                break
        t = Figures(
            ["ms", *(f"{scope} {n}" if n == "p50" else n for scope in scopes for n in names)],
            header_style=self.role("strong"),
            first_style=self.role("strong"),
        )
        for label, row in zip(labels, rows, strict=True):
            t.add_row(label, *(row[i] for i in keep))
        if self.border_title != TITLES[scopes]:
            self.border_title = TITLES[scopes]
        if snap.segment_figures.bunched:
            share = snap.segment_figures.itl_bunched_share or 0.0
            long = f"† per chunk: {share:.0%} of gaps < 0.1 ms (several tokens per send); per token: TPOT"
            short = f"† {share:.0%} of gaps < 0.1 ms; per token: TPOT"
            t.caption = Text(long if len(long) <= width else short, self.role("muted"))
        update_static(self, t)

    def _cells(self, snap: Snapshot) -> tuple[list[Text], list[list[Text]]]:
        """Each shown row's label and its cells for both scopes (:data:`NAMES` each); in a pane too short for
        every row, TTFC then ITL are left out."""
        muted = self.role("muted")
        bunched = snap.segment_figures.bunched
        height = self.content_size.height - 1 - (1 if bunched else 0)  # below the header, above the caption
        dropped = {key for _label, key in ROWS if key in DROPPED_FIRST[: max(0, len(ROWS) - height)]}
        labels: list[Text] = []
        rows: list[list[Text]] = []
        for label, key in ROWS:
            if key in dropped and height > 0:
                continue
            cells: list[Text] = []
            for figures in (snap.segment_figures, snap.run_figures):
                dist = figures[key]
                cells.extend(
                    Text(percentile_ms(dist.at(q), dist.n, q), style=muted if dist.thin(q) else "") for q in QUANTILES
                )
                cells.append(Text(ms(dist.mean) if dist.n else "—"))
                cells.append(Text(compact(dist.n), style=muted))
            labels.append(Text("ITL†" if key == "itl" and bunched else label))  # † per chunk: the note says so
            rows.append(cells)
        return labels, rows
