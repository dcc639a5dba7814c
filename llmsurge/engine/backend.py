"""Where worker processes run: the :class:`WorkerBackend` seam, and this machine's processes behind it.

A backend starts workers and gives the pool what it needs of them — a process it can watch and kill, a command
queue, the queue their ticks come back on, and the shared request budget. :class:`LocalBackend` runs spawned
processes here; :class:`~llmsurge.engine.ray_pool.RayBackend` runs Ray actors across a cluster. mypy checks both
against these Protocols where the pool takes them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from typing import TYPE_CHECKING, Protocol

from llmsurge.engine.tickets import LocalTickets, TicketsBase

if TYPE_CHECKING:  # light to import: the CLI starts workers with it before its own heavy imports
    from llmsurge.engine.worker import CommandSource, TickSink, WorkerCommand, WorkerSpec
    from llmsurge.metrics.wire import WorkerMessage

MAX_WORKERS = 64


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


def _worker_entry(spec: WorkerSpec | None, commands: CommandSource, out: TickSink, tickets: TicketsBase) -> None:
    """A spawned worker's first function: the worker's imports happen in the child, not in the parent."""
    from llmsurge.engine.worker import worker_main  # no httpx or aiohttp: the load's own client (engine/http1.py)

    worker_main(spec, commands, out, tickets)


class WorkerProcess(Protocol):
    """One worker, as the pool watches it."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def kill(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


class CommandQueue(Protocol):
    """A worker's command queue (commands arrive in order)."""

    def put(self, cmd: WorkerCommand) -> None: ...


class TickQueue(Protocol):
    """The queue the workers' ticks come back on (``queue.Empty`` when there is nothing in time)."""

    def get(self, *, timeout: float | None = None) -> WorkerMessage: ...

    def get_nowait(self) -> WorkerMessage: ...


class WorkerBackend(Protocol):
    """What the pool asks of a place to run workers."""

    name: str

    def room(self, requested: int) -> int:
        """How many of ``requested`` workers can be started now."""
        ...

    def tickets(self, size: int) -> TicketsBase:
        """The shared request budget (``size`` slots)."""
        ...

    def out(self) -> TickQueue:
        """The queue ticks come back on."""
        ...

    def spawn(self, spec: WorkerSpec, out: TickQueue, tickets: TicketsBase) -> tuple[WorkerProcess, CommandQueue]:
        """Start one worker; its process and its command queue."""
        ...

    def where(self, proc: WorkerProcess, timeout: float = 0.0) -> str:
        """The host a worker runs on ('' when it cannot be said in time)."""
        ...


class LocalBackend:
    """Workers as processes of this machine (spawned, so each has its own interpreter and event loop).

    :meth:`warm` starts them before the target is known, so their interpreters and imports overlap the server's
    start and discovery; :meth:`spawn` then hands each its spec instead of starting a process."""

    name = "local"

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._tickets: LocalTickets | None = None
        self._out: TickQueue | None = None
        self._warm: list[tuple[mp.process.BaseProcess, CommandQueue]] = []

    def room(self, requested: int) -> int:
        """Workers that can be started (all of them: the count was capped to this machine's cores)."""
        return requested

    def tickets(self, size: int) -> TicketsBase:
        """A shared-memory array (the one the warm workers hold, once :meth:`warm` has run)."""
        if self._tickets is None:
            self._tickets = LocalTickets(self._ctx)
        return self._tickets

    def out(self) -> TickQueue:
        """A multiprocessing queue (the one the warm workers hold, once :meth:`warm` has run)."""
        if self._out is None:
            self._out = self._ctx.Queue()
        return self._out

    def warm(self, n: int) -> None:
        """Start ``n`` workers now; each waits for its :class:`WorkerSpec` (sent by :meth:`spawn`)."""
        tickets, out = self.tickets(0), self.out()
        for _ in range(n):
            self._warm.append(self._start(None, out, tickets, "llmsurge-worker-warm"))

    def spawn(self, spec: WorkerSpec, out: TickQueue, tickets: TicketsBase) -> tuple[WorkerProcess, CommandQueue]:
        """A warm process given ``spec`` when one is waiting on these queues, else a new spawned process."""
        while self._warm and out is self._out and tickets is self._tickets:
            p, q = self._warm.pop(0)
            if p.is_alive():
                q.put(spec)  # type: ignore[arg-type]  # its first message: see worker_main
                return p, q
        return self._start(spec, out, tickets, f"llmsurge-worker-{spec.worker_id}")

    def _start(
        self, spec: WorkerSpec | None, out: TickQueue, tickets: TicketsBase, name: str
    ) -> tuple[mp.process.BaseProcess, CommandQueue]:
        q = self._ctx.Queue()
        p = self._ctx.Process(target=_worker_entry, args=(spec, q, out, tickets), daemon=True, name=name)
        p.start()
        return p, q

    def discard(self) -> None:
        """End the warm workers no run took (the run stopped before it started)."""
        for p, _q in self._warm:
            p.kill()
        for p, _q in self._warm:
            p.join(2.0)
        self._warm = []

    def where(self, proc: WorkerProcess, timeout: float = 0.0) -> str:
        """The host a worker runs on: this one."""
        return socket.gethostname()
