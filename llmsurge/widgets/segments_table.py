"""The segments table: one row per load setting — the saturation table, built live."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from llmsurge.metrics.bus import Snapshot
from llmsurge.widgets.format import ms, num

COLUMNS = ("#", "load", "preset", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "done", "errors")


class SegmentsTable(DataTable[Text]):
    """Rows are rebuilt only when a figure changed."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)
        self._rows: list[tuple[str, ...]] = []

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``'s segments, newest last (the cursor follows the newest)."""
        rows: list[tuple[str, ...]] = [
            (
                str(s.index),
                s.label,
                s.scenario,
                num(s.request_throughput, 2),
                num(s.live_output_throughput, 0),
                ms(s.ttft_p50_ms),
                ms(s.ttft_p99_ms),
                ms(s.tpot_p50_ms),
                f"{s.completed:,}",
                f"{s.failed:,}",
            )
            for s in snap.segments
        ]
        if rows == self._rows:
            return
        follow = self.cursor_row >= len(self._rows) - 1
        self._rows = rows
        self.clear()
        for r in rows:
            # Text cells: a preset's name comes from a user's file and is shown as written, never as markup.
            *cells, failed = (Text(c) for c in r)
            if failed.plain != "0":
                failed.stylize("red")
            self.add_row(*cells, failed)
        if follow and rows:
            self.move_cursor(row=len(rows) - 1)
