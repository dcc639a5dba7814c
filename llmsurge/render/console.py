"""The one Rich console factory for command output (``run``, ``check``, ``compare``, ``runs``, ``report``,
``presets``): whatever is printed through it, no terminal control from outside text reaches the terminal.

Call sites still pass outside text through :func:`~llmsurge.redaction.shown` or
:func:`~llmsurge.redaction.markup_safe` (redaction, shortening, markup); this console is the floor under them: it
makes visible any control character left in the text it renders, while Rich's own styles and cursor moves (which it
emits as styles and control segments, never as text) pass unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment

from llmsurge.redaction import visible

WIDE = 4096
"""Width when the output is a file or a pipe: tables size to their content, so a number is never cut to ``713…``."""


class SafeConsole(Console):
    """A Rich console whose text segments cannot carry terminal controls (newlines and a bare ``\\r`` end are kept)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            seg if seg.control or seg.text in ("\n", "\r") else Segment(visible(seg.text, newlines=True), seg.style)
            for seg in buffer
        )


def make_console(stderr: bool = False, **kwargs: Any) -> SafeConsole:
    """The console for command output: safe from outside text, and as wide as its content off a terminal."""
    console = SafeConsole(stderr=stderr, **kwargs)
    if not console.is_terminal and "width" not in kwargs and not os.environ.get("COLUMNS"):
        console = SafeConsole(stderr=stderr, width=WIDE, **kwargs)
    return console
