"""The status line: target, model, server kind, preset, segment, elapsed time and state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.widgets.format import clock
from llmsurge.widgets.roles import RoleStyles


class StatusLine(RoleStyles, Static):
    """One line saying what is being tested and in what state the run is."""

    def show(self, snap: Snapshot, waiting_for: float | None = None, message: str = "") -> None:
        """Render ``snap``; ``waiting_for`` is seconds spent waiting for the server to answer."""
        info = snap.info
        muted = self.role("muted")
        t = Text(no_wrap=True, overflow="ellipsis")
        state = "paused" if snap.paused and snap.state == "running" else snap.state
        label = state.upper()
        if state == "waiting" and waiting_for is not None:
            label = f"WAITING FOR SERVER {waiting_for:.0f}s"
        t.append(f" {label} ", style=self.state_style(state) if state in STATES else self.role("strong"))
        t.append("  ")
        server = info.get("server", "")
        if server == "simulated":
            t.append(" SIMULATED SERVER ", style=self.state_style("sim"))
            t.append(" ")
        t.append(info.get("url", ""), style=self.role("strong"))
        for key, label_ in (("model", "model"), ("server", "server"), ("preset", "preset")):
            value = snap.scenario if key == "preset" and snap.scenario else info.get(key, "")
            if value and not (key == "server" and value == "simulated"):
                t.append(f" │ {label_} ", style=muted)
                t.append(value)
        if snap.segment:
            t.append(" │ seg ", style=muted)
            t.append(str(snap.segment))
        t.append(" │ ", style=muted)
        t.append(clock(snap.elapsed))
        if message:
            t.append(f"  {message}", style="italic")
        self.update(t, layout=False)  # the pane's size is set by CSS: skip a screen reflow


STATES = ("waiting", "warmup", "running", "paused", "done", "stopping", "error")
