"""The worker pool: how the load is shared between the workers, and the collector that
folds their ticks into the bus and replaces a worker that dies.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from llmsurge.engine.backend import MAX_WORKERS, CommandQueue, LocalBackend, TickQueue, WorkerBackend, WorkerProcess
from llmsurge.engine.client import loopback_source
from llmsurge.engine.dataset import load_index
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, Scenario
from llmsurge.engine.tickets import MAX_WORKER_IDS, TAKEN_BASE, TICKET_SEGMENT, TICKETS_LEFT, TicketsBase
from llmsurge.engine.trace import cached_trace
from llmsurge.engine.worker import LoadCommand, Pause, Resume, Stop, Wake, WorkerCommand, WorkerSpec
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.wire import WorkerCrashed, WorkerMessage, WorkerReady, WorkerTick
from llmsurge.net import Target

UNLIMITED = -1
LIVENESS_EVERY_S = 0.25
MAX_REPLACEMENTS = 8
TRACE_LEAD_S = 0.05
"""A trace's clock starts this long after its command is sent, so every worker has it before the first request."""


def split_load(load: Load, n: int) -> list[Load]:
    """Each worker's share: concurrency spread as evenly as whole users allow; rate split equally; a trace's
    requests are dealt out (each worker then keeps the whole trace's clock)."""
    if load.trace is not None:
        cap = load.max_concurrency
        return [
            replace(load, max_concurrency=(cap // n + (1 if i < cap % n else 0)) if cap else None) for i in range(n)
        ]
    if load.rate is not None:
        cap = load.max_concurrency
        return [
            replace(load, rate=load.rate / n, max_concurrency=(cap // n + (1 if i < cap % n else 0)) if cap else None)
            for i in range(n)
        ]
    c = load.concurrency or 0
    return [replace(load, concurrency=c // n + (1 if i < c % n else 0)) for i in range(n)]


@dataclass
class _Slot:
    """One share of the load and the worker process carrying it (replaced, under a new id, if it dies)."""

    index: int
    worker_id: int
    proc: WorkerProcess
    commands: CommandQueue
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
        backend: WorkerBackend | None = None,
        replicas: tuple[Target, ...] = (),
        balance: str = "rr",
        models: tuple[str, ...] = (),
    ) -> None:
        self.target = target
        self.replicas = replicas
        self.balance = balance
        self.models = models
        self._hosts = tuple(urlsplit(t.base_url).hostname or "" for t in (target, *replicas))
        self.calibration = calibration
        self.bus = bus
        self.n = max(1, min(workers, MAX_WORKERS))
        self.seed = seed
        self.measure_read_delay = measure_read_delay
        self.backend: WorkerBackend = backend or LocalBackend()
        # See llmsurge.engine.tickets: a worker takes a ticket only once it runs that segment, so no request is
        # started under a segment that has already been closed; each worker counts the tickets it took.
        self.tickets: TicketsBase = self.backend.tickets(TAKEN_BASE + MAX_WORKER_IDS)
        self.out: TickQueue = self.backend.out()
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
    def procs(self) -> list[WorkerProcess]:
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
        spec = WorkerSpec(
            worker_id,
            self.target,
            self.calibration,
            self.seed,
            self.measure_read_delay,
            self.replicas,
            self.balance,
            self.models,
            loopback_source(self._hosts, worker_id, self.n),
        )
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

    def _handle(self, item: WorkerMessage) -> None:
        if isinstance(item, WorkerTick):
            self.bus.ingest(item)
            if item.final:
                self._final.add(item.worker)
                self._check_done()
        elif isinstance(item, WorkerReady):
            self._ready.add(item.worker)
            slot = next((s for s in self.slots if s.worker_id == item.worker), None)
            if slot is not None:  # per-host client health (a Ray run spans hosts)
                self.bus.set_worker_host(item.worker, self.backend.where(slot.proc), item.event_loop)
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
        ok = self._ready_evt.is_set() or await asyncio.to_thread(self._ready_evt.wait, timeout)
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
        entries = cached_trace(load.trace).entries if load.trace else ()
        t0_wall = time.time() + TRACE_LEAD_S
        with self._lock:
            for index, share in enumerate(shares):
                self._last_load[index] = LoadCommand(
                    segment, share, shape, index, self.n, dataset, entries[index :: self.n], t0_wall
                )
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
