"""Is the client the limit? The one rule, used by the screen, the headless progress line and ``summary.json``.

Two causes look alike from the worker's side (its event loop runs late) and need opposite remedies:

- **client busy**: a worker uses most of a core itself — it reads late because it has too much to do. More
  workers (``--workers``) help.
- **host starved**: the worker's loop lags while the worker itself uses little CPU — another process holds the
  cores (a server on the same machine, a build). Timings are inflated by the wait for a core; more workers make it
  worse. Move the client or the server to another machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

LOOP_LAG_WARN_MS = 20.0
"""A 50 ms tick that fires this much late means reads were late by as much."""
LOOP_LAG_EVENT_MS = 100.0
"""Lags worth recording as events in the summary."""
WORKER_CPU_BUSY = 0.85
"""A worker's share of one core past which it is the limit."""
WORKER_CPU_IDLE = 0.5
"""Below this, a lagging worker was waiting for a core, not working."""
HOST_CPU_SATURATED = 90.0
"""Machine CPU (percent of all cores) past which other processes may starve the workers."""


class Cause(str, Enum):
    """Why the client may have measured itself rather than the server."""

    NONE = ""
    CLIENT_BUSY = "client busy"
    HOST_STARVED = "host starved"
    LOOP_LAG = "loop lag"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """How hard our own workers are working, and whether the client is the limit (with the remedy)."""

    workers: int
    max_loop_lag_ms: float
    max_cpu: float
    cause: Cause
    reason: str

    @property
    def saturated(self) -> bool:
        """Whether the figures may be the client's limit, not the server's."""
        return self.cause is not Cause.NONE


def diagnose(max_lag_ms: float, max_cpu: float, host_cpu_percent: float | None) -> tuple[Cause, str]:
    """The cause and a one-line reason with its remedy ('' when the client is fine)."""
    if max_cpu > WORKER_CPU_BUSY:
        return Cause.CLIENT_BUSY, f"a worker uses {max_cpu:.0%} of a core: add --workers"
    if max_lag_ms <= LOOP_LAG_WARN_MS:
        return Cause.NONE, ""
    host = host_cpu_percent if host_cpu_percent is not None and host_cpu_percent == host_cpu_percent else None
    if max_cpu < WORKER_CPU_IDLE and host is not None and host >= HOST_CPU_SATURATED:
        return (
            Cause.HOST_STARVED,
            f"worker loop lags {max_lag_ms:.0f} ms at {max_cpu:.0%} CPU while the host is {host:.0f}% busy: other"
            " processes hold the cores, timings are inflated (move the client or the server)",
        )
    return Cause.LOOP_LAG, f"worker event loop lags {max_lag_ms:.0f} ms (cpu {max_cpu:.0%})"


def worst_health(workers: int, max_lag_ms: float, max_cpu: float, host_cpu_percent: float | None) -> ClientHealth:
    """From the worst loop lag and CPU of ``workers`` workers."""
    if not workers:
        return ClientHealth(0, 0.0, 0.0, Cause.NONE, "")
    cause, reason = diagnose(max_lag_ms, max_cpu, host_cpu_percent)
    return ClientHealth(workers, max_lag_ms, max_cpu, cause, reason)


def worth_recording(max_lag_ms: float, max_cpu: float) -> bool:
    """Whether a second's worst reading goes into ``summary.json``'s saturation events."""
    return max_lag_ms > LOOP_LAG_EVENT_MS or max_cpu > WORKER_CPU_BUSY
