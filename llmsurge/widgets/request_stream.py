"""The most recent requests: those in flight on top (the longest-running first), then finished ones, newest first.
Failures stand out; ``f`` shows only them; a selected row opens in the inspector (enter, or a double click).

A Line-API ScrollView over the snapshot's bounded rows (as toolong does): each refresh formats only the rows
that are visible, and a finished request's line is cached, so 1,000 requests in flight cost no more to draw
than ten. The selection follows a request, not a position: rows move as requests arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmsurge.metrics.snapshot import RequestRow, Snapshot
from llmsurge.render.format import MISSING, compact, ms
from llmsurge.widgets.roles import RoleStyles

COLUMNS = (
    ("id", 9),
    ("seg", 4),
    ("status", 10),
    ("TTFT ms", 9),
    ("tokens", 7),
    ("tok/s", 7),
    ("latency ms", 11),
    ("error", 14),
)
STATUS_ROLE = {"ok": "good", "failed": "bad", "cancelled": "warn", "running": "accent", "stuck": "warn"}
PRIORITY = ("id", "status", "TTFT ms", "latency ms", "tokens", "tok/s", "error", "seg")
"""Which columns stay when the pane is narrow (a column is dropped whole, never cut)."""
ALL = tuple(name for name, _w in COLUMNS)


def columns_for(width: int) -> tuple[str, ...]:
    """The columns that fit in ``width`` cells, in their usual order."""
    widths = dict(COLUMNS)
    kept: set[str] = set()
    used = 0
    for name in PRIORITY:
        if used + widths[name] <= width:
            kept.add(name)
            used += widths[name]
    return tuple(name for name in ALL if name in kept)


def _cells(r: RequestRow) -> tuple[str, ...]:
    return (
        r.request_id,
        str(r.segment),
        r.status,
        ms(r.ttft_ms),
        compact(r.output_tokens),
        compact(r.tokens_per_s) if r.tokens_per_s is not None else MISSING,
        ms(r.latency_ms),
        r.error_kind,
    )


def _column_cells(r: RequestRow, columns: tuple[str, ...]) -> Iterator[tuple[str, str, str]]:
    """(column, padded cell, role) for each of ``columns``: the cell's text fills its width, a space ends it."""
    for (name, width), cell in zip(COLUMNS, _cells(r), strict=True):
        if name not in columns:
            continue
        role = STATUS_ROLE.get(r.status, "") if name == "status" else "bad" if name == "error" else ""
        right = name not in ("id", "status", "error")
        yield name, (cell.rjust(width - 1) if right else cell.ljust(width - 1))[: width - 1] + " ", role


def format_row(r: RequestRow, styles: dict[str, Style] | None = None, columns: tuple[str, ...] = ALL) -> Text:
    """One request as a line of fixed-width columns (``styles``: role → style, for the status and error)."""
    styles = styles or {}
    t = Text(no_wrap=True, overflow="ellipsis")
    for _name, cell, role in _column_cells(r, columns):
        t.append(cell, style=styles.get(role, ""))
    return t


def row_strip(
    r: RequestRow,
    columns: tuple[str, ...],
    styles: dict[str, Style],
    base: Style,
    width: int,
    scroll_x: int = 0,
    selected: bool = False,
) -> Strip:
    """One request's line as the pane draws it: ``format_row`` rendered, cropped to ``width`` from ``scroll_x``,
    padded, on the pane's ``base`` style (reversed when ``selected``) — built from segments directly, the same
    segments rich and Textual would give for that text (this runs for every visible row of every frame)."""
    segments: list[Segment] = []
    plain = ""  # runs of unstyled cells are one segment, as rich renders a Text between its spans
    for _name, cell, role in _column_cells(r, columns):
        style = styles.get(role) if role else None
        if not style:
            plain += cell
            continue
        if plain:
            segments.append(Segment(plain, base))
            plain = ""
        segments.append(Segment(cell, base + style))
    if plain or not segments:  # (an empty line is one empty segment, as rich renders an empty Text)
        segments.append(Segment(plain, base))
    length = sum(cell_len(s.text) for s in segments)
    strip = Strip(segments, length)
    if scroll_x or length > width:
        strip = strip.crop(scroll_x, scroll_x + width)
    strip = strip.extend_cell_length(width, base)
    return strip.apply_style(REVERSE) if selected else strip


REVERSE = Style(reverse=True)


