"""The main screen: every pane, and the keys that steer the load."""

from __future__ import annotations

from typing import TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot
from llmsurge.widgets.latency_table import LatencyTable
from llmsurge.widgets.load_panel import LoadPanel
from llmsurge.widgets.rate_chart import RateChart
from llmsurge.widgets.request_stream import RequestStream
from llmsurge.widgets.segments_table import SegmentsTable
from llmsurge.widgets.status_line import StatusLine
from llmsurge.widgets.telemetry_panes import GpuPane, HostPane, ServerPane
from llmsurge.widgets.ttft_histogram import TtftHistogram

W = TypeVar("W", bound=Widget)


def _titled(widget: W, title: str) -> W:
    widget.border_title = title
    return widget


class MainScreen(Screen[None]):
    """The dashboard. Keys call the app's steering actions; panes get snapshots through :meth:`show`."""

    CSS_PATH = "main.tcss"

    BINDINGS = [
        Binding("plus", "app.concurrency(1)", "+1", key_display="+", id="concurrency-up"),
        Binding("minus", "app.concurrency(-1)", "-1", key_display="-", id="concurrency-down"),
        Binding("right_square_bracket", "app.scale(2)", "×2", key_display="]", id="concurrency-double"),
        Binding("left_square_bracket", "app.scale(0.5)", "÷2", key_display="[", id="concurrency-halve"),
        Binding("r", "app.rate(1)", "rate+", id="rate-up"),
        Binding("R", "app.rate(-1)", "rate-", key_display="R", id="rate-down"),
        Binding("space", "app.toggle_pause", "pause", key_display="space", id="pause"),
        Binding("p", "app.presets", "presets", id="presets"),
        Binding("s", "app.save", "save", id="save"),
        Binding("f", "failed_only", "failures", id="failures-only"),
        Binding("q", "app.quit_and_save", "quit", id="quit"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="top"):
            yield _titled(LoadPanel(id="load"), "load")
            yield _titled(RateChart(id="rate"), "output tok/s")
            yield _titled(TtftHistogram(id="ttft"), "TTFT histogram")
        with Horizontal(id="middle"):
            yield _titled(LatencyTable(id="latency"), "latency (ms): segment | run")
            yield _titled(SegmentsTable(id="segments"), "segments")
        with Horizontal(id="bottom"):
            yield _titled(RequestStream(id="requests"), "requests: running (oldest first), finished (newest first)")
            with Vertical(id="telemetry"):
                yield _titled(GpuPane(id="gpu"), "GPU")
                yield _titled(ServerPane(id="server"), "server /metrics")
                yield _titled(HostPane(id="host"), "host / client")
        yield Footer()

    _ready = False

    def set_baseline(self, baseline: SavedRun | None) -> None:
        """Hand a saved run to the panes that show it beside this run (attributes down)."""
        for pane in (self.query_one(SegmentsTable), self.query_one(RateChart), self.query_one(TtftHistogram)):
            pane.baseline = baseline

    def action_failed_only(self) -> None:
        """``f``: the request stream shows failures only (the ones people open first), or everything again."""
        on = self.query_one(RequestStream).toggle_failed_only()
        self.notify("failed requests only (f again: all)" if on else "all requests", timeout=2)

    @on(RequestStream.Inspect)
    def open_inspector(self, message: RequestStream.Inspect) -> None:
        """Enter (or a double click) on a request: the inspector."""
        self.app.inspect(message.request_id)  # type: ignore[attr-defined]

    @property
    def ready(self) -> bool:
        """True once every pane is in the DOM (snapshots arriving earlier are skipped)."""
        if not self._ready:
            self._ready = bool(self.query(HostPane)) and bool(self.query(StatusLine))
        return self._ready

    def show(self, snap: Snapshot, waiting_for: float | None, message: str, full: bool = True) -> None:
        """Hand the snapshot to the panes (the app wraps this in one batch update).

        The status line, load panel and request stream follow every snapshot; the statistics panes (chart,
        histogram, tables, telemetry) only when ``full``: when the snapshot's statistics were recomputed (about
        once a second, and at once after a change of load).
        """
        self.query_one(StatusLine).show(snap, waiting_for, message)
        self.query_one(LoadPanel).show(snap)
        self.query_one(RequestStream).show(snap)
        if not full:
            return
        self.query_one(RateChart).show(snap)
        self.query_one(TtftHistogram).show(snap)
        self.query_one(LatencyTable).show(snap)
        self.query_one(SegmentsTable).show(snap)
        for pane in (self.query_one(GpuPane), self.query_one(ServerPane), self.query_one(HostPane)):
            pane.show(snap)
