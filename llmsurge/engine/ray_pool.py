"""Load from many machines: the worker loop as Ray actors (``--ray auto|ADDRESS``; ``pip install 'llmsurge[ray]'``).

Each actor runs the same :class:`~llmsurge.engine.worker.Worker` loop as a local worker process and produces the
same ticks; the pool's collector drains them from every actor. The request budget lives in one small actor (the
ticket bank), so "N requests" holds across hosts, and a request belongs to the segment in which it started.
Timestamps stay each worker's own ``time.monotonic()``: only durations leave a host.

Placement is checked before any actor is made: when the cluster has no room for the workers asked for, the run
says so at once and goes on with those that fit (or stops in one line when none fit) — it never waits silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from llmsurge.engine.backend import TickQueue, WorkerProcess
from llmsurge.engine.tickets import TICKETS_LEFT, TicketsBase
from llmsurge.engine.worker import Worker, WorkerCommand, WorkerSpec
from llmsurge.metrics.wire import WorkerCrashed, WorkerMessage

if TYPE_CHECKING:
    from ray.actor import ActorHandle

try:
    import ray
except ImportError:  # pragma: no cover - the extra is optional
    ray = None  # type: ignore[assignment]

BANK_TIMEOUT_S = 10.0
"""The longest the pool waits on the ticket bank (it never waits forever on the cluster)."""
POLL_S = 0.02
"""How often the collector drains the actors when none had anything."""


class RayUnavailable(RuntimeError):
    """Ray is not installed or no cluster could be reached; the message names the fix."""


RAY_PROBE_S = 2.0
"""How long ``--ray HOST:PORT`` waits for something to accept a connection there before it says nothing does."""


def check_address(address: str) -> None:
    """Fail in one line, within :data:`RAY_PROBE_S`, when nothing listens at ``--ray HOST:PORT`` (``ray.init``
    would retry for tens of seconds first). ``auto`` is not checked: it starts a local cluster when none runs."""
    import socket
    from urllib.parse import urlsplit

    if ray is None:
        raise RayUnavailable("--ray needs Ray: pip install 'llmsurge[ray]'")
    if address in ("auto", "local", ""):
        return
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:
        raise RayUnavailable(f"--ray {address}: not an address: give HOST:PORT, ray://HOST:PORT or auto") from None
    if not host:
        raise RayUnavailable(f"--ray {address}: not an address: give HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=RAY_PROBE_S).close()
    except OSError as exc:
        why = "nothing answered" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise RayUnavailable(
            f"--ray {address}: no Ray cluster at {host}:{port} ({why}): start one there (ray start --head) or give"
            " its address; --ray auto uses this machine's"
        ) from None


def connect(address: str) -> dict[str, float]:
    """Join the cluster at ``address`` (``auto``: the one this machine belongs to, else a local one); returns
    its free resources."""
    if ray is None:
        raise RayUnavailable("--ray needs Ray: pip install 'llmsurge[ray]'")
    if not ray.is_initialized():
        try:
            if address == "auto":
                try:
                    ray.init(address="auto", log_to_driver=False, logging_level=logging.ERROR)
                except ConnectionError:  # no cluster running: one on this machine
                    ray.init(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:
            raise RayUnavailable(f"--ray {address}: no Ray cluster there ({exc})") from None
    return dict(ray.available_resources())


def placeable(requested: int, free_cpus: float, cpus_per_worker: float = 1.0) -> int:
    """How many of ``requested`` workers the cluster can place now."""
    return max(0, min(requested, math.floor(free_cpus / cpus_per_worker + 1e-9)))


def _remote_classes() -> tuple[Any, Any]:
    """The actor classes, made once Ray is imported."""

    @ray.remote(num_cpus=0)
    class TicketBank:
        """The shared request budget (what a local run keeps in shared memory)."""

        def __init__(self, size: int) -> None:
            self.values = [0] * size

        def set(self, index: int, value: int) -> None:
            self.values[index] = value

        def get(self, index: int) -> int:
            return self.values[index]

        def take(self, segment: int, taken_index: int) -> bool:
            v = self.values
            if v[TICKETS_LEFT] == 0 or v[0] != segment:
                return False
            if v[TICKETS_LEFT] > 0:
                v[TICKETS_LEFT] -= 1
            v[taken_index] += 1
            return True

    @ray.remote
    class WorkerActor:
        """One worker loop in an actor: commands arrive as method calls, ticks wait in a box to be drained."""

        def __init__(self, spec: WorkerSpec, bank: ActorHandle) -> None:
            for target in spec.targets:
                target.register_secrets()
            self.box: deque[WorkerMessage] = deque()
            self.worker = Worker(spec, None, _Box(self.box), RayTickets(bank))
            self.early: list[WorkerCommand] = []
            self.started = False

        def pid(self) -> int:
            """The actor's process id (benchmarks read its CPU time)."""
            return os.getpid()

        def where(self) -> str:
            """This actor's host (and Ray node, when several nodes share a host name)."""
            node = ray.get_runtime_context().get_node_id()[:8]
            return f"{socket.gethostname()}/{node}"

        async def run(self) -> list[WorkerMessage]:
            loop = asyncio.get_running_loop()
            task = loop.create_task(self.worker.run())
            await asyncio.sleep(0)
            self.started = True
            for cmd in self.early:
                self.worker.on_command(cmd)
            self.early.clear()
            try:
                await task
            except Exception as exc:
                self.box.append(WorkerCrashed(worker=self.worker.spec.worker_id, error=f"{type(exc).__name__}: {exc}"))
            return self._take()

        async def command(self, cmd: WorkerCommand) -> None:
            if self.started and hasattr(self.worker, "_wake"):
                self.worker.on_command(cmd)
            else:
                self.early.append(cmd)

        async def drain(self) -> list[WorkerMessage]:
            return self._take()

        def _take(self) -> list[WorkerMessage]:
            items = list(self.box)
            self.box.clear()
            return items

    return TicketBank, WorkerActor


