"""Per-segment statistics: one segment per load setting; a request belongs to the segment it started in."""

from __future__ import annotations

import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsurge.metrics.records import RequestRecord, Status
from llmsurge.metrics.stats import DEFAULT_PERCENTILES, METRICS, describe_ms, error_rate, throughput


@dataclass
class SegmentStats:
    """Counts and exact per-request values of one segment (float32 arrays keep 1M requests in ~30 MB)."""

    index: int
    label: str
    scenario: str
    opened: float
    wall_opened: float = field(default_factory=time.time)
    closed: float | None = None
    ok: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_tokens: int = 0
    last_end: float = 0.0
    values: dict[str, array] = field(default_factory=lambda: {m: array("f") for m in (*METRICS, "ttfc")})
    _pcache: dict[str, float] | None = None
    _pcache_at: float = 0.0
    _pcache_percentiles: tuple[float, ...] = ()
    _dirty: bool = True

    def add(self, rec: RequestRecord) -> None:
        """Count a finished request and keep its values if it succeeded."""
        self._dirty = True
        if rec.end > self.last_end:
            self.last_end = rec.end
        if rec.status is Status.OK:
            self.ok += 1
            self.input_tokens += rec.prompt_tokens
            self.output_tokens += rec.output_tokens
            if rec.tokens_estimated:
                self.estimated_tokens += 1
            v = self.values
            if rec.ttft is not None:
                v["ttft"].append(rec.ttft)
            if rec.ttfc is not None:
                v["ttfc"].append(rec.ttfc)
            if rec.e2el is not None:
                v["e2el"].append(rec.e2el)
            tpot = rec.tpot
            if tpot is not None:
                v["tpot"].append(tpot)
            if rec.itl:
                v["itl"].extend(rec.itl)
        elif rec.status is Status.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
            self.errors[rec.error_kind] += 1

    @property
    def finished(self) -> int:
        """Requests of this segment that have ended, whatever the outcome."""
        return self.ok + self.failed + self.cancelled

    def duration(self, now: float) -> float:
        """Seconds from opening to closing (or to its last request's end, or now, while open)."""
        end = self.closed if self.closed is not None else max(self.last_end, now)
        return max(0.0, end - self.opened)

    def latency_stats(
        self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES, max_age: float = 0.0
    ) -> dict[str, float]:
        """Mean/median/std/percentiles of TTFT, TPOT, ITL, E2EL and TTFC in ms.

        Recomputed only when requests arrived since, and (for live views) not more often than ``max_age`` s.
        """
        now = time.monotonic()
        fresh = self._pcache is not None and (not self._dirty or now - self._pcache_at < max_age)
        if fresh and self._pcache_percentiles == percentiles:
            return self._pcache  # type: ignore[return-value]
        out: dict[str, float] = {}
        for m in (*METRICS, "ttfc"):
            out.update(describe_ms(m, np.frombuffer(self.values[m], dtype=np.float32), percentiles))
        self._pcache, self._pcache_at, self._dirty = out, now, False
        self._pcache_percentiles = percentiles
        return out

    def summary(
        self, now: float, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES, max_age: float = 0.0
    ) -> dict[str, Any]:
        """vLLM bench serve's keys for this segment."""
        d = self.duration(now)
        out: dict[str, Any] = {
            "segment": self.index,
            "load": self.label,
            "scenario": self.scenario,
            "start_time": self.wall_opened,
            "duration": d,
            "completed": self.ok,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "errors": dict(self.errors),
            "error_rate": error_rate(self.ok, self.failed),
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
            "output_tokens_estimated": self.estimated_tokens,
        }
        out.update(throughput(self.ok, self.input_tokens, self.output_tokens, d))
        out.update(self.latency_stats(percentiles, max_age))
        return out
