"""The MetricsBus: the run's store. Worker ticks in (from the pool's collector thread), views out.

Everything here is guarded by one lock and kept short under it: :meth:`MetricsBus.ingest` folds a tick into
segments and counters; :meth:`MetricsBus.view` copies counters and hands out views of the value columns, so the
statistics of snapshots (``metrics/snapshot.py``) and summaries (``metrics/summary.py``) are computed outside the
lock and ingest never waits on them. Nothing here holds per-request data without bound: finished records go to the
result writer; live views use fixed-size deques, per-segment columns and sketches.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from llmsurge.metrics.breakdown import Breakdown, Views
from llmsurge.metrics.health import Cause, diagnose, worth_recording
from llmsurge.metrics.records import Failure, RequestRecord, Status
from llmsurge.metrics.segment import SegmentStats, SegmentView
from llmsurge.metrics.wire import LiveRequest, RequestStart, WorkerTick
from llmsurge.redaction import redact

RATE_WINDOW = 3.0  # seconds behind "current" tok/s
HISTORY_SECONDS = 600
RECENT_ROWS = 200
MAX_SATURATION_EVENTS = 50


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something worth telling the user once: a note for ``summary.json`` and a notification on screen."""

    seq: int
    time: float  # seconds since the bus began
    level: str  # "info" / "warning" / "error"
    message: str


@dataclass(frozen=True, kw_only=True)
class WorkerRow:
    """One worker process (or Ray actor) as the run sees it: the per-worker table."""

    worker: int
    host: str
    state: str  # "running" or "lost"
    inflight: int
    done: int  # requests it finished ok (warm-up included)
    failed: int  # requests that failed on it (warm-up included; lost ones counted here too)
    cpu: float  # fraction of one core, latest tick
    loop_lag_ms: float  # latest tick


STALL_MIN_S = 2.0
STALL_ITL_FACTOR = 20.0
"""A stall: every stream that has begun its answer silent for longer than this many times the segment's ITL p99,
and at least :data:`STALL_MIN_S` (a stream still waiting for its first token is in its prefill, not stalled)."""

RATE_ENOUGH = 10
"""Completions a request rate steering starts from needs (``r``/``R`` from a closed loop)."""
RATE_SHOWN = 3
"""Completions the live request rate needs before it is shown (fewer: "—")."""
RATE_LONGEST_S = 30.0
"""The longest window a measured request rate reaches back over."""


@dataclass(frozen=True)
class RequestRate:
    """The live request rate — the one every pane, the progress line and steering read: completions per second over
    the last whole seconds of the current segment, reaching back until :data:`RATE_ENOUGH` completions (and at
    least 2 s) or :data:`RATE_LONGEST_S`. ``seconds`` is its window, shown beside it."""

    done: float = 0.0
    seconds: float = 0.0

    def value(self, enough: int = RATE_SHOWN) -> float | None:
        """Requests per second, or None while fewer than ``enough`` completions are counted."""
        return self.done / self.seconds if self.done >= enough and self.seconds else None

    def label(self) -> str:
        """``last 6 s``: the window, for a label beside the value."""
        return f"last {self.seconds:.0f} s" if self.seconds else "no second yet"

    @classmethod
    def over(cls, history: tuple[tuple[float, float, float], ...], since: float) -> RequestRate:
        """From the per-second history (seconds since ``t0``, tokens, completions) after ``since``."""
        done = seconds = 0.0
        for sec, _tokens, completions in reversed(history):
            if sec < since or seconds >= RATE_LONGEST_S:
                break
            done += completions
            seconds += 1.0
            if done >= RATE_ENOUGH and seconds >= 2:
                break
        return cls(done, seconds)


