"""The most recent requests, in-flight ones included: bounded, scrollable, newest first; failures stand out."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from llmsurge.metrics.bus import Snapshot
from llmsurge.widgets.format import MISSING, ms, num

COLUMNS = ("id", "seg", "status", "TTFT ms", "tokens", "tok/s", "latency ms", "error")
STATUS_STYLE = {"ok": "green", "failed": "bold red", "cancelled": "yellow", "running": "cyan"}


class RequestStream(DataTable[Text | str]):
    """A bounded table (the snapshot carries at most ~120 rows)."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*COLUMNS)

    def show(self, snap: Snapshot) -> None:
        """Render ``snap.recent`` (running first, then finished newest first)."""
        self.clear()
        for r in snap.recent:
            style = STATUS_STYLE.get(r.status, "")
            self.add_row(
                r.request_id,
                str(r.segment),
                Text(r.status, style=style),
                ms(r.ttft_ms),
                f"{r.output_tokens:,}",
                num(r.tokens_per_s, 1) if r.tokens_per_s is not None else MISSING,
                ms(r.latency_ms),
                Text(r.error_kind, style="bold red"),
            )
