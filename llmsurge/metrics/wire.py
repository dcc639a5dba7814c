"""What worker processes send up to the bus: a tick every ~50 ms, and a word when they start or crash.

These are the only shapes that cross the process boundary upward (pickled through one multiprocessing queue).
Batches, never one message per token or per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from llmsurge.metrics.records import RequestRecord


class RequestStart(NamedTuple):
    """A request a worker has just sent: the bus knows every request in flight, so a lost one is accounted."""

    request_id: str
    segment: int
    start: float  # time.monotonic() in the worker
    wall_start: float
    warmup: bool


class LiveRequest(NamedTuple):
    """Progress of one request in flight (a sample of them, for the request stream)."""

    request_id: str
    segment: int
    start: float
    ttft: float | None
    chunks: int


@dataclass(slots=True, kw_only=True)
class WorkerTick:
    """What a worker sends every ~50 ms: finished records, requests started, and its live counters."""

    worker: int
    records: list[RequestRecord] = field(default_factory=list)
    tokens: int = 0  # output tokens received since the last tick (chunks, corrected at completion)
    started: int = 0  # requests started since the worker began (cumulative)
    inflight: int = 0
    loop_lag_ms: float = 0.0
    cpu: float = 0.0  # fraction of one core used since the last tick
    live: list[LiveRequest] | None = None
    final: bool = False
    read_delays: list[float] | None = None  # seconds late per stamped chunk (benchmarks)
    starts: list[RequestStart] | None = None  # requests sent since the last tick


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerReady:
    """The worker's loop runs and it takes commands; ``event_loop``: which (``uvloop``, ``asyncio``)."""

    worker: int
    event_loop: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerCrashed:
    """The worker's loop died of an exception (the pool notes it; its requests are accounted as lost)."""

    worker: int
    error: str


WorkerMessage = WorkerTick | WorkerReady | WorkerCrashed
