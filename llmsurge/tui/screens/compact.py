"""The compact screen (80×24): the status line, the load, and one large pane chosen with 1–9 or the tabs."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, Tab, Tabs

from llmsurge.tui.screens.dashboard import PANES, DashboardScreen, make_pane, titled
from llmsurge.widgets.load_panel import LoadPanel
from llmsurge.widgets.status_line import StatusLine

SHORT = {
    "rate": "tok/s",
    "ttft": "TTFT",
    "latency": "lat",
    "segments": "seg",
    "requests": "req",
    "gpu": "GPU",
    "server": "srv",
    "host": "host",
    "events": "ev",
}
"""Tab labels short enough for all nine to fit beside the load at 80 columns (1–9 in that order)."""


class CompactScreen(DashboardScreen):
    """One pane at a time beside the load: every number whole, none squeezed."""

    CSS_PATH = "compact.tcss"
    BINDINGS = [
        *(
            Binding(
                str(i), f"show_pane('{pid}')", "panes" if i == 1 else SHORT[pid], show=i == 1, key_display="1-9 ←/→"
            )
            for i, (pid, _t, _c) in enumerate(PANES, 1)
        ),
        Binding("left", "step(-1)", "previous", show=False),
        Binding("right", "step(1)", "next", show=False),
        # the footer is short here: these still work, the palette lists them
        Binding("r", "app.rate(1)", "rate+", show=False),
        Binding("R", "app.rate(-1)", "rate-", show=False),
        Binding("s", "app.save", "save", show=False),
        Binding("minus", "app.concurrency(-1)", "-1", key_display="-", show=False),
        Binding("left_square_bracket", "app.scale(0.5)", "÷2", key_display="[", show=False),
        Binding("f", "failed_only", "failures", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="body"):
            yield titled(LoadPanel(id="load"), "load")
            with Vertical(id="main"):
                yield Tabs(*(Tab(SHORT[pid], id=f"tab-{pid}") for pid, _t, _c in PANES))
                with ContentSwitcher(initial="requests", id="switcher"):
                    for pid, _title, _cls in PANES:
                        yield make_pane(pid)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Tabs).active = "tab-requests"

    @property
    def current(self) -> str:
        """The id of the pane shown."""
        return self.query_one(ContentSwitcher).current or "requests"

    def action_show_pane(self, pane_id: str) -> None:
        """``1``–``8``: show that pane."""
        self.query_one(Tabs).active = f"tab-{pane_id}"

    def action_step(self, step: int) -> None:
        """←/→: the previous or next pane."""
        ids = [p[0] for p in PANES]
        self.action_show_pane(ids[(ids.index(self.current) + step) % len(ids)])

    @on(Tabs.TabActivated)
    def _switch(self, event: Tabs.TabActivated) -> None:
        pane_id = (event.tab.id or "tab-requests").removeprefix("tab-")
        self.query_one(ContentSwitcher).current = pane_id
        self.app.refresh_panes(full=True)  # type: ignore[attr-defined]

    def visible_panes(self) -> list[Widget]:
        return [self.query_one(f"#{self.current}")]
