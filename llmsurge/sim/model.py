"""A continuous-batching model of an inference engine, in virtual steps driven by asyncio.

A bounded set of running sequences (``max_seqs`` and a KV-cache token budget) sits in front of a FIFO waiting
queue. The cache holds each running sequence's prompt and the tokens it has produced; when the next step would
overflow it, the newest sequence is preempted (as vLLM does) and recomputed when readmitted. Every engine step
decodes one token for each running sequence; the step takes
``step_base + step_per_seq × batch + prefill_per_token × tokens (re)computed for admitted sequences``. So total
throughput rises with concurrency up to the knee at ``max_seqs``, then requests queue and TTFT climbs.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmsurge.sim.prefix_cache import BLOCK_TOKENS, PrefixCache


@dataclass
class EngineTiming:
    """Seconds per engine step; all zero is the benchmark's fast mode (as fast as the CPU goes)."""

    step_base: float = 0.012
    step_per_seq: float = 0.00025
    prefill_per_token: float = 0.00002
    max_seqs: int = 64
    kv_capacity_tokens: int = 262_144
    jitter: float = 0.03
    """Each step's time varies by this fraction (one standard deviation), as a real engine's does (kernels, clocks,
    the host). Exactly periodic steps lock a closed loop at fixed lengths into a phase chosen at its start and kept
    for the whole run: two runs of the same setup then differ by the phase, which no run shows in itself."""
    seed: int | None = None
    """The jitter's seed (None: a different one each start, as a real server's)."""
    freeze_at: float | None = None
    """A fault: the whole engine stops stepping this many seconds after it starts (its requests stay running)…"""
    freeze_for: float = 0.0
    """…for this many seconds (``llmsurge sim --freeze-at S --freeze-for S``)."""

    @classmethod
    def fast(cls, max_seqs: int = 100_000) -> EngineTiming:
        """No modelled compute at all: a step costs only the CPU it takes to run."""
        return cls(0.0, 0.0, 0.0, max_seqs, 1 << 40, 0.0)


class Sequence:
    """One request inside the engine. The HTTP handler waits on ``ready`` and reads ``produced``."""

    __slots__ = (
        "admitted",
        "arrival",
        "cached_tokens",
        "cancelled",
        "first",
        "last",
        "max_tokens",
        "pooling",
        "produced",
        "prompt_tokens",
        "ready",
    )

    def __init__(self, prompt_tokens: int, max_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0  # leading prompt tokens found in the prefix cache: not computed again
        self.max_tokens = max_tokens
        self.produced = 0
        self.ready = asyncio.Event()
        self.cancelled = False
        self.arrival = time.monotonic()
        self.admitted: float | None = None  # first taken into the batch: the end of its wait in the queue
        self.first: float | None = None  # its first token
        self.last: float | None = None  # its latest token
        self.pooling = False  # an embeddings or rerank pass: its prompt is computed, no token is generated

    def timings(self) -> dict[str, float | int]:
        """llama.cpp's ``timings`` from the engine's own clock: ``prompt_ms`` from admission to the first token (the
        step that computed its prompt), ``predicted_ms`` from the first token to the last."""
        admitted = self.admitted if self.admitted is not None else self.arrival
        first = self.first if self.first is not None else admitted
        return {
            "cache_n": self.cached_tokens,
            "prompt_n": self.prompt_tokens - self.cached_tokens,
            "prompt_ms": (first - admitted) * 1000.0,
            "predicted_n": self.produced,
            "predicted_ms": ((self.last or first) - first) * 1000.0,
            "queue_ms": (admitted - self.arrival) * 1000.0,  # not llama.cpp's: the sim's own, for tests
        }

    @property
    def done(self) -> bool:
        """All tokens produced (or abandoned)."""
        return self.cancelled or self.produced >= self.max_tokens

    async def finished(self) -> None:
        """Until :attr:`done` (a whole, not streamed, answer waits here)."""
        while not self.done:
            await self.ready.wait()
            self.ready.clear()

    async def produced_since(self) -> AsyncIterator[range]:
        """The tokens produced since the last step seen (1-based numbers), step by step, until ``max_tokens`` are
        out or the request is abandoned: what a streamed answer writes each time."""
        sent = 0
        while sent < self.max_tokens and not self.cancelled:
            await self.ready.wait()
            self.ready.clear()
            if self.produced > sent:
                yield range(sent + 1, self.produced + 1)
                sent = self.produced


TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


class Histogram:
    """Cumulative-bucket histogram kept as plain counts (exported through prometheus_client)."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        """Add ``n`` observations of ``value``."""
        self.counts[bisect.bisect_left(self.bounds, value)] += n
        self.total += value * n
        self.count += n

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``."""
        out, acc = [], 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=False):
            acc += c
            out.append(("+Inf" if b == float("inf") else repr(float(b)), float(acc)))
        return out


