"""What a screen asks of its panes: attributes down (a snapshot, a baseline), nothing up but messages."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.protocol import is_renderable
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.visual import VisualType
from textual.widget import Widget
from textual.widgets import Static

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot


@runtime_checkable
class Pane(Protocol):
    """A pane fed by snapshots."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap`` (called inside the app's batch update)."""
        ...


@runtime_checkable
class ShowsBaseline(Protocol):
    """A pane that draws a saved run beside this one."""

    baseline: SavedRun | None


HOLD_S = 10.0
"""How long a pane whose height follows its content keeps a height it grew to (a note that comes and goes each
second would otherwise move every pane below it, and reflow the screen, each time)."""


@dataclass(slots=True)
class _Shown:
    content: object = None
    lines: int | None = None  # the height asked for at the last reflow
    since: float = 0.0  # when the content last needed that height


_shown: weakref.WeakKeyDictionary[Widget, _Shown] = weakref.WeakKeyDictionary()


def update_static(widget: Static, content: VisualType) -> None:
    """``widget.update(content)``, drawn again only when the content changed, and without a screen reflow unless
    the widget's height follows its content (``height: auto``) and the content grew, or has been shorter for
    ``HOLD_S`` (until then it is padded with blank lines to the height it had).

    Every pane that changed is drawn each frame, and a reflow lays out and draws every pane (~40 ms of CPU at
    160×48 where the usual frame costs ~15): the status line's clock moves once a second, and a pane whose size the
    CSS sets, or whose content kept its height, needs no reflow.
    """
    shown = _shown.setdefault(widget, _Shown())
    if _same(content, shown.content):
        return
    shown.content = content
    height = widget.styles.height
    width = widget.content_size.width
    if height is None or not height.is_auto or not width or isinstance(content, str) or not is_renderable(content):
        widget.update(content, layout=False)
        if width and height is not None and height.is_auto:  # (text with markup, or a Visual: measured by Textual)
            _fit(widget, shown, widget.get_content_height(Size(0, 0), Size(0, 0), width), None)
        elif not width:  # not laid out yet: the first layout measures it
            shown.lines = None
            widget.refresh(layout=True)
        return
    # Rendered once, here, to count its lines; then drawn from those lines (a table measured and drawn again cost
    # ~7 ms a second per pane).
    console = widget.app.console
    options = widget.app.console_options.update_width(width).update(highlight=False)
    renderable = cast(RenderableType, content)
    rendered = Rendered(renderable, width, console.render_lines(renderable, options, pad=False))
    widget.update(rendered, layout=False)
    _fit(widget, shown, len(rendered.lines), rendered)


def _fit(widget: Static, shown: _Shown, lines: int, rendered: Rendered | None) -> None:
    """Reflow when ``widget``'s content grew, or has been shorter for ``HOLD_S``; until then pad it to the height
    it had (``rendered``: its lines, when it was drawn from them)."""
    now = time.monotonic()
    if lines == shown.lines:
        shown.since = now
    elif shown.lines is not None and lines < shown.lines and now - shown.since < HOLD_S and rendered is not None:
        padded = rendered.lines + [[]] * (shown.lines - lines)  # the height it had
        widget.update(Rendered(rendered.content, rendered.width, padded), layout=False)
    else:
        shown.lines, shown.since = lines, now
        widget.refresh(layout=True)


class Rendered:
    """``content`` already rendered ``width`` cells wide: drawn from its lines at that width, rendered again at
    another (a pane resized before it shows again)."""

    def __init__(self, content: RenderableType, width: int, lines: list[list[Segment]]) -> None:
        self.content = content
        self.width = width
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width != self.width:
            yield self.content
            return
        newline = Segment.line()
        for line in self.lines:
            yield from line
            yield newline


def _same(a: object, b: object) -> bool:
    """True when ``a`` and ``b`` are the same text in the same styles, or equal renderables of a type that says
    what equal means (rich's own renderables have no ``==``: they are never the same)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, Text) and isinstance(b, Text):  # (Text's == compares the characters and spans only)
        return a == b and (a.style, a.justify, a.overflow, a.no_wrap, a.end) == (
            b.style,
            b.justify,
            b.overflow,
            b.no_wrap,
            b.end,
        )
    return type(a) is type(b) and type(a).__eq__ is not object.__eq__ and a == b  # (rich's renderables: never)