@dataclass(frozen=True)
class BusView:
    """Everything snapshots and summaries read, copied under the lock in one short step."""

    now: float
    t0: float
    run_start: float | None
    state: str
    paused: bool
    scenario: str
    info: dict[str, str]
    started: int
    inflight: int
    warmup_done: int
    warmup_failed: int
    errors: dict[str, int]
    output_tok_s: float
    history: tuple[tuple[float, float, float], ...]  # (second since t0, output tokens, completions)
    segments: tuple[SegmentView, ...]
    recent: tuple[RequestRecord, ...]  # newest last
    live: tuple[LiveRequest, ...]  # requests in flight (a sample), still unfinished
    workers: tuple[tuple[float, float], ...]  # each worker's latest (loop lag ms, cpu fraction)
    stalled_s: float | None
    """Seconds every answering stream has been silent, while that is a stall (:data:`STALL_MIN_S`); else None."""
    worst_loop_lag_ms: float
    worst_worker_cpu: float
    host_cpu: float | None
    saturation_events: tuple[str, ...]
    events: tuple[RunEvent, ...]
    telemetry: dict[str, object] = field(default_factory=dict)
    hosts: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """Per client host: (workers, loop lag ms, cpu fraction), the worst of its live workers' latest readings (a
    Ray run spans several hosts; a local run has one)."""
    worker_rows: tuple[WorkerRow, ...] = ()
    hosts_worst: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """The same over the whole run: (workers that ran there, worst loop lag ms, worst cpu fraction)."""
    event_loops: tuple[str, ...] = ()
    """The event loops the workers said they run on (one name each, sorted)."""
    usage_rejected: int = 0
    usage_rejected_example: str = ""
    breakdown: Views = field(default_factory=dict)
    """Per model and per server (``models``, ``targets``), when the run has several (views taken with stats)."""
    quiet: dict[str, float] = field(default_factory=dict)
    """Per live request that has begun its answer: seconds since its last token (its row's "stuck" flag)."""

    @property
    def request_rate(self) -> RequestRate:
        """The live request rate over the current segment's last seconds (:class:`RequestRate`)."""
        since = self.segments[-1].opened - self.t0 if self.segments else 0.0
        return RequestRate.over(self.history, since)


