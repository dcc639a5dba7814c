"""The worker pool and the controller: the API the TUI and the headless runner call to steer a run.

``Controller.run()`` drives a scenario's warm-up and stages; ``set_concurrency``, ``set_rate``, ``pause``,
``resume``, ``switch_scenario`` and ``stop`` work while it runs. Every change of load opens a new segment in
the :class:`~llmsurge.metrics.bus.MetricsBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from llmsurge.engine.client import Target
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, Scenario, Stage
from llmsurge.engine.worker import PAUSE, RESUME, STOP, WAKE, LoadCommand, WorkerSpec, worker_main
from llmsurge.metrics.bus import MetricsBus, WorkerTick

UNLIMITED = -1
DRAIN_GRACE_S = 30.0


def auto_workers(cpus: int | None = None) -> int:
    """Workers for this machine: one per core we may use, leaving one for the UI/sim when there are several."""
    n = cpus or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, min(8, n - 1 if n > 2 else 1))


def split_load(load: Load, n: int) -> list[Load]:
    """Each worker's share: concurrency spread as evenly as whole users allow; rate split equally."""
    if load.rate is not None:
        cap = load.max_concurrency
        return [
            replace(load, rate=load.rate / n, max_concurrency=(cap // n + (1 if i < cap % n else 0)) if cap else None)
            for i in range(n)
        ]
    c = load.concurrency or 0
    return [replace(load, concurrency=c // n + (1 if i < c % n else 0)) for i in range(n)]


class WorkerPool:
    """Worker processes, their command queues, the shared ticket counter and the collector thread."""

    def __init__(
        self,
        target: Target,
        calibration: Calibration,
        bus: MetricsBus,
        workers: int = 1,
        seed: int = 0,
        measure_read_delay: bool = False,
    ) -> None:
        self.target = target
        self.calibration = calibration
        self.bus = bus
        self.n = max(1, workers)
        self.seed = seed
        self.measure_read_delay = measure_read_delay
        self._ctx = mp.get_context("spawn")
        # [segment the budget is for, requests left (-1: no budget)]: a worker takes a ticket only once it
        # runs that segment, so no request is started under a segment that has already been closed.
        self.tickets = self._ctx.Array("q", 2)
        self.out: Any = self._ctx.Queue()
        self.commands: list[Any] = []
        self.procs: list[Any] = []
        self._ready: set[int] = set()
        self._final: set[int] = set()
        self.errors: list[str] = []
        self._collector: threading.Thread | None = None
        self._ready_evt = threading.Event()
        self._final_evt = threading.Event()

    def start(self) -> None:
        """Spawn the workers and the collector thread."""
        for i in range(self.n):
            q = self._ctx.Queue()
            spec = WorkerSpec(i, self.target, self.calibration, self.seed, self.measure_read_delay)
            p = self._ctx.Process(
                target=worker_main, args=(spec, q, self.out, self.tickets), daemon=True, name=f"llmsurge-worker-{i}"
            )
            p.start()
            self.commands.append(q)
            self.procs.append(p)
        self._collector = threading.Thread(target=self._collect, daemon=True, name="llmsurge-collector")
        self._collector.start()

    def _collect(self) -> None:
        while True:
            try:
                item = self.out.get(timeout=0.5)
            except queue.Empty:
                if self._final_evt.is_set():
                    return
                if self.procs and not any(p.is_alive() for p in self.procs):
                    self._final_evt.set()
                    self._ready_evt.set()
                    return
                continue
            except (EOFError, OSError):
                return
            if isinstance(item, WorkerTick):
                self.bus.ingest(item)
                if item.final:
                    self._final.add(item.worker)
                    if len(self._final) >= self.n:
                        self._final_evt.set()
                        return
            elif isinstance(item, tuple) and item and item[0] == "ready":
                self._ready.add(item[1])
                if len(self._ready) >= self.n:
                    self._ready_evt.set()
            elif isinstance(item, tuple) and item and item[0] == "error":
                self.errors.append(f"worker {item[1]}: {item[2]}")
                self._final.add(item[1])
                if len(self._final) >= self.n:
                    self._final_evt.set()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker has started its loop."""
        ok = await asyncio.to_thread(self._ready_evt.wait, timeout)
        if not ok or len(self._ready) < self.n:
            detail = "; ".join(self.errors) or "they did not report ready"
            raise RuntimeError(f"worker processes failed to start: {detail}")

    def set_tickets(self, n: int) -> None:
        """How many more requests may start (``UNLIMITED`` for no budget)."""
        with self.tickets.get_lock():
            self.tickets[1] = n
        self.broadcast(WAKE)

    @property
    def tickets_left(self) -> int:
        """Requests that may still start (``UNLIMITED`` = no budget)."""
        return int(self.tickets[1])

    def broadcast(self, cmd: Any) -> None:
        """Send one command to every worker."""
        for q in self.commands:
            q.put(cmd)

    def apply(self, segment: int, load: Load, scenario: Scenario) -> None:
        """Give every worker its share of ``load``; the request budget now belongs to ``segment``."""
        with self.tickets.get_lock():
            self.tickets[0] = segment
        for q, share in zip(self.commands, split_load(load, self.n), strict=False):
            q.put(LoadCommand(segment, share, scenario.shape))

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is in flight, collect the last records and end the processes."""
        if not self.procs:
            return
        self.broadcast(STOP)
        self._final_evt.wait(timeout)
        for p in self.procs:
            p.join(2.0)
            if p.is_alive():
                p.terminate()
        if self._collector is not None:
            self._collector.join(2.0)
        self.procs = []


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
        self.stage_index = 0
        self.manual = False
        self.on_event: Callable[[str], None] | None = None

    # ---- the API ------------------------------------------------------------------------------

    def set_load(self, load: Load) -> int:
        """Apply a new load now (a new segment); returns the segment number."""
        self.load = load
        self.manual = True
        if self.finished:
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
        base = self.load if self.load.is_open_loop else Load(rate=rate, arrival="poisson")
        return self.set_load(replace(base, rate=max(0.01, float(rate)), concurrency=None))

    def pause(self) -> None:
        """Start no new requests; those in flight finish."""
        self.paused = True
        self.pool.broadcast(PAUSE)
        self.bus.set_state("paused", paused=True)

    def resume(self) -> None:
        """Start requests again."""
        self.paused = False
        self.pool.broadcast(RESUME)
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

    def stop(self) -> None:
        """End the run (Ctrl-C, ``q``): in-flight requests are cancelled and recorded as such."""
        self._stop.set()
        self._changed.set()

    # ---- the schedule -------------------------------------------------------------------------

    def _open(self, load: Load) -> None:
        self.segment = self.bus.open_segment(load.describe(), self.scenario.name)
        self.pool.apply(self.segment, load, self.scenario)
        if self.on_event:
            self.on_event(f"segment {self.segment}: {load.describe()}")

    async def _sleep_or_change(self, seconds: float) -> None:
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _drain(self, grace: float) -> None:
        """Wait for the requests in flight to finish (up to ``grace`` seconds)."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._stop.is_set():
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
        self.pool.apply(0, Load(concurrency=max(1, min(n, c))), self.scenario)
        self.pool.set_tickets(n)
        while not self._stop.is_set() and self._restart is None:
            if self._budget_done(base, n):
                break
            await self._sleep_or_change(0.05)
        self.pool.apply(0, Load(concurrency=0), self.scenario)

    async def _run_stage(self, stage: Stage) -> bool:
        """Run one stage; returns False when the run was stopped or switched."""
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
        """Warm-up then every stage; False if interrupted."""
        self.manual = False
        await self._warmup()
        self.bus.set_state("paused" if self.paused else "running")
        previous = 0.0
        for i, stage in enumerate(self.scenario.stages):
            self.stage_index = i
            if not await self._run_stage(stage):
                return False
            if self.scenario.stop_on_plateau and not self.manual:
                seg = self.bus.current_segment()
                tput = seg.summary(time.monotonic())["output_throughput"] if seg else 0.0
                if i > 0 and tput < previous * 1.05:
                    if self.on_event:
                        self.on_event(f"throughput stopped growing at {stage.load.describe()}: ramp ends")
                    break
                previous = max(previous, tput)
        return True

    async def run(self) -> None:
        """Run the scenario (and any the user switches to) until done, or until ``stop()``."""
        await self.pool.wait_ready()
        while True:
            completed = await self._run_scenario()
            if self._restart is not None:
                self.scenario, self._restart = self._restart, None
                continue
            if self._stop.is_set():
                break
            if completed:
                self.pool.set_tickets(0)
                await self._drain(self.drain_grace)
                self.bus.close_segment()
                self.finished = True
                self.bus.set_state("done")
                if not self.keep_alive:
                    break
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
        await asyncio.to_thread(self.pool.stop)
        self.bus.close_segment()
        self.bus.set_state("done")
        self.finished = True
