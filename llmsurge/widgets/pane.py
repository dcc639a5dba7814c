"""What a screen asks of its panes: attributes down (a snapshot, a baseline), nothing up but messages."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from rich.console import Group, RenderableType
from rich.protocol import is_renderable
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
    widget.update(content, layout=False)
    height = widget.styles.height
    if height is None or not height.is_auto:
        return
    width = widget.content_size.width
    if not width:  # not laid out yet: the first layout measures it
        shown.lines = None
        widget.refresh(layout=True)
        return
    lines = widget.get_content_height(Size(0, 0), Size(0, 0), width)
    now = time.monotonic()
    if lines == shown.lines:
        shown.since = now
    elif shown.lines is not None and lines < shown.lines and now - shown.since < HOLD_S and is_renderable(content):
        pad = Text("\n" * (shown.lines - lines - 1))
        widget.update(Group(cast(RenderableType, content), pad), layout=False)  # the height it had
    else:
        shown.lines, shown.since = lines, now
        widget.refresh(layout=True)


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