class _Box:
    """A worker's ``out`` inside an actor: ticks wait here until the collector drains them."""

    def __init__(self, box: deque[WorkerMessage]) -> None:
        self.box = box

    def put(self, item: WorkerMessage) -> None:
        self.box.append(item)


class RayTickets(TicketsBase):
    """The ticket bank seen from a worker or the pool."""

    def __init__(self, bank: ActorHandle) -> None:
        self.bank = bank

    def set(self, index: int, value: int) -> None:
        with contextlib.suppress(Exception):  # a bank that is gone: the run is ending, nothing more starts
            ray.get(self.bank.set.remote(index, value), timeout=BANK_TIMEOUT_S)

    def get(self, index: int) -> int:
        try:
            return int(ray.get(self.bank.get.remote(index), timeout=BANK_TIMEOUT_S))
        except Exception:
            return 0

    def take(self, segment: int, taken_index: int) -> bool:
        return bool(ray.get(self.bank.take.remote(segment, taken_index)))

    def close(self) -> None:
        """The run is over: let the bank go."""
        with contextlib.suppress(Exception):
            ray.kill(self.bank)

    async def take_async(self, segment: int, taken_index: int) -> bool:
        try:
            return bool(await self.bank.take.remote(segment, taken_index))
        except Exception:  # the bank is gone (the run is ending): start nothing more
            return False


class RayProcess:
    """What the pool asks of a worker process, for an actor: alive, kill, join."""

    def __init__(self, actor: ActorHandle, run_ref: ray.ObjectRef, out: RayOut) -> None:
        self.actor = actor
        self.run_ref = run_ref
        self.out = out
        self.pid: int | None = None
        self.exitcode: int | None = None
        self._done = False

    def is_alive(self) -> bool:
        if self._done:
            return False
        ready, _ = ray.wait([self.run_ref], timeout=0)
        if not ready:
            return True
        self._done = True
        try:
            self.out.push(ray.get(self.run_ref))  # its last ticks, before anyone counts it lost
            self.exitcode = 0
        except Exception:  # the actor (or its node) died
            self.exitcode = -1
        self.out.forget(self.actor)
        return False

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.actor)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker loop to end, then let the actor go (its CPU returns to the cluster)."""
        with contextlib.suppress(Exception):
            ready, _ = ray.wait([self.run_ref], timeout=timeout)
            if ready:
                self.is_alive()  # its last ticks, if the collector has not read them
                ray.kill(self.actor)


class RayCommands:
    """A worker's command queue, for an actor: each command is a method call (in order, per caller)."""

    def __init__(self, actor: ActorHandle) -> None:
        self.actor = actor

    def put(self, cmd: WorkerCommand) -> None:
        self.actor.command.remote(cmd)


