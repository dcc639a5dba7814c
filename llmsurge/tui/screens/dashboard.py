"""What the two dashboards share: the keys that steer the load, the panes' snapshot feed, zoom and the inspector.

:class:`~llmsurge.tui.screens.main.MainScreen` lays every pane out at once (100×30 and up); the compact one
(:class:`~llmsurge.tui.screens.compact.CompactScreen`, at 80×24) shows the load and one large pane, chosen with
number keys or tabs. The app shows the one that fits the terminal, switching live on resize.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import ClassVar, TypeVar, cast

from textual import on
from textual.binding import ActiveBinding, Binding
from textual.screen import Screen
from textual.widget import Widget

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot
from llmsurge.widgets.events_pane import EventsPane
from llmsurge.widgets.latency_table import LatencyTable
from llmsurge.widgets.load_panel import LoadPanel
from llmsurge.widgets.pane import Pane, ShowsBaseline
from llmsurge.widgets.rate_chart import RateChart
from llmsurge.widgets.request_stream import RequestStream
from llmsurge.widgets.segments_table import SegmentsTable
from llmsurge.widgets.status_line import StatusLine
from llmsurge.widgets.telemetry_panes import GpuPane, HostPane, ServerPane
from llmsurge.widgets.ttft_histogram import TtftHistogram

W = TypeVar("W", bound=Widget)

PANES: tuple[tuple[str, str, type[Widget]], ...] = (
    ("rate", "output tok/s", RateChart),
    ("ttft", "TTFT histogram", TtftHistogram),
    ("latency", "latency (ms): segment | run", LatencyTable),
    ("segments", "segments", SegmentsTable),
    ("requests", "requests: running, then the newest finished", RequestStream),
    ("gpu", "GPU", GpuPane),
    ("server", "server /metrics", ServerPane),
    ("host", "host / client", HostPane),
    ("events", "events", EventsPane),
)
"""The panes below the status line and the load panel: id, title, widget (in the compact screen's tab order)."""
STATISTICS_BY_FRAME: tuple[tuple[type[Widget], ...], ...] = (
    (LatencyTable,),  # with the load panel's new figures (the same statistics period)
    (RateChart,),
    (TtftHistogram,),
    (SegmentsTable,),
    (GpuPane, ServerPane, HostPane),
)
"""The statistics panes, in the groups that new statistics are drawn in, one group a frame (each ≤ ~15 ms of CPU at
160×48, the chart's canvas drawn the frame after its plot). All in one frame took ~45 ms; on a busy host, where the
UI thread yields the CPU to the load, that frame took 0.2–0.4 s and the ticks due meanwhile were lost
(bench/RESULTS.md)."""
STATISTICS = tuple(cls for group in STATISTICS_BY_FRAME for cls in group)


@cache
def _shows_snapshots(cls: type) -> bool:
    """Whether a pane of this class is fed snapshots (a protocol check costs ~0.1 ms: asked once per class)."""
    return issubclass(cls, Pane)


def titled(widget: W, title: str) -> W:
    """``widget`` with its border title."""
    widget.border_title = title
    return widget


def make_pane(pane_id: str) -> Widget:
    """A new pane by id, titled."""
    _id, title, cls = next(p for p in PANES if p[0] == pane_id)
    return titled(cls(id=pane_id), title)


class DashboardScreen(Screen[None]):
    """A screen of panes fed by snapshots; keys call the app's steering actions."""

    BINDINGS = [
        Binding("plus", "app.concurrency(1)", "+1", key_display="+", id="concurrency-up"),
        Binding("minus", "app.concurrency(-1)", "-1", key_display="-", id="concurrency-down"),
        Binding("right_square_bracket", "app.scale(2)", "×2", key_display="]", id="concurrency-double"),
        Binding("left_square_bracket", "app.scale(0.5)", "÷2", key_display="[", id="concurrency-halve"),
        Binding("r", "app.rate(1)", "rate+", id="rate-up"),
        Binding("R", "app.rate(-1)", "rate-", key_display="R", id="rate-down"),
        Binding("space", "app.toggle_pause", "pause", key_display="space", id="pause"),
        Binding(
            "q", "app.quit_and_save", "quit", id="quit"
        ),  # early: a narrow footer cuts from the right, and quit must show
        Binding("p", "app.presets", "presets", id="presets"),
        Binding("s", "app.save", "save", id="save"),
        Binding("f", "failed_only", "failures", id="failures-only"),
        Binding("z", "zoom", "zoom", id="zoom"),
        *(  # AIPerf's habit: a number fills the screen with that pane, escape (or z) brings the dashboard back
            Binding(str(i), f"maximize_pane('{pid}')", f"pane {i}", show=False, id=f"maximize-{pid}")
            for i, (pid, _t, _c) in enumerate(PANES, 1)
        ),
        Binding("tab", "app.focus_next", "next pane", show=False, id="focus-next"),
        Binding("shift+tab", "app.focus_previous", "previous pane", show=False, id="focus-previous"),
    ]

    FOOTER: ClassVar[dict[str, tuple[int, str]]] = {
        "concurrency-up": (0, "one more"),
        "concurrency-down": (120, "one fewer"),
        "concurrency-double": (0, "double"),
        "concurrency-halve": (120, "halve"),
        "rate-up": (0, "raise rate"),
        "rate-down": (120, "lower rate"),
        "pause": (0, "pause/resume"),
        "quit": (0, "quit and save"),
        "presets": (0, "switch preset"),
        "save": (130, "save now"),
        "failures-only": (140, "failures only"),
        "zoom": (0, "zoom pane"),
        "focus-next": (160, "next pane"),
        "maximize-rate": (175, "zoom pane N"),
    }
    """Binding id → (the terminal width from which the footer shows it, its description from :data:`LONG_FOOTER`
    columns): a narrow footer keeps what matters most and is never cut, a wide one says more. Every key works at
    every width; the palette lists them all."""
    LONG_FOOTER = 220

    _ready = False

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The screen's bindings as the footer shows them at this width (see :attr:`FOOTER`)."""
        width = self.app.size.width
        out = {}
        for key, active in super().active_bindings.items():
            fit = self.FOOTER.get(active.binding.id or "")
            if fit is not None:
                at, long = fit
                binding = replace(active.binding, show=width >= at)
                if binding.id == "maximize-rate":  # one entry stands for 1-9
                    binding = replace(binding, key_display="1-9", description="zoom pane")
                if width >= self.LONG_FOOTER:
                    binding = replace(binding, description=long)
                active = active._replace(binding=binding)
            out[key] = active
        return out

    def on_resize(self) -> None:
        """The footer fits the new width."""
        self.refresh_bindings()

    def __init__(self) -> None:
        super().__init__()
        self._owed: list[list[Pane]] = []
        """Statistics panes not yet drawn since the statistics were recomputed, one group per coming frame."""
        self._size_classes()

    def _size_classes(self) -> None:
        """The size classes (``-w-full``, ``-h-reduced``…) Textual sets at the first Resize, set now from the
        app's size, before the panes are first styled: that Resize then changes nothing, and the whole screen is not
        styled twice before its first frame (~0.1 s of a start-up)."""
        app = self.app
        width, height = app.size
        for size, points in ((width, app.HORIZONTAL_BREAKPOINTS), (height, app.VERTICAL_BREAKPOINTS)):
            self.add_class(*self._get_breakpoint_classes(size, points or []), update=False)

    @property
    def ready(self) -> bool:
        """True once every pane is in the DOM and until the screen starts closing (snapshots arriving earlier or
        later are skipped)."""
        if self._closing or self._closed or not self.app.is_running:
            return False
        if not self._ready:
            self._ready = bool(self.query(HostPane)) and bool(self.query(StatusLine))
        return self._ready

    def on_screen_resume(self) -> None:
        """Shown again (or for the first time, after a resize): take up the app's baseline."""
        self.set_baseline(getattr(self.app, "baseline", None))

    def set_baseline(self, baseline: SavedRun | None) -> None:
        """Hand a saved run to the panes that show it beside this run (attributes down)."""
        for pane in self.query("*"):
            if isinstance(pane, ShowsBaseline):
                pane.baseline = baseline

    def action_failed_only(self) -> None:
        """``f``: the request stream shows failures only (the ones people open first), or everything again."""
        on = self.query_one(RequestStream).toggle_failed_only()
        self.notify("failed requests only (f again: all)" if on else "all requests", timeout=2)

    def action_zoom(self) -> None:
        """``z``: the focused pane fills the screen; ``z`` (or escape) again: back (tmux's habit)."""
        if self.maximized is not None:
            self.minimize()
            return
        pane = self.focused
        while pane is not None and pane.parent is not self and pane.id not in {p[0] for p in PANES}:
            pane = pane.parent if isinstance(pane.parent, Widget) else None
        if pane is None or pane.id not in {p[0] for p in PANES} | {"load"}:
            self.notify("focus a pane first (tab, or a click), then z", timeout=3)
            return
        self.maximize(pane, container=False)

    def action_maximize_pane(self, pane_id: str) -> None:
        """``1``–``9``: pane N fills the screen (again: back)."""
        pane = self.query_one(f"#{pane_id}")
        if self.maximized is pane:
            self.minimize()
            return
        self.maximize(pane, container=False)

    @on(RequestStream.Inspect)
    def open_inspector(self, message: RequestStream.Inspect) -> None:
        """Enter (or a double click) on a request: the inspector."""
        steering = getattr(self.app, "steering", None)  # the app's (a screen is shown in tests without one too)
        if steering is not None:
            steering.inspect(message.request_id)

    def visible_panes(self) -> list[Widget]:
        """The panes that are shown now (all of them here; the compact screen shows one)."""
        return [self.query_one(f"#{p[0]}") for p in PANES]

    def show(
        self, snap: Snapshot, waiting_for: float | None, message: str, full: bool = True, spread: bool = False
    ) -> None:
        """Hand the snapshot to the visible panes (the app wraps this in one batch update).

        The status line, load panel and request stream follow every snapshot; the statistics panes (chart,
        histogram, tables, telemetry) only when ``full``: when the snapshot's statistics were recomputed (about
        once a second, and at once after a change of load or of the pane shown). With ``spread`` (the periodic
        statistics) they are drawn over the next frames in :data:`STATISTICS_BY_FRAME`'s groups, each from the
        snapshot of its frame; without it (a key, a resize, a theme) all of them now.
        """
        self.query_one(StatusLine).show(snap, waiting_for, message)
        self.query_one(LoadPanel).show(snap)
        visible = self.visible_panes()
        for widget in visible:
            if not isinstance(widget, STATISTICS) and _shows_snapshots(type(widget)):
                cast(Pane, widget).show(snap)
        if full:
            owed = (
                [p for p in visible if isinstance(p, group) and _shows_snapshots(type(p))]
                for group in STATISTICS_BY_FRAME
            )
            self._owed = [cast(list[Pane], group) for group in owed if group]
        for panes in self._owed[:1] if spread else self._owed:
            for pane in panes:
                pane.show(snap)
        self._owed = self._owed[1:] if spread else []