class MetricsBus:
    """Collects worker ticks into segments, live windows and histories; hands out views."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        self.run_start: float | None = None
        self.segments: list[SegmentStats] = []
        self.state = "starting"
        self.paused = False
        self.last_token_at: float | None = None
        """When the last token arrived, from any stream."""
        self._stalled_since: float | None = None
        """The last token's time, while every answering stream has been silent past the stall threshold."""
        self._stall_threshold = (STALL_MIN_S, -1.0)  # (seconds, when computed)
        self._progress: dict[str, tuple[int, float]] = {}  # live request → (chunks, when they last changed)
        self.scenario = ""
        self.info: dict[str, str] = {}
        self.warmup_done = 0
        self.warmup_failed = 0
        self.finished_total = 0
        self.errors: Counter[str] = Counter()
        self.events: list[RunEvent] = []
        self.telemetry: dict[str, object] = {}
        self.usage_rejected = 0
        self.retry_after_told = False
        """Whether the first ``Retry-After`` was said (it is said once)."""
        """Requests whose usage figure was implausible (chunk counts used instead)."""
        self.usage_rejected_example = ""
        self.on_records: Callable[[list[RequestRecord]], None] | None = None
        self.breakdown = Breakdown()
        """Per model and per server, when the run spreads requests over several."""
        self.segment_listeners: list[Callable[[int], None]] = []
        """Told each new segment's index as it opens (the server sampler scrapes at once: segments' histograms)."""
        """Where finished records go (the result writer), outside the lock."""
        self.read_delays: list[float] | None = None
        """Benchmarks set a list here to collect how late stamped chunks were read (bounded)."""
        self._started: dict[int, int] = {}
        self._inflight: dict[int, int] = {}
        self._health: dict[int, tuple[float, float]] = {}  # worker → latest (loop lag ms, cpu)
        self._worst = (0.0, 0.0)  # the run's worst (loop lag ms, worker cpu)
        self._host_cpu: float | None = None
        self._saturation: list[str] = []
        self._rate_window: deque[tuple[float, int, int]] = deque()  # (t, tokens, completed) inside RATE_WINDOW
        # One row per second: [second since t0, tokens, completions, worst loop lag ms, worst worker cpu].
        self._buckets: deque[list[float]] = deque(maxlen=HISTORY_SECONDS)
        self._recent: deque[RequestRecord] = deque(maxlen=RECENT_ROWS)
        self._live: dict[int, list[LiveRequest]] = {}
        self._open: dict[str, tuple[str, int, float, float, bool]] = {}
        """Every request in flight, by id: its RequestStart as a plain tuple, which the garbage collector stops
        tracking (20,000 named tuples held here made each full collection of the UI's process take ~0.1 s)."""
        self._lost_workers: set[int] = set()
        self._hosts: dict[int, str] = {}  # worker → the host it runs on
        self._loops: dict[int, str] = {}  # worker → its event loop (uvloop, asyncio)
        self._worker_worst: dict[int, tuple[float, float]] = {}  # worker → its worst (loop lag ms, cpu) of the run
        self._worker_ended: dict[int, list[int]] = {}  # worker → [done, failed]

    # ---- writes --------------------------------------------------------------------------------

    def open_segment(self, label: str, scenario: str) -> int:
        """Close the current segment and open a new one; returns its index (1-based)."""
        with self._lock:
            now = time.monotonic()
            if self.run_start is None:
                self.run_start = now
            if self.segments and self.segments[-1].closed is None:
                self.segments[-1].closed = now
            seg = SegmentStats(index=len(self.segments) + 1, label=label, scenario=scenario, opened=now)
            self.segments.append(seg)
            self.scenario = scenario
            listeners = list(self.segment_listeners)
        for listener in listeners:  # outside the lock: a listener may read the bus
            listener(seg.index)
        return seg.index

    def close_segment(self) -> None:
        """Close the current segment (end of run)."""
        with self._lock:
            if self.segments and self.segments[-1].closed is None:
                self.segments[-1].closed = time.monotonic()

    def set_state(self, state: str, paused: bool | None = None) -> None:
        """``waiting`` / ``warmup`` / ``running`` / ``paused`` / ``done`` …"""
        with self._lock:
            self.state = state
            if paused is not None:
                self.paused = paused

    def set_info(self, **info: str) -> None:
        """Static facts for the status line (url, model, server kind, preset)."""
        with self._lock:
            self.info.update(info)

    def set_telemetry(self, source: str, sample: object) -> None:
        """Latest sample of one telemetry source (the host's CPU also feeds the client diagnosis)."""
        with self._lock:
            self.telemetry[source] = sample
            cpu = getattr(sample, "cpu_percent", None)
            if source == "host" and isinstance(cpu, float) and cpu == cpu:
                self._host_cpu = cpu
                seg = self._open_segment()
                if seg is not None:
                    seg.peak_host_cpu = max(seg.peak_host_cpu or 0.0, cpu)

    def note(self, message: str, level: str = "info") -> RunEvent:
        """Record an event worth telling the user once (redacted: its text may come from outside)."""
        with self._lock:
            event = RunEvent(len(self.events) + 1, time.monotonic() - self.t0, level, redact(message))
            self.events.append(event)
            return event

    def set_worker_host(self, worker: int, host: str, event_loop: str = "") -> None:
        """Where worker ``worker`` runs (for per-host client health), and on which event loop."""
        with self._lock:
            self._hosts[worker] = host or "?"
            if event_loop:
                self._loops[worker] = event_loop

    def _host_health(self, worst: bool = False) -> dict[str, tuple[int, float, float]]:
        out: dict[str, tuple[int, float, float]] = {}
        for w, (lag, cpu) in (self._worker_worst if worst else self._health).items():
            if w in self._lost_workers and not worst:
                continue
            host = self._hosts.get(w, "?")
            n, worst_lag, worst_cpu = out.get(host, (0, 0.0, 0.0))
            out[host] = (n + 1, max(worst_lag, lag), max(worst_cpu, cpu))
        return out

    def _worker_rows(self) -> tuple[WorkerRow, ...]:
        """Each worker that reported: state, in flight, ended ok / failed, latest CPU and loop lag (lock held)."""
        ids = sorted(set(self._started) | set(self._health) | set(self._worker_ended))
        rows = []
        for w in ids:
            lost = w in self._lost_workers
            lag, cpu = (0.0, 0.0) if lost else self._health.get(w, (0.0, 0.0))
            done, failed = self._worker_ended.get(w, (0, 0))
            rows.append(
                WorkerRow(
                    worker=w,
                    host=self._hosts.get(w, ""),
                    state="lost" if lost else "running",
                    inflight=0 if lost else self._inflight.get(w, 0),
                    done=done,
                    failed=failed,
                    cpu=cpu,
                    loop_lag_ms=lag,
                )
            )
        return tuple(rows)

    def _open_segment(self) -> SegmentStats | None:
        seg = self.segments[-1] if self.segments else None
        return seg if seg is not None and seg.closed is None else None

    def ingest(self, tick: WorkerTick) -> None:
        """Fold one worker tick in (called from the pool's collector thread)."""
        now = time.monotonic()
        with self._lock:
            w = tick.worker
            if w in self._lost_workers:
                return  # its requests were accounted as lost: a late tick must not count them twice
            self._started[w] = tick.started
            self._inflight[w] = tick.inflight
            self._health[w] = (tick.loop_lag_ms, tick.cpu)
            worst = self._worker_worst.get(w, (0.0, 0.0))
            self._worker_worst[w] = (max(worst[0], tick.loop_lag_ms), max(worst[1], tick.cpu))
            if tick.live is not None:
                self._live[w] = tick.live
                for r in tick.live:  # when each live request last made progress (a stream stuck alone)
                    seen = self._progress.get(r.request_id)
                    if seen is None or seen[0] != r.chunks:
                        self._progress[r.request_id] = (r.chunks, now)
                if len(self._progress) > 4 * sum(len(rows) for rows in self._live.values()) + 64:
                    alive = {r.request_id for rows in self._live.values() for r in rows}
                    self._progress = {k: v for k, v in self._progress.items() if k in alive}
            if tick.read_delays and self.read_delays is not None and len(self.read_delays) < 5_000_000:
                self.read_delays.extend(tick.read_delays)
            if tick.starts:
                for start in tick.starts:
                    self._open[start.request_id] = (*start,)
            completed, prompt_tokens, inputs = self._add_records(tick.records)
            seg = self._open_segment()
            if seg is not None:
                seg.arrived_tokens += tick.tokens
                seg.arrived_completions += completed
                seg.arrived_input_tokens += prompt_tokens
                seg.arrived_inputs += inputs
                seg.max_loop_lag_ms = max(seg.max_loop_lag_ms, tick.loop_lag_ms)
                if not tick.final:
                    seg.loop_lag_sum_ms += tick.loop_lag_ms
                    seg.loop_lag_ticks += 1
                seg.max_worker_cpu = max(seg.max_worker_cpu, tick.cpu)
            self._worst = (max(self._worst[0], tick.loop_lag_ms), max(self._worst[1], tick.cpu))
            if tick.tokens or completed:
                self._rate_window.append((now, tick.tokens, completed))
            self._add_to_second(now, tick, completed)
            said = self._watch_stall(now, tick.tokens, seg)
        if said is not None:
            self.note(*said)
        if tick.records and self.on_records is not None:
            self.on_records(tick.records)

    def _watch_stall(self, now: float, tokens: int, seg: SegmentStats | None) -> tuple[str, str] | None:
        """A server-wide stall begun or ended with this tick (under the lock): what to say, once each."""
        if tokens:
            since, self._stalled_since, self.last_token_at = self._stalled_since, None, now
            if since is not None:
                return f"stall over: tokens flow again after {now - since:.1f} s of silence", "info"
            return None
        if self._stalled_since is not None or self.last_token_at is None or self.paused:
            return None
        answering = sum(1 for rows in self._live.values() for r in rows if r.ttft is not None)
        silent = now - self.last_token_at
        if not answering or silent <= self._stall_threshold_s(now, seg):
            return None
        self._stalled_since = self.last_token_at
        server = self.telemetry.get("server")
        running = getattr(server, "running", None)
        said = f"; the server's /metrics says {running:.0f} running" if isinstance(running, (int, float)) else ""
        past = self._stall_threshold[0]
        return (
            f"stall: every answering stream ({answering}) silent for {silent:.1f} s — past {past:.1f} s (2 s, or 20x"
            f" this segment's ITL p99 if longer){said}: the server stopped producing tokens",
            "error",
        )

    def _stall_threshold_s(self, now: float, seg: SegmentStats | None) -> float:
        """Seconds of silence that make a stall (recomputed at most once a second)."""
        threshold, at = self._stall_threshold
        if now - at >= 1.0:
            p99 = seg.itl.quantile(0.99) if seg is not None and seg.itl.count else math.nan
            threshold = STALL_MIN_S if math.isnan(p99) else max(STALL_MIN_S, STALL_ITL_FACTOR * p99)
            self._stall_threshold = (threshold, now)
        return threshold

    def _add_to_second(self, now: float, tick: WorkerTick, completed: int) -> None:
        sec = float(int(now - self.t0))
        b = self._buckets
        if b and b[-1][0] == sec:
            row = b[-1]
            row[1] += tick.tokens
            row[2] += completed
            row[3] = max(row[3], tick.loop_lag_ms)
            row[4] = max(row[4], tick.cpu)
            return
        if b:
            self._judge_second(b[-1])
        b.append([sec, float(tick.tokens), float(completed), tick.loop_lag_ms, tick.cpu])

    def _judge_second(self, row: list[float]) -> None:
        """A second is over: was the client the limit in it? (counted per segment, kept for the summary)"""
        lag, cpu = row[3], row[4]
        cause, reason = diagnose(lag, cpu, self._host_cpu)
        if not cause:
            return
        seg = self._open_segment()
        if seg is not None:
            if cause is Cause.HOST_STARVED:
                seg.starved_seconds += 1
            elif cause is Cause.CLIENT_BUSY:
                seg.busy_seconds += 1
        if worth_recording(lag, cpu) and len(self._saturation) < MAX_SATURATION_EVENTS:
            self._saturation.append(f"t={row[0]:.0f}s {cause}: {reason}")

    def _add_records(self, records: list[RequestRecord]) -> tuple[int, int, int]:
        """Count finished records into their segments (lock held); returns how many succeeded, their prompt
        tokens and their inputs (embeddings, rerank)."""
        completed = prompt_tokens = inputs = 0
        segs = self.segments
        for rec in records:
            self._open.pop(rec.request_id, None)
            self.finished_total += 1
            ended = self._worker_ended.setdefault(rec.worker, [0, 0])
            if rec.ok:
                ended[0] += 1
            elif rec.status is not Status.CANCELLED:
                ended[1] += 1
            if rec.warmup or rec.segment < 1:
                if rec.ok:
                    self.warmup_done += 1
                else:
                    self.warmup_failed += 1
                continue
            if rec.segment <= len(segs):
                segs[rec.segment - 1].add(rec)
            if rec.model or rec.target:
                self.breakdown.add(rec)
            if rec.usage_rejected:
                self.usage_rejected += 1
                self.usage_rejected_example = rec.usage_rejected
            if rec.ok:
                completed += 1
                prompt_tokens += rec.prompt_tokens
                inputs += rec.inputs
            elif rec.status is not Status.CANCELLED:
                if rec.error_kind not in self.errors and rec.error_kind.startswith(("http_3", "http_4")):
                    self._say_refused(rec)
                if rec.retry_after is not None and not self.retry_after_told:
                    self._say_retry_after(rec)
                self.errors[rec.error_kind] += 1
            self._recent.append(rec)
        return completed, prompt_tokens, inputs

    def _say_refused(self, rec: RequestRecord) -> None:
        """The first request the server refused with this 4xx: say why, once (the rest are counted, not shown)."""
        why = rec.error.strip() or "no reason given"
        long = any(w in why.lower() for w in ("context length", "maximum context", "too long", "exceeds", "n_ctx"))
        lead = "the server refused a prompt as too long for its context" if long else "the server refused a request"
        message = f"{lead} ({rec.error_kind}): {why[:200]} (every {rec.error_kind} is counted; said once)"
        self.events.append(RunEvent(len(self.events) + 1, time.monotonic() - self.t0, "warning", redact(message)))

    def _say_retry_after(self, rec: RequestRecord) -> None:
        """The first ``Retry-After``: say that it is honoured, once."""
        self.retry_after_told = True
        message = (
            f"the server asked to retry later ({rec.error_kind}, Retry-After {rec.retry_after:g}s): each closed-loop"
            " slot waits that long (at most 30 s) before its next request; an open-loop schedule is kept as set"
        )
        self.events.append(RunEvent(len(self.events) + 1, time.monotonic() - self.t0, "warning", message))

    def worker_lost(self, worker: int, taken: int, last_segment: int, why: str) -> list[RequestRecord]:
        """Account for a worker process that died: every request it had started and not reported finished becomes
        a ``worker_lost`` failure (those it started after its last tick included: ``taken`` counts them).
        Returns the records (already counted and handed to the result writer)."""
        now_wall = time.time()
        with self._lock:
            now = time.monotonic()
            prefix = f"{worker}-"
            lost = [
                RequestRecord(s.request_id, s.segment, worker, s.start, s.wall_start, s.warmup)
                for s in map(RequestStart._make, self._open.values())
                if s.request_id.startswith(prefix)
            ]
            reported = self._started.get(worker, 0)
            lost.extend(  # started after its last tick: never reported
                RequestRecord(f"{worker}-{seq}", last_segment, worker, now, now_wall, last_segment < 1)
                for seq in range(reported + 1, taken + 1)
            )
            for rec in lost:
                rec.fail(Failure.WORKER_LOST, why)
                rec.end = now
            self._lost_workers.add(worker)
            self._started[worker] = max(reported, taken)
            self._inflight[worker] = 0
            self._health.pop(worker, None)
            self._live.pop(worker, None)
            self._add_records(lost)
        if lost and self.on_records is not None:
            self.on_records(lost)
        return lost

    # ---- reads ---------------------------------------------------------------------------------

    @property
    def started_total(self) -> int:
        """Requests started by all workers (warm-up included)."""
        with self._lock:
            return sum(self._started.values())

    @property
    def inflight_total(self) -> int:
        """Requests in flight across workers."""
        with self._lock:
            return sum(self._inflight.values())

    def current_segment(self) -> int:
        """The open (or last) segment's index; 0 before the first."""
        with self._lock:
            return self.segments[-1].index if self.segments else 0

    def find_record(self, request_id: str) -> RequestRecord | None:
        """A recently finished request (the last :data:`RECENT_ROWS`), for the inspector."""
        with self._lock:
            for rec in reversed(self._recent):
                if rec.request_id == request_id:
                    return rec
        return None

    def delivered_output_throughput(self, index: int) -> float:
        """Output tokens per second that arrived while segment ``index`` was open (the ramp's stop rule)."""
        with self._lock:
            seg = self.segments[index - 1]
            end = seg.closed if seg.closed is not None else time.monotonic()
            return seg.arrived_tokens / max(end - seg.opened, 1e-9)

    def view(self, with_stats: bool = False) -> BusView:
        """Copy what readers need, under the lock, in one short step (columns as views; ITL sketches copied only
        ``with_stats``)."""
        with self._lock:
            now = time.monotonic()
            tok_s = self._live_tokens(now)
            last_sec = int(now - self.t0)
            return BusView(
                now=now,
                t0=self.t0,
                run_start=self.run_start,
                state=self.state,
                paused=self.paused,
                stalled_s=None if self._stalled_since is None else now - self._stalled_since,
                scenario=self.scenario,
                info=dict(self.info),
                started=sum(self._started.values()),
                inflight=sum(self._inflight.values()),
                warmup_done=self.warmup_done,
                warmup_failed=self.warmup_failed,
                errors=dict(self.errors),
                output_tok_s=tok_s,
                history=tuple((b[0], b[1], b[2]) for b in self._buckets if b[0] < last_sec),
                segments=tuple(s.view(with_stats) for s in self.segments),
                recent=tuple(self._recent),
                live=tuple(r for rows in self._live.values() for r in rows if r.request_id in self._open),
                quiet={
                    r.request_id: now - self._progress[r.request_id][1]
                    for rows in self._live.values()
                    for r in rows
                    if r.ttft is not None and r.request_id in self._progress
                },
                workers=tuple(h for w, h in self._health.items() if w not in self._lost_workers),
                hosts=self._host_health(),
                hosts_worst=self._host_health(worst=True),
                event_loops=tuple(sorted(set(self._loops.values()))),
                worker_rows=self._worker_rows(),
                worst_loop_lag_ms=self._worst[0],
                worst_worker_cpu=self._worst[1],
                host_cpu=self._host_cpu,
                saturation_events=tuple(self._saturation),
                events=tuple(self.events),
                telemetry=dict(self.telemetry),
                usage_rejected=self.usage_rejected,
                usage_rejected_example=self.usage_rejected_example,
                breakdown=self.breakdown.view() if with_stats else {},
            )

    def _live_tokens(self, now: float) -> float:
        """Output tokens per second over the last :data:`RATE_WINDOW` seconds."""
        ev = self._rate_window
        while ev and ev[0][0] < now - RATE_WINDOW:
            ev.popleft()
        ran = max(now - (self.run_start or self.t0), 0.25)
        return sum(e[1] for e in ev) / min(RATE_WINDOW, ran)
