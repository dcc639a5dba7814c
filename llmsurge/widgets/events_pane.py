"""What the run noted — lost workers, refusals, a disk that filled, notes about the server — kept after its toast."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import RichLog

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import clock
from llmsurge.widgets.roles import RoleStyles

LEVEL_ROLE = {"error": "bad", "warning": "warn", "info": "muted"}
KEPT = 1000
"""Events kept in the pane (the oldest scroll away)."""


class EventsPane(RoleStyles, RichLog, can_focus=True):
    """The run's events, oldest first, in level colours. It follows new events while scrolled to the bottom and
    stops following when scrolled up (to read one); ``y`` copies them all. Messages are already safe to show (the
    snapshot escaped them)."""

    BINDINGS = [Binding("y", "copy", "copy events", id="copy-events")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=KEPT, **kwargs)
        self._seq = 0
        self._plain: list[str] = []
        self.border_subtitle = "no events yet"

    def show(self, snap: Snapshot) -> None:
        """Add the events this pane has not shown yet (a snapshot carries the last few)."""
        new = [e for e in snap.events if e.seq > self._seq]
        if not new:
            return
        self.auto_scroll = self.max_scroll_y - self.scroll_y < 1  # at the bottom: follow; scrolled up: stay
        for e in new:
            line = Text(f"{clock(e.time)} ", style=self.role("muted"))
            line.append(f"{e.level:<7} ", style=self.role(LEVEL_ROLE.get(e.level, "muted")))
            line.append(e.message)
            self.write(line)
            self._plain.append(line.plain)
        del self._plain[:-KEPT]
        self._seq = new[-1].seq
        self.border_subtitle = f"{len(self._plain):,} · y copies"

    def action_copy(self) -> None:
        """``y``: every event kept, as plain text, to the clipboard."""
        if not self._plain:
            self.notify("no events to copy", timeout=2)
            return
        self.app.copy_to_clipboard("\n".join(self._plain) + "\n")
        self.notify(f"{len(self._plain):,} events copied", timeout=2)
