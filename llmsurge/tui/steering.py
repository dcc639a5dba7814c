"""The app's steering: keys and palette commands that change the load, the SLO, the preset and the baseline, and
open a request in the inspector. Every load change takes effect in the workers at once and opens a new segment."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from llmsurge.engine import limits
from llmsurge.engine.client import curl_command
from llmsurge.engine.scenario import Load, Scenario
from llmsurge.engine.session import ConfigError
from llmsurge.metrics.bus import RATE_ENOUGH
from llmsurge.metrics.runs import RunFileError, load_run
from llmsurge.net import Target
from llmsurge.presets import PresetError, find_preset
from llmsurge.tui.screens.dashboard import DashboardScreen
from llmsurge.tui.screens.inspector import InspectorScreen
from llmsurge.tui.screens.presets import PresetPicker

if TYPE_CHECKING:
    from llmsurge.engine.session import RunSession
    from llmsurge.tui.app import LLMSurgeApp


class Steering:
    """What the keys, the palette and the live API do to a running TUI: owned by the app, which hands its actions
    here; it tells the user through the app (toasts) and redraws the panes at once."""

    def __init__(self, app: LLMSurgeApp) -> None:
        self.app = app

    @property
    def session(self) -> RunSession:
        """The app's run."""
        return self.app.session

    @property
    def controller_ready(self) -> bool:
        """Whether the run has started (keys do nothing before that)."""
        ready = self.session.controller is not None
        if not ready:
            self.app.notify("the run has not started yet", severity="warning")
        return ready

    def _load(self) -> Load:
        assert self.session.controller is not None
        return self.session.controller.load

    def set_concurrency(self, n: int) -> None:
        """Closed loop with ``n`` requests in flight (a new segment)."""
        if not self.controller_ready:
            return
        try:
            n = limits.steered_concurrency(n)  # the limits a flag and the live API have
        except ValueError as exc:
            self.app.notify(str(exc), severity="warning")
            return
        assert self.session.controller is not None
        self.session.controller.set_concurrency(n)
        self.app.refresh_panes(full=True)  # show the new target now, not at the next tick
        self.app.notify(f"concurrency {n}", timeout=2)

    def set_rate(self, rate: float) -> None:
        """Open loop at ``rate`` requests/s (a new segment)."""
        if not self.controller_ready:
            return
        assert self.session.controller is not None
        try:
            rate = limits.steered_rate(round(rate, 2))
        except ValueError as exc:
            self.app.notify(str(exc), severity="warning")
            return
        self.session.controller.set_rate(rate)
        self.app.refresh_panes(full=True)
        self.app.notify(f"rate {rate:g}/s", timeout=2)

    def _closed_base(self) -> int:
        load = self._load()
        if load.concurrency is not None and not load.is_open_loop:
            return load.concurrency
        return max(1, self.session.bus.inflight_total)  # from rate mode: start from what is in flight

    def step_concurrency(self, delta: int) -> None:
        """``+`` / ``-``: one more or fewer request in flight."""
        if self.controller_ready:
            self.set_concurrency(min(limits.MAX_CONCURRENCY, max(1, self._closed_base() + int(delta))))

    def scale(self, factor: float) -> None:
        """``]`` / ``[``: double or halve the concurrency."""
        if self.controller_ready:  # a key stops at the limits (the palette and the API are told them)
            self.set_concurrency(min(limits.MAX_CONCURRENCY, max(1, math.floor(self._closed_base() * float(factor)))))

    def step_rate(self, direction: int) -> None:
        """``r`` / ``R``: raise or lower the request rate (from closed loop: start at the current req/s)."""
        if not self.controller_ready:
            return
        load = self._load()
        if load.rate is None:  # from a closed loop: the rate it holds, measured, then one step the way asked
            held = self.session.bus.view().request_rate.value(enough=RATE_ENOUGH)
            if held is None:
                self.app.notify(
                    "the request rate is not measured yet (too few completions in this segment): try again shortly",
                    severity="warning",
                )
                return
            self.set_rate(max(limits.MIN_RATE, round(held * (1.1 if direction > 0 else 0.9), 2)))
            return
        step = max(0.1, round(load.rate * 0.1, 2))
        wanted = load.rate + step * (1 if direction > 0 else -1)
        self.set_rate(min(limits.MAX_RATE, max(limits.MIN_RATE, wanted)))

    def set_slo(self, metric: str, seconds: float | None) -> None:
        """Set (or, with None, drop) one SLO threshold; goodput is recomputed for every segment."""
        slo = self.session.slo.with_limit(metric, seconds)
        self.session.slo = slo
        self.app.snapshots.set_slo(slo)
        self.app.refresh_panes(full=True)
        self.app.notify(f"SLO: {slo.describe() or 'none'}", timeout=3)

    def set_baseline(self, path: str) -> None:
        """Show a saved run beside this one: its figures at each load in the segments table, its TTFT histogram
        and its throughput on the charts."""
        try:
            run = load_run(path)
        except RunFileError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.baseline = run
        for name in ("main", "compact"):
            screen = self.app.get_screen(name)
            if isinstance(screen, DashboardScreen) and screen.is_mounted:
                screen.set_baseline(run)
        self.app.refresh_panes(full=True)
        self.app.notify(f"baseline: {run.label} ({', '.join(s.load for s in run.segments)})", timeout=4)

    def inspect(self, request_id: str) -> None:
        """Open a finished request in the inspector."""
        rec = (
            self.app.records.get(request_id)
            if self.app.records is not None
            else self.session.bus.find_record(request_id)
        )
        if rec is None:
            self.app.notify("that request is still running (or no longer kept): open it once it has finished")
            return
        target = self.session.target or Target.from_url(self.app.config.url or "http://127.0.0.1:8000")
        curl = curl_command(target, rec.body, self.app.config.api_key_env, self.session.scenario.shape.endpoint)
        self.app.push_screen(InspectorScreen(rec, curl))

    def toggle_pause(self) -> None:
        """``space``: stop starting requests (in flight drain), or start again."""
        if self.controller_ready:
            assert self.session.controller is not None
            paused = self.session.controller.toggle_pause()
            self.app.notify("paused: requests in flight finish" if paused else "resumed", timeout=2)

    def pick_preset(self) -> None:
        """``p``: the preset picker."""
        current = self.session.controller.scenario.name if self.session.controller else self.session.scenario.name

        def chosen(name: str | None) -> None:
            if name:
                self.switch_preset(name)

        self.app.push_screen(PresetPicker(current), chosen)

    def switch_preset(self, name: str) -> None:
        """Switch to preset ``name`` without stopping the run (a new segment)."""
        if not self.controller_ready:
            return
        try:
            scenario = self.session.adapt(find_preset(name))
        except (PresetError, ConfigError) as exc:
            self.app.notify(str(exc), severity="error")
            return
        self._switch(scenario)

    def run_quality(self, concurrency: int) -> None:
        """The quality set at ``concurrency`` (a new segment whose score shows in the segments table)."""
        if not self.controller_ready:
            return
        try:
            scenario = self.session.adapt(find_preset("quality").with_overrides(concurrency=concurrency))
        except (PresetError, ConfigError) as exc:
            self.app.notify(str(exc), severity="error")
            return
        assert self.session.controller is not None
        back = self.session.controller.load.describe()
        self.session.controller.interlude(scenario)
        self.session.bus.set_info(preset=scenario.name)
        self.app.notify(f"the quality set at c={concurrency}, then back to {back}", timeout=4)

    def after_api(self, answer: dict[str, object]) -> None:
        """The live API changed the run: the panes follow at once, and a toast says so."""
        if self.app.snapshots.slo != self.session.slo:
            self.app.snapshots.set_slo(self.session.slo)
        self.app.refresh_panes(full=True)
        self.app.notify(f"steered by the API: {answer['applied']} → {answer['target']}", timeout=4)

    def _switch(self, scenario: Scenario) -> None:
        assert self.session.controller is not None
        if scenario.slo and not self.session.slo:  # a preset's promise, when none was given
            from llmsurge.metrics.slo import parse_slo

            self.session.slo = parse_slo(scenario.slo)
            self.app.snapshots.set_slo(self.session.slo)
        self.session.controller.switch_scenario(scenario)
        self.session.bus.set_info(preset=scenario.name)
        self.app.notify(f"preset {scenario.name}: {scenario.description}", timeout=4)