class RequestStream(RoleStyles, ScrollView, can_focus=True):
    """Rows come from the snapshot (at most ~120)."""

    DEFAULT_CSS = """
    RequestStream { scrollbar-size-vertical: 1; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("enter", "inspect", "inspect", id="inspect-request"),
    ]

    @dataclass
    class Inspect(Message):
        """Open request ``request_id`` in the inspector."""

        stream: RequestStream
        request_id: str

        @property
        def control(self) -> RequestStream:
            return self.stream

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: tuple[RequestRow, ...] = ()
        """What is shown (the snapshot's rows, failures only when filtered)."""
        self.all_rows: tuple[RequestRow, ...] = ()
        self.selected: str | None = None
        """The request the cursor is on (it follows the request as rows move)."""
        self.failed_only = False
        self._title: str | None = None
        """Show failed requests only (``f``)."""
        self._columns: tuple[str, ...] = ()
        self._header = Text()
        self._styles: dict[str, Style] = {}
        self._pass: tuple[Style, dict[str, Style], tuple[str, ...]] | None = None
        self._finished = lru_cache(maxsize=1024)(self._finished_strip)
        """A finished request's line does not change: drawn once per width, scroll, selection and theme."""

    def _fit_columns(self) -> tuple[str, ...]:
        """The columns for the pane's width now (the header is rebuilt when they change)."""
        columns = columns_for(max(0, self.size.width - 1))
        if columns != self._columns:
            self._columns = columns
            self._header = Text(no_wrap=True)
            for name, width in COLUMNS:
                if name in columns:
                    right = name not in ("id", "status", "error")
                    label = name.rjust(width - 1) if right else name.ljust(width - 1)
                    self._header.append(label + " ", style="bold")
        return columns

    def _theme_styles(self) -> dict[str, Style]:
        styles = {role: self.role(role) for role in ("good", "bad", "warn", "accent")}
        if styles != self._styles:  # a theme change: finished rows are formatted again
            self._styles = styles
            self._finished.cache_clear()
        return styles

    def show(self, snap: Snapshot) -> None:
        """Take the snapshot's rows and redraw what is visible."""
        if snap.recent == self.all_rows:
            return
        self.all_rows = snap.recent
        self._filter()

    def _filter(self) -> None:
        rows = self.all_rows
        self.rows = tuple(r for r in rows if r.status == "failed") if self.failed_only else rows
        self.virtual_size = Size(sum(w for n, w in COLUMNS if n in self._fit_columns()), len(self.rows) + 1)
        self.refresh()

    def on_resize(self) -> None:
        self._fit_columns()
        self._filter()

    def toggle_failed_only(self) -> bool:
        """Show only failures (the ones people open first), or everything again; returns the new state."""
        self.failed_only = not self.failed_only
        if self._title is None:
            self._title = str(self.border_title or "requests")
        self.border_title = "requests: failures only (f: all)" if self.failed_only else self._title
        self._filter()
        return self.failed_only

    def _index(self) -> int | None:
        return next((i for i, r in enumerate(self.rows) if r.request_id == self.selected), None)

    def action_move(self, step: int) -> None:
        """Move the cursor one row (to the first row when none is selected)."""
        if not self.rows:
            return
        i = self._index()
        i = 0 if i is None else max(0, min(len(self.rows) - 1, i + step))
        self.selected = self.rows[i].request_id
        if i < self.scroll_offset.y or i >= self.scroll_offset.y + self.size.height - 1:
            self.scroll_to(y=max(0, i - self.size.height // 2), animate=False)
        self.refresh()

    def action_inspect(self) -> None:
        """Open the selected request in the inspector."""
        if self.selected is not None:
            self.post_message(self.Inspect(self, self.selected))

    def on_click(self, event: events.Click) -> None:
        """Select the row clicked; a double click opens it."""
        offset = event.get_content_offset(self)  # inside the border: line 0 is the header
        if offset is None or offset.y < 1:
            return
        i = offset.y - 1 + self.scroll_offset.y
        if not 0 <= i < len(self.rows):
            return
        self.selected = self.rows[i].request_id
        self.refresh()
        if event.chain >= 2:
            self.action_inspect()

    def row_texts(self) -> list[str]:
        """The rows as plain text (tests)."""
        return [format_row(r, columns=self._columns or ALL).plain for r in self.rows]

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line of this pass shares, read once: the pane's style walks the DOM, the columns measure.
        self._pass = (self.rich_style, self._theme_styles(), self._fit_columns())
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None

    def render_line(self, y: int) -> Strip:
        base, styles, columns = self._pass or (self.rich_style, self._theme_styles(), self._fit_columns())
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            line = self._header
        else:
            i = y - 1 + scroll_y
            if i == 0 and not self.rows and self.failed_only:  # say what the filter hides, not a blank pane
                line = Text("  no failures yet (f: every request)", style=self.role("muted"))
                return Strip(list(line.render(self.app.console)), line.cell_len).extend_cell_length(width)
            if i >= len(self.rows):
                return Strip.blank(width, base)
            row = self.rows[i]
            selected = row.request_id == self.selected
            if row.status in ("running", "stuck"):  # changes every frame
                return row_strip(row, columns, styles, base, width, scroll_x, selected)
            return self._finished(row, columns, base, width, scroll_x, selected)
        strip = Strip(list(line.render(self.app.console)), line.cell_len).crop(scroll_x, scroll_x + width)
        # The pane's own colours under the text (a line-API widget paints its background itself).
        return strip.extend_cell_length(width).apply_style(base)

    def _finished_strip(
        self, row: RequestRow, columns: tuple[str, ...], base: Style, width: int, scroll_x: int, selected: bool
    ) -> Strip:
        return row_strip(row, columns, self._styles, base, width, scroll_x, selected)
