"""The app: built by :func:`make_app` from a RunConfig (the CLI and the tests both use it).

It owns a :class:`~llmsurge.engine.session.RunSession`, runs it in a Textual worker, reads a snapshot from the
metrics bus on a timer and hands it to the visible screen in one batch update. Keys and palette commands call
the controller; every change takes effect in the workers at once and opens a new segment.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, work
from textual.app import App
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from llmsurge.engine.discovery import ServerError
from llmsurge.engine.session import ConfigError, RunConfig, RunSession
from llmsurge.lifetime import ExitCode, StopSignals, exit_status
from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.snapshot import Snapshot, SnapshotBuilder
from llmsurge.presets import PresetError
from llmsurge.redaction import shown
from llmsurge.tui.commands import LoadCommands
from llmsurge.tui.driver import ResilientLinuxDriver
from llmsurge.tui.screens.compact import CompactScreen
from llmsurge.tui.screens.dashboard import DashboardScreen
from llmsurge.tui.screens.main import MainScreen
from llmsurge.tui.steering import Steering

if TYPE_CHECKING:
    from llmsurge.api import LiveApi

REFRESH_HZ = 10.0
COMPACT_BELOW = (100, 28)
"""Terminals narrower or shorter than this get the compact dashboard (one pane at a time)."""
UI_NICE = 5  # the drawing thread yields the CPU to the load workers when a core is contended


def yield_to_workers() -> None:
    """Lower the priority of this (the UI's) thread only: on Linux niceness is per thread, so the workers,
    the simulated server and the collector thread, all started before, keep theirs. Drawing a frame late is
    harmless; reading a token late would be measured as server latency."""
    try:
        os.nice(UI_NICE)
    except (AttributeError, OSError):  # not on this platform, or not allowed: drawing still works
        pass


class LLMSurgeApp(App[Path | None]):
    """Live load test of one server."""

    TITLE = "llmsurge"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {LoadCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-w-compact"), (100, "-w-reduced"), (150, "-w-full"), (190, "-w-large")]
    VERTICAL_BREAKPOINTS = [(0, "-h-compact"), (28, "-h-reduced"), (44, "-h-full"), (56, "-h-large")]

    def __init__(
        self,
        config: RunConfig,
        snapshot_source: Callable[[], Snapshot] | None = None,
        refresh_hz: float = REFRESH_HZ,
        records: dict[str, RequestRecord] | None = None,
        session: RunSession | None = None,
    ) -> None:
        super().__init__()
        self.records = records
        """Finished requests by id, for a fixed snapshot (tests); a live run asks the bus."""
        self.baseline: SavedRun | None = None
        """A saved run shown beside this one (``--baseline``, or the palette's ``baseline PATH``)."""
        self.config = config
        """What to run (the CLI's flags over a preset)."""
        self.session = session or RunSession(config)
        """The run: simulated server, workers, controller, bus, result files."""
        self.live = snapshot_source is None
        """False when showing fixed snapshots (tests): no server, no workers."""
        self.snapshots = SnapshotBuilder(self.session.bus, slo=config.slo)
        """Builds the panes' snapshots (statistics recomputed about once a second)."""
        self.snapshot_source = snapshot_source or self.snapshots.snapshot
        """Where the panes' data comes from."""
        self.refresh_hz = refresh_hz
        """Snapshot reads per second."""
        self.message = ""
        """A short note for the status line (waiting, calibrating, errors)."""
        self.waiting_since: float | None = None
        """When we started waiting for the server to answer."""
        self.saved_to: Path | None = None
        """The last summary.json written."""
        self.frames = 0
        """Snapshots rendered (for the UI-cost benchmark)."""
        self.signals = StopSignals()
        """Stop signals: the first does what ``q`` does."""
        self._quitting = False
        self.steering = Steering(self)
        """What keys, the palette and the live API do to the run."""
        self.api: LiveApi | None = None
        """The live API, when --api asks for it."""
        self._drawn_stats = -1
        self._last_event = 0

    # ---- lifecycle ----------------------------------------------------------------------------
    #
    # After the first frame, what start-up built (modules, styles, screens and their widgets: ~130k objects) is
    # frozen out of the garbage collector's view: they live as long as the app, and each full collection walked
    # them all — at 20,000 streams on 2 cores one such pause held the screen still for 0.3 s (bench/RESULTS.md).
    # They are handed back when the app leaves (a process that runs several apps, as the tests do, collects them).

    def on_mount(self) -> None:
        self.install_screen(MainScreen(), name="main")
        self.install_screen(CompactScreen(), name="compact")
        self.push_screen(self._layout_for(self.size.width, self.size.height))
        if self.config.baseline is not None:
            self.call_after_refresh(self.steering.set_baseline, str(self.config.baseline))
        self.set_interval(1.0 / self.refresh_hz, self.refresh_panes)
        self.call_after_refresh(gc.freeze)  # see above
        # Panes bake colours into their text: a new theme redraws every pane, even after the run ended.
        self.theme_changed_signal.subscribe(self, lambda _theme: self.call_after_refresh(self.refresh_panes, True))
        if self.live:
            self._handle_stop_signals()
            self.run_session()

    def on_unmount(self) -> None:
        gc.unfreeze()

    @staticmethod
    def _layout_for(width: int, height: int) -> str:
        """``compact`` (one pane at a time) below 100×28, else ``main`` (every pane)."""
        return "compact" if width < COMPACT_BELOW[0] or height < COMPACT_BELOW[1] else "main"

    def on_resize(self, event: events.Resize) -> None:
        """Switch dashboards live when the terminal crosses the compact size (not under a dialog)."""
        if not isinstance(self.screen, DashboardScreen):
            return
        target = self._layout_for(event.size.width, event.size.height)
        if self.screen is not self.get_screen(target):
            self.switch_screen(target)
            self.call_after_refresh(self.refresh_panes, True)

    def _handle_stop_signals(self) -> None:
        """SIGTERM, SIGHUP (the terminal closed) and SIGINT do what ``q`` does: stop, save, leave."""
        self.signals.install(asyncio.get_running_loop(), self._stop_and_save)

    def _stop_and_save(self) -> None:
        self.run_worker(self.action_quit_and_save(), group="quit", exit_on_error=False)

    @property
    def stop_signal(self) -> int | None:
        """The signal (SIGTERM, SIGHUP, SIGINT) that ended the run, if one did."""
        return self.signals.signum

    def on_terminal_lost(self) -> None:
        """The terminal went away (the driver could not write to it): as after SIGHUP, stop and save."""
        if not self._quitting:
            self.signals.received(signal.SIGHUP, self._stop_and_save)

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver for this platform; on Linux one that survives the terminal going away (SIGHUP)."""
        driver = super().get_driver_class()
        return ResilientLinuxDriver if driver is LinuxDriver else driver

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications are text, never markup or terminal controls (server messages and file names flow into them),
        and redacted."""
        super().notify(
            shown(message, newlines=True, limit=600),
            title=shown(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    @work(exclusive=True, group="session", exit_on_error=False)
    async def run_session(self) -> None:
        """Prepare the target, start the workers, run the controller until stopped."""
        session = self.session
        self.waiting_since = time.monotonic()
        try:
            if session.config.api:  # imported only then: aiohttp's server and the exposition are not the first frame's
                from llmsurge.headless import start_api

                self.api = await start_api(session, self.steering.after_api)
            preparing = session.prepare_early()  # begun by the CLI before Textual's imports, or now
            if preparing.status:
                self._on_status(preparing.status)
            preparing.on_status = self._on_status
            await preparing.wait()
        except (ServerError, ConfigError, PresetError, ValueError, RuntimeError, OSError) as exc:
            self.waiting_since = None
            session.bus.set_state("error")
            self.message = shown(exc)
            self.notify(str(exc), title="cannot start", severity="error", timeout=30)
            return
        self.waiting_since = None
        self.message = ""
        self.snapshots.roofline = session.roofline_inputs()
        # Spawning the workers, starting NVML and probing /metrics block: not on the loop that draws the screen.
        controller = await asyncio.to_thread(session.start)
        self.snapshots.progress = controller.progress
        yield_to_workers()
        try:
            await controller.run()
        finally:
            if self.api is not None:
                await self.api.stop()

    # ---- keys: the steering does the work ------------------------------------------------------------------

    def action_concurrency(self, delta: int) -> None:
        """``+`` / ``-``: one more or fewer request in flight."""
        self.steering.step_concurrency(delta)

    def action_scale(self, factor: float) -> None:
        """``]`` / ``[``: double or halve the concurrency."""
        self.steering.scale(factor)

    def action_rate(self, direction: int) -> None:
        """``r`` / ``R``: raise or lower the request rate."""
        self.steering.step_rate(direction)

    def action_toggle_pause(self) -> None:
        """``space``: pause or resume."""
        self.steering.toggle_pause()

    def action_presets(self) -> None:
        """``p``: the preset picker."""
        self.steering.pick_preset()

    def _on_status(self, message: str) -> None:
        self.message = "" if message.startswith("waiting for") else shown(message)

    def _notify_events(self, snap: Snapshot) -> None:
        """Tell the user, once, what the run noted since the last snapshot (lost workers, disk full …)."""
        for event in snap.events:
            if event.seq > self._last_event:
                self._last_event = event.seq
                severity: SeverityLevel = "information" if event.level == "info" else event.level  # type: ignore[assignment]
                self.notify(event.message, severity=severity, timeout=8)

    def refresh_panes(self, full: bool | None = None) -> None:
        """Read one snapshot and update the visible panes in one batch; the statistics panes only when the
        snapshot's statistics are new (or ``full`` is asked for)."""
        # The topmost dashboard (a dialog may be over it); none while the app is closing and its stack emptied,
        # where the interval can still fire once (self.screen would raise then).
        screen = next((s for s in reversed(self.screen_stack) if isinstance(s, DashboardScreen)), None)
        if screen is None or not screen.ready:
            return
        snap = self.snapshot_source()
        self._notify_events(snap)
        waited = time.monotonic() - self.waiting_since if self.waiting_since is not None else None
        # The periodic statistics are drawn over a few frames; the first ones, and what a key asked for, at once.
        spread = full is None and self._drawn_stats >= 0
        if full is None:
            full = snap.stats_version != self._drawn_stats
        self._drawn_stats = snap.stats_version
        with self.batch_update():
            screen.show(snap, waited, self.message, full, spread)
        self.frames += 1

    # ---- steering (keys and palette) ---------------------------------------------------------

    def action_save(self) -> None:
        """``s``: write summary.json now."""
        if not self.steering.controller_ready:
            return
        try:
            self.saved_to = self.session.save()
        except OSError as exc:
            self.notify(f"could not save: {exc}", severity="error")
            return
        self.notify(f"saved {self.saved_to}", timeout=4)

    async def action_quit_and_save(self) -> None:
        """``q``: stop the load, save the results and leave."""
        if self._quitting:
            return
        self._quitting = True
        if not self.live:
            self.exit(None)
            return
        self.message = "stopping…"
        ctrl = self.session.controller
        if ctrl is not None:
            ctrl.stop()
            workers = [w for w in self.workers if w.group == "session" and w.state == WorkerState.RUNNING]
            if workers:
                await asyncio.wait([asyncio.ensure_future(w.wait()) for w in workers], timeout=15)
        path: Path | None = None
        if self.session.pool is not None:
            try:
                path = self.session.save()
            except OSError as exc:
                self.notify(f"could not save: {exc}", severity="error")
        await asyncio.to_thread(self.session.close)
        self.exit(path)

    async def action_quit(self) -> None:
        """Ctrl-Q / Ctrl-C: the same as ``q``."""
        await self.action_quit_and_save()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "session" and event.state == WorkerState.ERROR:
            err = event.worker.error
            self.session.bus.set_state("error")
            self.message = shown(f"{type(err).__name__}: {err}")
            self.notify(self.message, title="the run stopped", severity="error", timeout=30)


def make_app(
    config: RunConfig,
    snapshot_source: Callable[[], Snapshot] | None = None,
    records: dict[str, RequestRecord] | None = None,
    session: RunSession | None = None,
) -> LLMSurgeApp:
    """The app factory used by the CLI and the tests."""
    # multiprocessing's resource tracker passes sys.stderr's fd to its child; Textual replaces sys.stderr with
    # an object without a real fd, so start the tracker now, before the app runs and spawns workers.
    resource_tracker.ensure_running()
    return LLMSurgeApp(config, snapshot_source=snapshot_source, records=records, session=session)


def run_tui(session: RunSession) -> int:
    """Run the app in this terminal; print where the results went. Returns the exit status (128 + the signal's
    number when a signal stopped it)."""
    app = make_app(session.config, session=session)
    try:
        result = app.run()
    finally:
        if app.session.pool is not None and app.return_value is None:
            # Left without q (a crash, a closed browser page): stop the workers first, so the requests they cancel
            # are counted in summary.json as in requests.jsonl, then keep what finished.
            app.session.pool.stop()
            try:
                app.session.save()
            except OSError:
                pass
            app.session.close()
        elif app.return_value is None:  # the simulated server and warm workers, when the run never started
            app.session.close()
    if result is not None:
        try:
            print(f"llmsurge: results in {result.parent}")
        except OSError:  # the terminal is gone (SIGHUP): the results are saved all the same
            pass
    if app.stop_signal is not None:
        return exit_status(app.stop_signal)
    writer = app.session.writer
    return ExitCode.NOT_SAVED if writer is not None and writer.error is not None else ExitCode.OK
