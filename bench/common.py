"""Shared parts of the benchmarks: the simulated server modes, CPU accounting, statistics over repeats."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import psutil

from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig


def fast_sim(stamp: bool = False, processes: int = 1) -> SimProcess:
    """No modelled compute: each server process sends tokens as fast as its core allows."""
    return SimProcess(SimConfig(timing=EngineTiming.fast(), stamp=stamp), processes=processes)


def paced_sim(step_s: float = 0.02, max_seqs: int = 2048, stamp: bool = True, processes: int = 1) -> SimProcess:
    """A fixed decode step for every stream (no batch penalty): a steady, known event rate."""
    timing = EngineTiming(step_s, 0.0, 0.0, max_seqs, 1 << 40)
    return SimProcess(SimConfig(timing=timing, stamp=stamp), processes=processes)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def med_spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, min and max."""
    return statistics.median(values), min(values), max(values)


def fmt(values: Sequence[float], digits: int = 0) -> str:
    """``median (min–max)``."""
    m, lo, hi = med_spread(values)
    return f"{m:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def percentiles_ms(delays: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of delays given in seconds, in ms."""
    import numpy as np

    if not delays:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    a = np.asarray(delays) * 1000.0
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "n": int(a.size),
    }
