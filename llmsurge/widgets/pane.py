"""What a screen asks of its panes: attributes down (a snapshot, a baseline), nothing up but messages."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
