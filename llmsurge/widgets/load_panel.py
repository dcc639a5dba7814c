"""The load panel: target load, in flight, done, failed, current tok/s and req/s, and client health."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.bus import Snapshot
from llmsurge.widgets.format import num


class LoadPanel(Static):
    """What the client is doing now."""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style="dim", no_wrap=True)
        t.add_column(justify="right", no_wrap=True)
        t.add_row("target", Text(snap.load_label or "—", style="bold"))
        t.add_row("in flight", f"{snap.inflight:,}")
        t.add_row("done", f"{snap.completed:,}")
        failed = Text(f"{snap.failed:,}", style="bold red" if snap.failed else "")
        t.add_row("failed", failed)
        if snap.cancelled:
            t.add_row("cancelled", f"{snap.cancelled:,}")
        t.add_row("output tok/s", Text(num(snap.output_tok_s, 0), style="bold"))
        t.add_row("requests/s", num(snap.request_s, 2))
        if snap.errors:
            top = sorted(snap.errors.items(), key=lambda kv: -kv[1])[:3]
            t.add_row("errors", Text(" ".join(f"{k}:{v}" for k, v in top), style="red"))
        c = snap.client
        if c.workers:
            style = "bold yellow" if c.saturated else "dim"
            health = f"{c.workers}w cpu {c.max_cpu:.0%} lag {c.max_loop_lag_ms:.0f}ms"
            t.add_row("client", Text(health, style=style))
            if c.saturated:
                t.add_row("", Text("CLIENT BUSY: " + c.reason, style="bold yellow"))
        self.update(t, layout=False)  # the pane's size is set by CSS: skip a screen reflow
