"""Where worker processes run: the :class:`WorkerBackend` seam, and this machine's processes behind it.

A backend starts workers and gives the pool what it needs of them — a process it can watch and kill, a command
queue, the queue their ticks come back on, and the shared request budget. :class:`LocalBackend` runs spawned
processes here; :class:`~llmsurge.engine.ray_pool.RayBackend` runs Ray actors across a cluster. mypy checks both
against these Protocols where the pool takes them.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
from typing import Protocol

from llmsurge.engine.tickets import LocalTickets, TicketsBase
from llmsurge.engine.worker import WorkerCommand, WorkerSpec, worker_main
from llmsurge.metrics.wire import WorkerMessage


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
    """Workers as processes of this machine (spawned, so each has its own interpreter and event loop)."""

    name = "local"

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")

    def room(self, requested: int) -> int:
        """Workers that can be started (all of them: the count was capped to this machine's cores)."""
        return requested

    def tickets(self, size: int) -> TicketsBase:
        """A shared-memory array."""
        return LocalTickets(self._ctx)

    def out(self) -> TickQueue:
        """A multiprocessing queue."""
        return self._ctx.Queue()

    def spawn(self, spec: WorkerSpec, out: TickQueue, tickets: TicketsBase) -> tuple[WorkerProcess, CommandQueue]:
        """A spawned process with its own command queue."""
        q = self._ctx.Queue()
        p = self._ctx.Process(
            target=worker_main, args=(spec, q, out, tickets), daemon=True, name=f"llmsurge-worker-{spec.worker_id}"
        )
        p.start()
        return p, q

    def where(self, proc: WorkerProcess, timeout: float = 0.0) -> str:
        """The host a worker runs on: this one."""
        return socket.gethostname()
