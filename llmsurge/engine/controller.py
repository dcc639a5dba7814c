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
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from llmsurge.engine.dataset import load_index
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, Scenario, Search, Stage
from llmsurge.engine.tickets import MAX_WORKER_IDS, TAKEN_BASE, TICKET_SEGMENT, TICKETS_LEFT, LocalTickets, TicketsBase
from llmsurge.engine.worker import (
    LoadCommand,
    Pause,
    Resume,
    Stop,
    Wake,
    WorkerCommand,
    WorkerSpec,
    worker_main,
)
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.wire import WorkerCrashed, WorkerReady, WorkerTick
from llmsurge.net import Target

UNLIMITED = -1
DRAIN_GRACE_S = 30.0
MAX_WORKERS = 64
LIVENESS_EVERY_S = 0.25
MAX_REPLACEMENTS = 8


def usable_cpus() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_workers(cpus: int | None = None) -> int:
    """Workers for this machine: one per core we may use, leaving one for the UI/sim when there are several."""
    n = cpus or usable_cpus()
    return max(1, min(8, n - 1 if n > 2 else 1))


def cap_workers(requested: int, peak_concurrency: int | None, cpus: int | None = None) -> tuple[int, str]:
    """``requested`` workers capped at what can be used: one per core, and no more than requests in flight.

    Returns the count and a one-line note when it was capped ('' otherwise)."""
    cpus = cpus or usable_cpus()
    limits = [(cpus, f"{cpus} core(s)"), (MAX_WORKERS, f"the maximum of {MAX_WORKERS}")]
    if peak_concurrency:
        limits.append((peak_concurrency, f"at most {peak_concurrency} request(s) in flight"))
    n, why = min(limits, key=lambda x: x[0])
    if requested <= n:
        return requested, ""
    return n, f"--workers {requested} capped at {n}: this run can use no more ({why})"


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


class LocalBackend:
    """Workers as processes of this machine (spawned, so each has its own interpreter and event loop)."""

    name = "local"

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")

    def room(self, requested: int) -> int:
        """Workers that can be started (all of them: the count was capped to this machine's cores)."""
        return requested

    def tickets(self, size: int) -> TicketsBase:
        return LocalTickets(self._ctx)

    def out(self) -> Any:
        return self._ctx.Queue()

    def spawn(self, spec: WorkerSpec, out: Any, tickets: TicketsBase) -> tuple[Any, Any]:
        q = self._ctx.Queue()
        p = self._ctx.Process(
            target=worker_main, args=(spec, q, out, tickets), daemon=True, name=f"llmsurge-worker-{spec.worker_id}"
        )
        p.start()
        return p, q

    def where(self, proc: Any, timeout: float = 0.0) -> str:
        """The host a worker runs on: this one."""
        return socket.gethostname()


@dataclass
class _Slot:
    """One share of the load and the worker process carrying it (replaced, under a new id, if it dies)."""

    index: int
    worker_id: int
    proc: Any
    commands: Any
    gone: bool = False  # exited: lost, or stopped after its final tick


