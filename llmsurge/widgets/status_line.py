"""The status line: target, model, server kind, preset, segment, elapsed time and state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.render.format import clock
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.roles import RoleStyles


class StatusLine(RoleStyles, Static):
    """One line saying what is being tested and in what state the run is."""

    def show(self, snap: Snapshot, waiting_for: float | None = None, message: str = "") -> None:
        """Render ``snap``; ``waiting_for`` is seconds spent waiting for the server to answer. Parts are dropped
        whole, least important first, when the line is narrow (the URL, the server kind, the model …)."""
        info = snap.info
        muted = self.role("muted")
        state = "paused" if snap.paused and snap.state == "running" else snap.state
        label = state.upper()
        if state == "waiting" and waiting_for is not None:
            label = f"WAITING FOR SERVER {waiting_for:.0f}s"
        badge = Text(f" {label} ", style=self.state_style(state) if state in STATES else self.role("strong"))
        if snap.stalled_s is not None:  # the server stopped producing tokens: said before anything else
            badge.append("  ")
            badge.append(f" STALLED {snap.stalled_s:.0f}s ", style=self.state_style("error"))
        if info.get("server") == "simulated":
            badge.append("  ")
            badge.append(" SIMULATED SERVER ", style=self.state_style("sim"))
        parts: list[tuple[int, Text]] = []  # (priority: lower stays longer, part)
        for prio, key, title in ((3, "model", "model"), (5, "server", "server"), (2, "preset", "preset")):
            value = snap.scenario if key == "preset" and snap.scenario else info.get(key, "")
            if value and not (key == "server" and value == "simulated"):
                parts.append((prio, Text.assemble((f"{title} ", muted), value)))
        if snap.segment:
            parts.append((1, Text.assemble(("seg ", muted), str(snap.segment))))
        if snap.progress is not None:  # a bounded run: how far, and how long to go
            parts.append((1, Text(snap.progress.describe())))
        parts.append((0, Text(clock(snap.elapsed))))
        url = Text(info.get("url", ""), style=self.role("strong"))
        parts.insert(0, (4, url))
        if message:
            parts.append((6, Text(message, style="italic")))
        room = max(0, self.size.width or 200)
        while parts and badge.cell_len + 2 + sum(p.cell_len + 3 for _, p in parts) > room:
            parts.remove(max(parts, key=lambda p: p[0]))
        line = Text(no_wrap=True, overflow="crop")
        line.append_text(badge)
        line.append("  ")
        for i, (_prio, part) in enumerate(parts):
            if i:
                line.append(" │ ", style=muted)
            line.append_text(part)
        update_static(self, line)


STATES = ("waiting", "warmup", "running", "paused", "done", "stopping", "error")
