"""Per-segment statistics: one segment per load setting.

Two clocks, each where it belongs (DESIGN.md): a request's latencies belong to the segment in which it *started*;
tokens and completions count for the segment in which they *arrived*, so a segment's throughput is what the server
delivered while that load was applied, not tokens of its requests that came after it closed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields

from llmsurge.metrics.columns import Column, ColumnView
from llmsurge.metrics.records import RequestRecord, Status
from llmsurge.metrics.sketch import ItlSketch
from llmsurge.metrics.stats import ALIGNED, REASONING, SCHEDULED, SEND_LAG, SERVER_CLOCK, TURNS

NAN = float("nan")


@dataclass(kw_only=True)
class RequestCounts:
    """What finished requests add up to: the one list of counters, kept by the live bus per segment and rebuilt by
    ``llmsurge report`` from ``requests.jsonl`` through the same :meth:`add`."""

    ok: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_tokens: int = 0
    """Successful requests whose output tokens were counted by us (no usable usage)."""
    cached_tokens: int = 0
    """Prompt tokens the server reported serving from its prefix cache."""
    cache_reported_prompt_tokens: int = 0
    """Prompt tokens of the requests whose cache use was reported (the hit rate's denominator)."""
    exact_asked: int = 0
    """Successful requests that asked for exact lengths (ignore_eos)."""
    short_outputs: int = 0
    """…of which came back shorter: the server ignored ignore_eos."""
    degenerate: int = 0
    """Successful requests whose answer ended in degenerate text (a warning, not a failure)."""
    quality_asked: int = 0
    """Quality-set prompts answered, and how many of them right."""
    quality_ok: int = 0
    inputs: int = 0
    """Embedding inputs and rerank documents of the successful requests (0 when the run generates)."""
    last_end: float = 0.0

    def add(self, rec: RequestRecord) -> None:
        """Count one finished request."""
        if rec.end > self.last_end:
            self.last_end = rec.end
        if rec.status is Status.OK:
            self.ok += 1
            self.input_tokens += rec.prompt_tokens
            self.output_tokens += rec.output_tokens
            self.estimated_tokens += rec.tokens_estimated
            if rec.cached_tokens is not None:
                self.cached_tokens += rec.cached_tokens
                self.cache_reported_prompt_tokens += rec.prompt_tokens
            self.degenerate += bool(rec.degenerate)
            self.inputs += rec.inputs
            if rec.quality_ok is not None:
                self.quality_asked += 1
                self.quality_ok += rec.quality_ok
            if rec.ignore_eos:
                self.exact_asked += 1
                self.short_outputs += rec.came_back_short
        elif rec.status is Status.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
            self.errors[rec.error_kind] += 1

    @property
    def finished(self) -> int:
        """Requests that have ended, whatever the outcome."""
        return self.ok + self.failed + self.cancelled

    @property
    def quality_score(self) -> float | None:
        """Share of quality-set answers that were right (None: none asked)."""
        return self.quality_ok / self.quality_asked if self.quality_asked else None

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of prompt tokens served from the server's prefix cache (None: the server does not say)."""
        reported = self.cache_reported_prompt_tokens
        return self.cached_tokens / reported if reported else None


@dataclass(kw_only=True)
class SegmentCounts(RequestCounts):
    """A segment's scalars: what it is, its request counts, what arrived while it was open, and the client's
    health during it. Written under the bus lock (:class:`SegmentStats`); copied whole into a view."""

    index: int
    label: str
    scenario: str
    opened: float
    wall_opened: float = field(default_factory=time.time)
    closed: float | None = None
    arrived_tokens: int = 0
    """Output tokens received while this segment was open (whichever segment their request started in)."""
    arrived_completions: int = 0
    """Requests that completed while this segment was open."""
    arrived_input_tokens: int = 0
    """Prompt tokens of the requests that completed while this segment was open."""
    arrived_inputs: int = 0
    """Embedding inputs and rerank documents of the requests that completed while this segment was open."""
    max_loop_lag_ms: float = 0.0
    loop_lag_sum_ms: float = 0.0
    """Loop lag summed over the workers' ticks in this segment (its mean: the client's own share of a TTFT)."""
    loop_lag_ticks: int = 0
    max_worker_cpu: float = 0.0
    peak_host_cpu: float | None = None
    starved_seconds: int = 0
    """Seconds in which the host, not our workers, held the CPU (timings inflated)."""
    busy_seconds: int = 0
    """Seconds in which a worker was the limit."""

    @property
    def mean_loop_lag_ms(self) -> float:
        """The workers' mean loop lag over the segment (0 before any tick)."""
        return self.loop_lag_sum_ms / self.loop_lag_ticks if self.loop_lag_ticks else 0.0

    def duration(self, now: float) -> float:
        """Seconds from opening to closing (or to now, while open)."""
        end = self.closed if self.closed is not None else now
        return max(0.0, end - self.opened)


@dataclass(kw_only=True)
class SegmentView(SegmentCounts):
    """A segment as readers see it: its counts copied, value columns as views (read without the bus lock)."""

    columns: dict[str, ColumnView]
    itl: ItlSketch | None  # a copy, present when the view was taken for statistics


@dataclass(kw_only=True)
class SegmentStats(SegmentCounts):
    """Counts, exact per-request values and the ITL sketch of one segment (written under the bus lock)."""

    columns: dict[str, Column] = field(
        default_factory=lambda: {
            m: Column() for m in (*ALIGNED, *SCHEDULED, SEND_LAG, *TURNS, *REASONING, *SERVER_CLOCK)
        }
    )
    itl: ItlSketch = field(default_factory=ItlSketch)

    def add(self, rec: RequestRecord) -> None:
        """Count a finished request that started in this segment, and keep its values if it succeeded."""
        super().add(rec)
        cols = self.columns
        if rec.client_wait is not None and rec.status is not Status.CANCELLED:
            cols[SEND_LAG].append(rec.client_wait)  # schedule fidelity counts every request that went out
        if rec.status is not Status.OK:
            return
        if rec.client_wait is not None:
            cols["client_wait"].append(rec.client_wait)
            if rec.e2el is not None:
                cols["e2el_sched"].append(rec.e2el + rec.client_wait)
        tpot = rec.tpot
        # One row per successful request in every aligned column (an SLO judges the row as a whole).
        cols["ttft"].append(NAN if rec.ttft is None else rec.ttft)
        cols["ttfc"].append(NAN if rec.ttfc is None else rec.ttfc)
        cols["e2el"].append(NAN if rec.e2el is None else rec.e2el)
        cols["tpot"].append(NAN if tpot is None else tpot)
        cols["itl_max"].append(max(rec.itl) if rec.itl else NAN)
        cols["output_tokens"].append(rec.output_tokens)
        cols["input_tokens"].append(rec.prompt_tokens)
        if rec.turn:
            cols["turn"].append(rec.turn)
            cols["turn_ttft"].append(NAN if rec.ttft is None else rec.ttft)
            cols["turn_prompt"].append(rec.prompt_tokens)
            cols["turn_cached"].append(NAN if rec.cached_tokens is None else rec.cached_tokens)
        if rec.ttfr is not None:
            cols["ttfr"].append(rec.ttfr)
            cols["answer_ttfc"].append(NAN if rec.ttfc is None else rec.ttfc)
            cols["reasoning"].append(rec.reasoning_chunks)
        if rec.server is not None:  # the server's own clock for this request
            cols["server_ttft"].append(rec.server.ttft_ms)
            cols["server_queue"].append(NAN if rec.server.queue_ms is None else rec.server.queue_ms)
            cols["server_prefill"].append(rec.server.prompt_ms)
            cols["server_decode"].append(NAN if rec.server.decode_ms is None else rec.server.decode_ms)
        if rec.itl:
            self.itl.extend(rec.itl)

    def view(self, with_itl: bool) -> SegmentView:
        """A reader's copy (taken under the bus lock); the ITL sketch is copied only when asked for."""
        scalars = {f.name: getattr(self, f.name) for f in fields(SegmentCounts)}
        scalars["errors"] = Counter(self.errors)
        return SegmentView(
            **scalars,
            columns={k: c.view() for k, c in self.columns.items()},
            itl=self.itl.copy() if with_itl else None,
        )