class Engine:
    """The scheduler loop and the server-side counters that ``/metrics`` exports."""

    def __init__(self, timing: EngineTiming) -> None:
        self.timing = timing
        self.running: list[Sequence] = []
        self.waiting: deque[Sequence] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.prefix_cache = PrefixCache(timing.kv_capacity_tokens // BLOCK_TOKENS)
        self.preemptions_total = 0
        self.requests_total = 0
        self.busy_seconds = 0.0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        # vLLM's phases of a request, from the engine's own clock (what a client's TTFT is reconciled with)
        self.queue = Histogram(TTFT_BUCKETS)  # arrival → first admitted to the batch
        self.prefill = Histogram(TTFT_BUCKETS)  # admitted → first token
        self.decode = Histogram(E2E_BUCKETS)  # first token → last token
        self.kv_used_tokens = 0
        self.record_itl = timing.step_base > 0

    def start(self) -> None:
        """Start the scheduler loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the scheduler loop."""
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def submit(self, seq: Sequence) -> None:
        """Queue a sequence; the scheduler admits it when a slot and KV space are free."""
        self.waiting.append(seq)
        self.requests_total += 1
        self._wake.set()

    def finish(self, seq: Sequence) -> None:
        """The handler is done with ``seq`` (finished, failed or abandoned)."""
        if not seq.done:
            seq.cancelled = True

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV-cache token budget held by running sequences."""
        return min(1.0, self.kv_used_tokens / self.timing.kv_capacity_tokens)

    async def _run(self) -> None:
        t = self.timing
        sleep = asyncio.sleep
        gauss = random.Random(t.seed).gauss
        freeze_at = None if t.freeze_at is None else time.monotonic() + t.freeze_at
        while True:
            if freeze_at is not None and time.monotonic() >= freeze_at:  # the fault: every stream goes silent
                freeze_at = None
                await sleep(t.freeze_for)
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            admitted_tokens = 0
            cap = t.kv_capacity_tokens
            kv = sum(s.prompt_tokens + s.produced for s in self.running)
            while self.waiting and len(self.running) < t.max_seqs:
                seq = self.waiting[0]
                if seq.cancelled:
                    self.waiting.popleft()
                    continue
                held = seq.prompt_tokens + seq.produced  # a preempted sequence recomputes what it had
                if self.running and kv + held + len(self.running) + 1 > cap:
                    break
                self.waiting.popleft()
                self.running.append(seq)
                kv += held
                if seq.admitted is None:
                    seq.admitted = time.monotonic()
                    self.queue.observe(seq.admitted - seq.arrival)
                if seq.produced == 0:
                    admitted_tokens += held - seq.cached_tokens  # cached prefix blocks are not computed again
                    self.prompt_tokens_total += seq.prompt_tokens - seq.cached_tokens
                else:
                    admitted_tokens += held
            # This step adds a token to every running sequence: when the cache cannot hold them, preempt the
            # newest (back to the head of the queue, its cache freed: it is recomputed when readmitted).
            while len(self.running) > 1 and kv + len(self.running) > cap:
                victim = self.running.pop()
                kv -= victim.prompt_tokens + victim.produced
                self.waiting.appendleft(victim)
                self.preemptions_total += 1
            self.kv_used_tokens = kv
            step = t.step_base + t.step_per_seq * len(self.running) + t.prefill_per_token * admitted_tokens
            if t.jitter:
                step *= max(0.5, 1.0 + t.jitter * gauss(0.0, 1.0))
            started = time.monotonic()
            await sleep(step)
            now = time.monotonic()
            self.busy_seconds += now - started
            still: list[Sequence] = []
            produced = kept = 0
            for seq in self.running:
                if seq.cancelled:
                    continue
                seq.produced += 1
                seq.last = now
                if seq.pooling:  # its prompt is computed: done, no token generated
                    seq.first = now
                    seq.ready.set()
                    continue
                produced += 1
                if seq.produced == 1:
                    seq.first = now
                    self.ttft.observe(now - seq.arrival)
                    self.prefill.observe(now - (seq.admitted if seq.admitted is not None else seq.arrival))
                seq.ready.set()
                if seq.produced < seq.max_tokens:
                    still.append(seq)
                    kept += seq.prompt_tokens + seq.produced
                else:
                    self.e2e.observe(now - seq.arrival)
                    self.decode.observe(now - (seq.first if seq.first is not None else now))
            if self.record_itl and produced:
                self.itl.observe(now - started, produced)
            self.generation_tokens_total += produced
            self.running = still
            self.kv_used_tokens = kept  # a finished request frees its cache