class RayOut:
    """The pool's ``out`` queue for actors: draining every live actor when its own buffer is empty."""

    def __init__(self) -> None:
        self.actors: list[ActorHandle] = []
        self._pending: dict[int, ray.ObjectRef] = {}  # actor (by id) → its drain call not read yet (items in it)
        self._buffer: queue.SimpleQueue[WorkerMessage] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def register(self, actor: ActorHandle) -> None:
        with self._lock:
            self.actors.append(actor)

    def forget(self, actor: ActorHandle) -> None:
        """A finished or dead actor: read what its last drain call holds, then stop asking it."""
        with self._lock:
            self.actors = [a for a in self.actors if a is not actor]
            ref = self._pending.pop(id(actor), None)
        if ref is not None:
            with contextlib.suppress(Exception):
                self.push(ray.get(ref, timeout=1.0))

    def push(self, items: list[WorkerMessage]) -> None:
        for item in items:
            self._buffer.put(item)

    def _poll(self, timeout: float) -> None:
        """One drain call in flight per actor; read those that answered within ``timeout`` (a call not answered
        yet is kept and read later: its items left the actor when it ran)."""
        with self._lock:
            for a in self.actors:
                if id(a) not in self._pending:
                    self._pending[id(a)] = a.drain.remote()
            pending = dict(self._pending)
        if not pending:
            return
        ready, _ = ray.wait(list(pending.values()), num_returns=len(pending), timeout=timeout)
        answered = set(ready)
        for key, ref in pending.items():
            if ref in answered:
                with self._lock:
                    self._pending.pop(key, None)
                with contextlib.suppress(Exception):  # a dead actor: the liveness check accounts for it
                    self.push(ray.get(ref))

    def get(self, timeout: float | None = None) -> WorkerMessage:
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            try:
                return self._buffer.get_nowait()
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise queue.Empty
            self._poll(min(left, 1.0))
            if self._buffer.empty():
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def get_nowait(self) -> WorkerMessage:
        try:
            return self._buffer.get_nowait()
        except queue.Empty:
            self._poll(0.5)
            return self._buffer.get_nowait()


class RayBackend:
    """Spawns workers as Ray actors, one CPU each."""

    name = "ray"

    def __init__(self, address: str = "auto", cpus_per_worker: float = 1.0) -> None:
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.free = connect(address)
        self._bank_cls, self._actor_cls = _remote_classes()

    def room(self, requested: int, settle: float = 0.0) -> int:
        """Workers the cluster can place now (waiting up to ``settle`` seconds for CPUs that are being freed)."""
        deadline = time.monotonic() + settle
        while True:
            self.free = dict(ray.available_resources())
            n = placeable(requested, self.free.get("CPU", 0.0), self.cpus_per_worker)
            if n >= requested or time.monotonic() >= deadline:
                return n
            time.sleep(0.25)

    def tickets(self, size: int) -> RayTickets:
        """The ticket bank, on this machine's node: it lives and dies with the run, not with a load node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        return RayTickets(self._bank_cls.options(scheduling_strategy=here).remote(size))

    def out(self) -> RayOut:
        return RayOut()

    def spawn(self, spec: WorkerSpec, out: TickQueue, tickets: TicketsBase) -> tuple[RayProcess, RayCommands]:
        assert isinstance(out, RayOut) and isinstance(tickets, RayTickets), "a Ray pool's own queue and bank"
        actor = self._actor_cls.options(num_cpus=self.cpus_per_worker, max_restarts=0).remote(spec, tickets.bank)
        run_ref = actor.run.remote()
        out.register(actor)
        proc = RayProcess(actor, run_ref, out)
        return proc, RayCommands(actor)

    def pid(self, proc: WorkerProcess) -> int:
        """A worker actor's process id (on this machine's local Ray: for benchmarks)."""
        assert isinstance(proc, RayProcess), "a Ray pool's own worker"
        return int(ray.get(proc.actor.pid.remote(), timeout=10.0))

    def where(self, proc: WorkerProcess, timeout: float = 5.0) -> str:
        """The host a worker runs on ('' when it does not answer in time)."""
        assert isinstance(proc, RayProcess), "a Ray pool's own worker"
        try:
            return str(ray.get(proc.actor.where.remote(), timeout=timeout))
        except Exception:
            return ""
