"""The controller: the API the TUI and the headless runner call to steer a run.

``Controller.run()`` drives a scenario's warm-up and stages; ``set_concurrency``, ``set_rate``, ``pause``,
``resume``, ``switch_scenario`` and ``stop`` work while it runs. Every change of load opens a new segment in
the :class:`~llmsurge.metrics.bus.MetricsBus`. The workers that carry the load are the
:class:`~llmsurge.engine.pool.WorkerPool`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from llmsurge.engine.hooks import ServerHooks
from llmsurge.engine.pool import UNLIMITED, WorkerPool
from llmsurge.engine.scenario import Load, Scenario, Search, Stage
from llmsurge.engine.worker import Pause, Resume
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.model import Capacity, CapacityLevel
from llmsurge.metrics.snapshot import RunProgress

DRAIN_GRACE_S = 30.0


PAUSED = "paused"
"""The label of a pause's segment."""


class Controller:
    """Steers a run: warm-up, stages, live changes, pause, stop. All methods are safe to call from the UI."""

    def __init__(
        self,
        pool: WorkerPool,
        bus: MetricsBus,
        scenario: Scenario,
        keep_alive: bool = False,
        drain_grace: float = DRAIN_GRACE_S,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.scenario = scenario
        self.keep_alive = keep_alive
        self.drain_grace = drain_grace
        self.load: Load = scenario.stages[0].load
        self.segment = 0
        self.paused = False
        self.finished = False
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._restart: Scenario | None = None
        self.manual = False
        self.judge: Callable[[int], float | None] | None = None
        self.before_load: Callable[[], Awaitable[None]] | None = None
        self.hooks: ServerHooks | None = None
        """The server hooks the run asked for (``--reset-cache``, ``--profile``), around each stage it runs."""
        self._stages_run = 0
        """Awaited once, after the warm-up and before the first segment opens (the server's clock is read then)."""
        """A segment's share of good requests (the SLO's), for a capacity search."""
        self.capacity: Capacity | None = None
        """A capacity search's outcome: the highest load that held, and every level tried."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scenario_start: tuple[float, int] | None = None  # (monotonic, requests ended) when stage 1 opened
        self._after: tuple[Scenario, Load] | None = None
        """What to go back to once an interlude's scenario is done."""

    # ---- the API ------------------------------------------------------------------------------

    def set_load(self, load: Load) -> int:
        """Apply a new load now (a new segment); returns the segment number."""
        self.load = load
        self.manual = True
        if self.finished:  # the scenario's bound is spent: the run goes on until stopped
            self._scenario_start = None
            self.pool.set_tickets(UNLIMITED)
            self.finished = False
            self.bus.set_state("paused" if self.paused else "running")
        self._open(load)
        self._changed.set()
        return self.segment

    def set_concurrency(self, n: int) -> int:
        """Closed loop with ``n`` concurrent requests."""
        return self.set_load(Load(concurrency=max(0, int(n))))

    def set_rate(self, rate: float) -> int:
        """Open loop at ``rate`` requests/s, keeping the current arrival law."""
        rated = self.load.rate is not None and self.load.trace is None  # a trace's schedule is not a rate
        base = self.load if rated else Load(rate=rate, arrival="poisson")
        return self.set_load(replace(base, rate=max(0.01, float(rate)), concurrency=None))

    def pause(self) -> None:
        """Start no new requests; those in flight finish. The pause is a segment of its own (``paused``): no
        segment's rate averages it in, in the TUI or in summary.json, and the run's record shows when it was."""
        if self.paused:
            return
        self.paused = True
        self.pool.broadcast(Pause())
        self.segment = self.bus.open_segment(PAUSED, self.scenario.name)
        self.bus.set_state("paused", paused=True)

    def resume(self) -> None:
        """Start requests again, at the load set before the pause, in a new segment."""
        if not self.paused:
            return
        self.paused = False
        if not self.finished:
            self._open(self.load)
        self.pool.broadcast(Resume())
        self.bus.set_state("done" if self.finished else "running", paused=False)

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether now paused."""
        if self.paused:
            self.resume()
        else:
            self.pause()
        return self.paused

    def switch_scenario(self, scenario: Scenario) -> None:
        """Start ``scenario`` from its first stage, without stopping the run (a new segment)."""
        self._restart = scenario
        self._changed.set()

    def interlude(self, scenario: Scenario) -> None:
        """Run ``scenario`` once (the quality set, say), then go back to the load that was running, each in a new
        segment: the run goes on."""
        self._after = (self.scenario, self.load)
        self.switch_scenario(scenario)

    def stop(self) -> None:
        """End the run (Ctrl-C, ``q``, a signal): in-flight requests are cancelled and recorded as such."""
        self._stop.set()
        self._changed.set()

    def stop_from_thread(self) -> None:
        """End the run from another thread (the result writer failing, say)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stop)

    def progress(self) -> RunProgress | None:
        """How far the scenario has come, when it is bounded (every stage by requests, or every one by time); None
        otherwise. Steering by hand keeps the bound (a stage still ends at its time or its request budget), so the
        progress stays; once the scenario has ended and a key starts more load, the run is unbounded."""
        start = self._scenario_start
        stages = self.scenario.stages
        if start is None or self.finished or self.scenario.search is not None:
            return None
        elapsed = time.monotonic() - start[0]
        if all(st.requests for st in stages):
            total = float(sum(st.requests or 0 for st in stages))
            done = float(self.bus.finished_total - start[1])
            eta = elapsed / done * (total - done) if done else None
            left = self.bus.started_total - self.bus.finished_total
            draining = left if self.pool.tickets_left == 0 and self.load is stages[-1].load and left > 0 else 0
            return RunProgress(done=min(done, total), total=total, unit="requests", eta_s=eta, draining=draining)
        if all(st.duration for st in stages):
            total = float(sum(st.duration or 0.0 for st in stages))
            return RunProgress(done=min(elapsed, total), total=total, unit="s", eta_s=max(0.0, total - elapsed))
        return None

    # ---- the schedule -------------------------------------------------------------------------

    def _open(self, load: Load) -> None:
        self.segment = self.bus.open_segment(load.describe(), self.scenario.name)
        self.pool.apply(self.segment, load, self.scenario)

    async def _sleep_or_change(self, seconds: float) -> None:
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _drain(self, grace: float) -> None:
        """Wait for the requests in flight to finish (up to ``grace`` seconds, or until a stop or a new scenario)."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._stop.is_set() and self._restart is None:
            if self.bus.started_total <= self.bus.finished_total:
                return
            await asyncio.sleep(0.05)

    def _budget_done(self, started_base: int, n: int) -> bool:
        """All ``n`` requests of a budget have started (as the workers reported) and have finished."""
        started = self.bus.started_total
        return self.pool.tickets_left == 0 and started >= started_base + n and started <= self.bus.finished_total

    async def _warmup(self) -> None:
        n = self.scenario.warmup
        if n <= 0:
            return
        self.bus.set_state("warmup")
        c = self.scenario.stages[0].load.concurrency or 1
        base = self.bus.started_total
        self.pool.apply(0, Load(concurrency=max(1, min(n, c))), self.scenario.for_warmup())
        self.pool.set_tickets(n)
        while not self._stop.is_set() and self._restart is None:
            if self._budget_done(base, n):
                break
            await self._sleep_or_change(0.05)
        self.pool.apply(0, Load(concurrency=0), self.scenario)

    async def _run_stage(self, stage: Stage) -> bool:
        """Run one stage (the server's hooks before and after it); returns False when the run was stopped or
        switched."""
        index = self._stages_run
        self._stages_run += 1
        if self.hooks is not None:
            await self.hooks.before_stage(index)
        ran = await self._run_one_stage(stage)
        if self.hooks is not None:
            await self.hooks.after_stage(index)
        return ran

    async def _run_one_stage(self, stage: Stage) -> bool:
        self.load = stage.load
        base = self.bus.started_total
        self._open(stage.load)
        self.pool.set_tickets(stage.requests if stage.requests is not None else UNLIMITED)
        deadline = time.monotonic() + stage.duration if stage.duration else None
        while True:
            if self._stop.is_set() or self._restart is not None:
                return False
            if stage.requests is not None and self._budget_done(base, stage.requests):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return True
            wait = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            await self._sleep_or_change(wait)

    async def _run_scenario(self) -> bool:
        """Warm-up then every stage (or a capacity search); False if interrupted."""
        self.manual = False
        await self._warmup()
        if self.before_load is not None:
            before, self.before_load = self.before_load, None
            await before()
        self.bus.set_state("paused" if self.paused else "running")
        if self.scenario.search is not None:
            return await self._run_search(self.scenario.search)
        previous = 0.0
        self._scenario_start = (time.monotonic(), self.bus.finished_total)
        for i, stage in enumerate(self.scenario.stages):
            if not await self._run_stage(stage):
                return False
            if self.scenario.stop_on_plateau and not self.manual:
                tput = self.bus.delivered_output_throughput(self.segment) if self.segment else 0.0
                if i > 0 and tput < previous * 1.05:
                    self.bus.note(f"throughput stopped growing at {stage.load.describe()}: ramp ends")
                    break
                previous = max(previous, tput)
        return True

    async def _run_search(self, search: Search) -> bool:
        """Raise the load until the good share drops below the target: doubling, then bisecting. What was found
        is kept in :attr:`capacity` after every level, so an interrupted search still reports it (``partial``)."""
        held: float | None = None
        failed: float | None = None
        tried: list[CapacityLevel] = []
        level: float | None = search.start
        self._record_capacity(search, held, failed, tried, partial=True)
        while level is not None and len(tried) < search.max_levels:
            load = search.load_at(level)
            if not await self._run_stage(Stage(load, duration=search.level_duration)):
                self._say_capacity(search, held, tried, partial=True)
                return False
            # The verdict counts every request the level started: no new one starts, and those in flight end
            # first. Judged at the level's end, the ones still waiting for a slot — the first to miss the SLO —
            # were left out, and a level past the knee could read 100% good.
            self.pool.set_tickets(0)
            await self._drain(self.scenario.shape.timeout + 1.0)
            if self._stop.is_set() or self._restart is not None:
                self._say_capacity(search, held, tried, partial=True)
                return False
            share = self.judge(self.segment) if self.judge is not None else None
            ok = share is not None and share >= search.target
            tried.append(CapacityLevel(load=load.describe(), level=level, good_share=share, held=ok))
            verdict = "held" if ok else "missed"
            good = "no request ended" if share is None else f"{share:.0%} good"
            self.bus.note(f"find-max: {load.describe()}: {good} (target {search.target:.0%}): {verdict}")
            if ok:
                held = max(held or level, level)
            else:
                failed = min(failed or level, level)
            self._record_capacity(search, held, failed, tried, partial=True)
            level = search.next_level(held, failed)
            if level is not None and any(t.level == level for t in tried):
                level = None
        self._record_capacity(search, held, failed, tried, partial=False)
        self._say_capacity(search, held, tried, partial=False)
        return True

    def _record_capacity(
        self, search: Search, held: float | None, failed: float | None, tried: list[CapacityLevel], partial: bool
    ) -> None:
        self.capacity = Capacity(
            mode=search.mode,
            target_good_share=search.target,
            max_held=held,
            max_held_load=search.load_at(held).describe() if held is not None else None,
            first_failed=failed,
            levels=tuple(tried),
            partial=partial,
        )

    def _say_capacity(self, search: Search, held: float | None, tried: list[CapacityLevel], partial: bool) -> None:
        target = f"{search.target:.0%} good"
        best = search.load_at(held).describe() if held is not None else None
        if partial:
            found = f"{best} is the most that held {target} so far" if best else f"no level held {target} yet"
            self.bus.note(
                f"capacity search interrupted after {len(tried)} level(s): {found} (partial result)", "warning"
            )
            return
        self.bus.note(
            f"capacity: {best} is the most that held {target}"
            if best
            else f"capacity: not even the first level held {target}"
        )

    async def run(self) -> None:
        """Run the scenario (and any the user switches to) until done, or until ``stop()``."""
        try:
            await self._run()
        finally:
            if self.hooks is not None:  # a profiler started is stopped, however the run ends
                await asyncio.shield(self.hooks.stop())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.pool.wait_ready()
        overdue = False
        while True:
            completed = await self._run_scenario()
            if self._restart is not None:
                self.scenario, self._restart = self._restart, None
                continue
            if self._stop.is_set():
                break
            if completed and self._after is not None:  # an interlude is over: back to the load that ran before
                done = self.scenario.name
                self.scenario, load = self._after
                self._after = None
                self.set_load(load)
                self.bus.note(f"the {done} set is done: back to {load.describe()}")
                while not self._stop.is_set() and self._restart is None:
                    await self._sleep_or_change(0.5)
                if self._restart is not None:
                    continue
                break
            if completed:
                self.pool.set_tickets(0)
                await self._drain(self.drain_grace)
                overdue = self.bus.inflight_total > 0 and not self._stop.is_set()
                self.finished = True
                self.bus.set_state("done")
                if not self.keep_alive:
                    break
                overdue = False  # in the TUI the run stays up: what is left in flight goes on
                self.bus.close_segment()
                # Stay up for live changes or a new scenario until stop().
                while not self._stop.is_set() and self._restart is None:
                    await self._sleep_or_change(0.5)
                if self._restart is not None:
                    self.scenario, self._restart = self._restart, None
                    self.finished = False
                    continue
                break
        self.pool.set_tickets(0)
        self.bus.set_state("stopping")
        if overdue:
            self.bus.note(
                f"{self.bus.inflight_total} request(s) still in flight {self.drain_grace:g}s after the run ended:"
                " recorded as timeout failures",
                "warning",
            )
        await asyncio.to_thread(self.pool.stop, overdue=overdue)
        self.bus.close_segment()
        self.bus.set_state("done")
        self.finished = True
