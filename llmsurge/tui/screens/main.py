"""The main screen: every pane at once (100×30 and up), sized by the terminal's class."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from llmsurge.tui.screens.dashboard import DashboardScreen, make_pane, titled
from llmsurge.widgets.load_panel import LoadPanel
from llmsurge.widgets.status_line import StatusLine


class MainScreen(DashboardScreen):
    """The dashboard: load, charts, tables, requests and telemetry, all in view."""

    CSS_PATH = "main.tcss"

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="top"):
            yield titled(LoadPanel(id="load"), "load")
            yield make_pane("rate")
            yield make_pane("ttft")
        with Horizontal(id="middle"):
            yield make_pane("latency")
            yield make_pane("segments")
            yield make_pane("events")
        with Horizontal(id="bottom"):
            yield make_pane("requests")
            with Vertical(id="telemetry"):
                yield make_pane("gpu")
                yield make_pane("server")
                yield make_pane("host")
        yield Footer()