class WorkerPool:
    """Worker processes, their command queues, the shared ticket counter and the collector thread.

    The collector folds ticks into the bus and watches the workers: one that dies is noticed within
    :data:`LIVENESS_EVERY_S`, its requests in flight are recorded as ``worker_lost``, and a replacement takes its
    share of the load.
    """

    def __init__(
        self,
        target: Target,
        calibration: Calibration,
        bus: MetricsBus,
        workers: int = 1,
        seed: int = 0,
        measure_read_delay: bool = False,
        backend: Any = None,
    ) -> None:
        self.target = target
        self.calibration = calibration
        self.bus = bus
        self.n = max(1, min(workers, MAX_WORKERS))
        self.seed = seed
        self.measure_read_delay = measure_read_delay
        self.backend = backend or LocalBackend()
        # See llmsurge.engine.tickets: a worker takes a ticket only once it runs that segment, so no request is
        # started under a segment that has already been closed; each worker counts the tickets it took.
        self.tickets: TicketsBase = self.backend.tickets(TAKEN_BASE + MAX_WORKER_IDS)
        self.out: Any = self.backend.out()
        self.slots: list[_Slot] = []
        self._lock = threading.RLock()
        self._next_id = 0
        self._last_load: dict[int, LoadCommand] = {}
        self._paused = False
        self._stopping = False
        self._ready: set[int] = set()
        self._final: set[int] = set()
        self.errors: list[str] = []
        self.replaced = 0
        self._collector: threading.Thread | None = None
        self._ready_evt = threading.Event()
        self._done_evt = threading.Event()

    @property
    def procs(self) -> list[Any]:
        """The worker processes now running."""
        return [s.proc for s in self.slots if not s.gone]

    def start(self) -> None:
        """Spawn the workers and the collector thread."""
        with self._lock:
            for i in range(self.n):
                self.slots.append(self._spawn(i))
        self._collector = threading.Thread(target=self._collect, daemon=True, name="llmsurge-collector")
        self._collector.start()

    def _spawn(self, index: int) -> _Slot:
        worker_id = self._next_id
        self._next_id += 1
        spec = WorkerSpec(worker_id, self.target, self.calibration, self.seed, self.measure_read_delay)
        p, q = self.backend.spawn(spec, self.out, self.tickets)
        return _Slot(index, worker_id, p, q)

    # ---- the collector thread -------------------------------------------------------------------

    def _collect(self) -> None:
        next_check = time.monotonic() + LIVENESS_EVERY_S
        while not self._done_evt.is_set():
            try:
                item = self.out.get(timeout=LIVENESS_EVERY_S)
            except queue.Empty:
                item = None
            except (EOFError, OSError):
                self._done_evt.set()
                self._ready_evt.set()
                return
            if item is not None:
                self._handle(item)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + LIVENESS_EVERY_S
                self._check_alive()

    def _handle(self, item: Any) -> None:
        if isinstance(item, WorkerTick):
            self.bus.ingest(item)
            if item.final:
                self._final.add(item.worker)
                self._check_done()
        elif isinstance(item, WorkerReady):
            self._ready.add(item.worker)
            slot = next((s for s in self.slots if s.worker_id == item.worker), None)
            if slot is not None:  # per-host client health (a Ray run spans hosts)
                self.bus.set_worker_host(item.worker, self.backend.where(slot.proc))
            if len(self._ready) >= self.n:
                self._ready_evt.set()
        elif isinstance(item, WorkerCrashed):
            self.errors.append(f"worker {item.worker}: {item.error}")
            self.bus.note(f"worker {item.worker} crashed: {item.error}", "error")

    def _check_alive(self) -> None:
        with self._lock:
            for slot in list(self.slots):
                if slot.gone or slot.proc.is_alive():
                    continue
                slot.gone = True
                self._drain()  # what it sent before it ended: its last tick may be among it
                if slot.worker_id in self._final:
                    continue  # it stopped when told to, after its last tick
                self._lost(slot, f"worker process {slot.worker_id} died (exit code {slot.proc.exitcode})")
            self._check_done()

    def _drain(self) -> None:
        """Handle everything the workers have sent so far."""
        while True:
            try:
                item = self.out.get_nowait()
            except (queue.Empty, EOFError, OSError):
                return
            self._handle(item)

    def _lost(self, slot: _Slot, why: str) -> None:
        """Account for a dead worker's requests and, while the run goes on, start another in its place."""
        self._drain()  # so nothing it finished is counted as lost
        taken = self.tickets.get(TAKEN_BASE + slot.worker_id)
        load = self._last_load.get(slot.index)
        lost = self.bus.worker_lost(slot.worker_id, taken, load.segment if load else 0, why)
        message = f"{why}: {len(lost)} request(s) in flight recorded as worker_lost"
        room = self.backend.room(1) if not self._stopping else 0
        if not self._stopping and not room:
            message += "; no room for a replacement on the cluster: the others carry on"
        elif not self._stopping and self.replaced < MAX_REPLACEMENTS and self._next_id < MAX_WORKER_IDS:
            new = self._spawn(slot.index)
            self.replaced += 1
            if load is not None:
                new.commands.put(load)
            if self._paused:
                new.commands.put(Pause())
            self.slots.append(new)
            message += f"; worker {new.worker_id} took its share of the load"
        self.bus.note(message, "warning")

    def _check_done(self) -> None:
        if self._stopping and all(s.gone or s.worker_id in self._final for s in self.slots):
            self._done_evt.set()

    # ---- commands -----------------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker has started its loop."""
        ok = await asyncio.to_thread(self._ready_evt.wait, timeout)
        if not ok or len(self._ready) < self.n:
            detail = "; ".join(self.errors) or "they did not report ready"
            raise RuntimeError(f"worker processes failed to start: {detail}")

    def set_tickets(self, n: int) -> None:
        """How many more requests may start (``UNLIMITED`` for no budget)."""
        self.tickets.set(TICKETS_LEFT, n)
        self.broadcast(Wake())

    @property
    def tickets_left(self) -> int:
        """Requests that may still start (``UNLIMITED`` = no budget)."""
        return self.tickets.get(TICKETS_LEFT)

    def broadcast(self, cmd: WorkerCommand) -> None:
        """Send one command to every worker."""
        with self._lock:
            if isinstance(cmd, (Pause, Resume)):
                self._paused = isinstance(cmd, Pause)
            for slot in self.slots:
                if not slot.gone:
                    slot.commands.put(cmd)

    def apply(self, segment: int, load: Load, scenario: Scenario) -> None:
        """Give every worker its share of ``load``; the request budget now belongs to ``segment``."""
        self.tickets.set(TICKET_SEGMENT, segment)
        shares = split_load(load, self.n)
        shape = scenario.shape
        dataset = load_index(shape.dataset) if shape.dataset else None  # indexed once per process and file
        with self._lock:
            for index, share in enumerate(shares):
                self._last_load[index] = LoadCommand(segment, share, shape, index, self.n, dataset)
            for slot in self.slots:
                if not slot.gone:
                    slot.commands.put(self._last_load[slot.index])

    def stop(self, timeout: float = 10.0, overdue: bool = False) -> None:
        """Cancel what is in flight (as ``timeout`` failures when ``overdue``), collect the last records and end
        the processes. A worker that does not stop in time is killed and its requests recorded as lost."""
        if not self.slots or (self._stopping and self._done_evt.is_set()):
            return
        with self._lock:
            self._stopping = True
        self.broadcast(Stop(overdue=overdue))
        self._check_done()
        self._done_evt.wait(timeout)
        with self._lock:
            for slot in self.slots:
                if not slot.gone and slot.worker_id not in self._final:
                    slot.proc.kill()
                    slot.proc.join(2.0)
                    slot.gone = True
                    self._lost(slot, f"worker process {slot.worker_id} did not stop within {timeout:g}s")
            self._done_evt.set()
        for slot in self.slots:
            slot.proc.join(2.0)
            if slot.proc.is_alive():
                slot.proc.kill()
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join(2.0)
        close = getattr(self.tickets, "close", None)
        if close is not None:  # a Ray run's ticket bank
            close()


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
        """A segment's share of good requests (the SLO's), for a capacity search."""
        self.capacity: dict[str, Any] | None = None
        """A capacity search's outcome: the highest load that held, and every level tried."""
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self.pool.broadcast(Pause())
        self.bus.set_state("paused", paused=True)

    def resume(self) -> None:
        """Start requests again."""
        self.paused = False
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

    def stop(self) -> None:
        """End the run (Ctrl-C, ``q``, a signal): in-flight requests are cancelled and recorded as such."""
        self._stop.set()
        self._changed.set()

    def stop_from_thread(self) -> None:
        """End the run from another thread (the result writer failing, say)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stop)

    # ---- the schedule -------------------------------------------------------------------------

    def _open(self, load: Load) -> None:
        self.segment = self.bus.open_segment(load.describe(), self.scenario.name)
        self.pool.apply(self.segment, load, self.scenario)

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
        """Warm-up then every stage (or a capacity search); False if interrupted."""
        self.manual = False
        await self._warmup()
        self.bus.set_state("paused" if self.paused else "running")
        if self.scenario.search is not None:
            return await self._run_search(self.scenario.search)
        previous = 0.0
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
        tried: list[dict[str, Any]] = []
        level: float | None = search.start
        self._record_capacity(search, held, failed, tried, partial=True)
        while level is not None and len(tried) < search.max_levels:
            load = search.load_at(level)
            if not await self._run_stage(Stage(load, duration=search.level_duration)):
                self._say_capacity(search, held, tried, partial=True)
                return False
            share = self.judge(self.segment) if self.judge is not None else None
            ok = share is not None and share >= search.target
            tried.append({"load": load.describe(), "level": level, "good_share": share, "held": ok})
            if ok:
                held = max(held or level, level)
            else:
                failed = min(failed or level, level)
            self._record_capacity(search, held, failed, tried, partial=True)
            level = search.next_level(held, failed)
            if level is not None and any(t["level"] == level for t in tried):
                level = None
        self._record_capacity(search, held, failed, tried, partial=False)
        self._say_capacity(search, held, tried, partial=False)
        return True

    def _record_capacity(
        self, search: Search, held: float | None, failed: float | None, tried: list[dict[str, Any]], partial: bool
    ) -> None:
        self.capacity = {
            "mode": search.mode,
            "target_good_share": search.target,
            "max_held": held,
            "max_held_load": search.load_at(held).describe() if held is not None else None,
            "first_failed": failed,
            "levels": list(tried),
            "partial": partial,
        }

    def _say_capacity(self, search: Search, held: float | None, tried: list[dict[str, Any]], partial: bool) -> None:
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
