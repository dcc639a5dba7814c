"""The MetricsBus: records and live ticks in (from the worker pool's collector thread), Snapshots out.

Everything here is guarded by one lock; readers (the TUI timer, the headless reporter) call :meth:`snapshot`
at 4–10 Hz and get an immutable :class:`Snapshot`. Nothing here holds per-request data without bound:
finished records go to the result writer; live views use fixed-size deques and per-segment float32 arrays.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsurge.metrics.records import Failure, RequestRecord, Status
from llmsurge.metrics.segment import SegmentStats
from llmsurge.metrics.stats import DEFAULT_PERCENTILES, METRICS, describe_ms, error_rate, throughput
from llmsurge.metrics.wire import LiveRequest, RequestStart, WorkerTick
from llmsurge.redaction import redact

RATE_WINDOW = 3.0  # seconds behind "current" tok/s and req/s
HISTORY_SECONDS = 600
RECENT_ROWS = 200
LOOP_LAG_WARN_MS = 20.0
CPU_WARN = 0.85


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something worth telling the user once: a note for ``summary.json`` and a notification on screen."""

    seq: int
    time: float  # seconds since the bus began
    level: str  # "info" / "warning" / "error"
    message: str


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One line of the request stream pane."""

    request_id: str
    segment: int
    status: str  # ok / failed / cancelled / running
    ttft_ms: float | None
    output_tokens: int
    tokens_per_s: float | None
    latency_ms: float
    error_kind: str


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One line of the segments (saturation) table."""

    index: int
    label: str
    scenario: str
    duration: float
    completed: int
    failed: int
    request_throughput: float
    output_throughput: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    live_output_throughput: float


@dataclass(frozen=True, slots=True)
class ClientHealth:
    """How hard our own workers are working: a saturated client measures itself, not the server."""

    workers: int
    max_loop_lag_ms: float
    mean_cpu: float
    max_cpu: float
    saturated: bool
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the run for panes and reporters."""

    elapsed: float
    state: str
    scenario: str
    segment: int
    load_label: str
    paused: bool
    started: int
    inflight: int
    completed: int
    failed: int
    cancelled: int
    errors: dict[str, int]
    output_tokens: int
    output_tok_s: float
    request_s: float
    history: tuple[tuple[float, float, float], ...]  # (t, output tok/s, req/s) per second
    segment_starts: tuple[float, ...]
    segment_stats: dict[str, float]
    run_stats: dict[str, float]
    ttft_hist: tuple[tuple[float, ...], tuple[int, ...]]  # (edges ms, counts) of the current segment
    recent: tuple[RequestRow, ...]
    segments: tuple[SegmentRow, ...]
    client: ClientHealth
    warmup_done: int
    events: tuple[RunEvent, ...] = ()
    telemetry: dict[str, Any] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)


class MetricsBus:
    """Collects worker ticks into segments, live windows and histories; makes snapshots."""

    def __init__(self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> None:
        self._lock = threading.Lock()
        self.percentiles = percentiles
        self.t0 = time.monotonic()
        self.run_start: float | None = None
        self.segments: list[SegmentStats] = []
        self.state = "starting"
        self.paused = False
        self.scenario = ""
        self.info: dict[str, str] = {}
        self.warmup_done = 0
        self.warmup_failed = 0
        self._started: dict[int, int] = {}
        self._inflight: dict[int, int] = {}
        self._health: dict[int, tuple[float, float, float]] = {}  # worker → (lag ms, cpu, time)
        self._lag_peak: dict[int, float] = {}
        self._cpu_peak: dict[int, float] = {}
        self.finished_total = 0
        self._rate_window: deque[tuple[float, int, int]] = deque()  # (t, tokens, completed) inside RATE_WINDOW
        self._buckets: deque[list[float]] = deque(maxlen=HISTORY_SECONDS)  # [second, tokens, completed]
        self._recent: deque[RequestRecord] = deque(maxlen=RECENT_ROWS)
        self._live: dict[int, list[LiveRequest]] = {}
        self._open: dict[str, RequestStart] = {}  # every request in flight, by id
        self._lost_workers: set[int] = set()
        self.usage_rejected = 0
        """Requests whose usage figure was implausible (chunk counts used instead)."""
        self.usage_rejected_example = ""
        self.events: list[RunEvent] = []
        self.telemetry: dict[str, Any] = {}
        self._run_cache: tuple[float, int, dict[str, float]] | None = None
        self._hist_cache: tuple[tuple[int, int], float, tuple[tuple[float, ...], tuple[int, ...]]] | None = None
        self.on_records: Callable[[list[RequestRecord]], None] | None = None
        self.errors: Counter[str] = Counter()
        self.saturation_seen: list[str] = []
        self.read_delays: list[float] = []
        """How late stamped chunks were read (only when workers measure it; bounded)."""

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
            return seg.index

    def close_segment(self) -> None:
        """Close the current segment (end of run)."""
        with self._lock:
            if self.segments and self.segments[-1].closed is None:
                seg = self.segments[-1]
                seg.closed = max(time.monotonic() if seg.finished == 0 else seg.last_end, seg.opened)

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

    def set_telemetry(self, source: str, sample: Any) -> None:
        """Latest sample of one telemetry source."""
        with self._lock:
            self.telemetry[source] = sample

    def ingest(self, tick: WorkerTick) -> None:
        """Fold one worker tick in (called from the pool's collector thread)."""
        now = time.monotonic()
        with self._lock:
            w = tick.worker
            if w in self._lost_workers:
                return  # its requests were accounted as lost: a late tick must not count them twice
            self._started[w] = tick.started
            self._inflight[w] = tick.inflight
            self._health[w] = (tick.loop_lag_ms, tick.cpu, now)
            self._lag_peak[w] = max(self._lag_peak.get(w, 0.0), tick.loop_lag_ms)
            self._cpu_peak[w] = max(self._cpu_peak.get(w, 0.0), tick.cpu)
            if tick.live is not None:
                self._live[w] = tick.live
            if tick.read_delays and len(self.read_delays) < 5_000_000:
                self.read_delays.extend(tick.read_delays)
            if tick.starts:
                for start in tick.starts:
                    self._open[start.request_id] = start
            completed = self._add_records(tick.records)
            if tick.tokens or completed:
                self._rate_window.append((now, tick.tokens, completed))
                sec = int(now - self.t0)
                b = self._buckets
                if b and b[-1][0] == sec:
                    b[-1][1] += tick.tokens
                    b[-1][2] += completed
                else:
                    b.append([float(sec), float(tick.tokens), float(completed)])
            self._health_check(now)
        if tick.records and self.on_records is not None:
            self.on_records(tick.records)

    def _add_records(self, records: list[RequestRecord]) -> int:
        """Count finished records into their segments (lock held); returns how many succeeded."""
        completed = 0
        segs = self.segments
        for rec in records:
            self._open.pop(rec.request_id, None)
            self.finished_total += 1
            if rec.warmup or rec.segment < 1:
                if rec.ok:
                    self.warmup_done += 1
                else:
                    self.warmup_failed += 1
                continue
            if rec.segment <= len(segs):
                segs[rec.segment - 1].add(rec)
            if rec.usage_rejected:
                self.usage_rejected += 1
                self.usage_rejected_example = rec.usage_rejected
            if rec.ok:
                completed += 1
            elif rec.status is not Status.CANCELLED:
                self.errors[rec.error_kind] += 1
            self._recent.append(rec)
        return completed

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
                for s in self._open.values()
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

    def derived_notes(self) -> list[str]:
        """Notes that summarise the run's records rather than one event."""
        with self._lock:
            notes = []
            if self.usage_rejected:
                notes.append(
                    f"implausible usage from the server on {self.usage_rejected} request(s) (e.g."
                    f" {self.usage_rejected_example}): chunk counts used instead, marked estimated"
                )
            return notes

    def note(self, message: str, level: str = "info") -> RunEvent:
        """Record an event worth telling the user once (redacted: its text may come from outside)."""
        with self._lock:
            event = RunEvent(len(self.events) + 1, time.monotonic() - self.t0, level, redact(message))
            self.events.append(event)
            return event

    def _health_check(self, now: float) -> None:
        if not self._health:
            return
        lag = max(v[0] for v in self._health.values())
        cpu = max(v[1] for v in self._health.values())
        if (lag > LOOP_LAG_WARN_MS * 5 or cpu > CPU_WARN) and len(self.saturation_seen) < 20:
            self.saturation_seen.append(f"t={now - self.t0:.0f}s loop lag {lag:.0f} ms, cpu {cpu:.0%}")

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

    def current_segment(self) -> SegmentStats | None:
        """The open (or last) segment."""
        with self._lock:
            return self.segments[-1] if self.segments else None

    def client_health(self) -> ClientHealth:
        """Worker loop lag and CPU, and whether they say the client is the limit."""
        with self._lock:
            return self._client_health_locked()

    def _client_health_locked(self) -> ClientHealth:
        vals = list(self._health.values())
        if not vals:
            return ClientHealth(0, 0.0, 0.0, 0.0, False, "")
        lag = max(v[0] for v in vals)
        cpus = [v[1] for v in vals]
        reason = ""
        if cpus and max(cpus) > CPU_WARN:
            reason = f"a worker uses {max(cpus):.0%} of a core"
        elif lag > LOOP_LAG_WARN_MS:
            reason = f"worker event loop lags {lag:.0f} ms"
        return ClientHealth(len(vals), lag, sum(cpus) / len(cpus), max(cpus), bool(reason), reason)

    def run_stats(self, max_age: float = 0.0) -> dict[str, float]:
        """Latency statistics over every segment (warm-up excluded)."""
        with self._lock:
            return self._run_stats_locked(max_age)

    def _run_stats_locked(self, max_age: float) -> dict[str, float]:
        now = time.monotonic()
        n = sum(s.ok for s in self.segments)
        if self._run_cache is not None:
            at, count, cached = self._run_cache
            if count == n or now - at < max_age:
                return cached
        out: dict[str, float] = {}
        for m in (*METRICS, "ttfc"):
            parts = [np.frombuffer(s.values[m], dtype=np.float32) for s in self.segments]
            arr = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
            out.update(describe_ms(m, arr, self.percentiles))
        self._run_cache = (now, n, out)
        return out

    def run_summary(self) -> dict[str, Any]:
        """vLLM bench serve's top-level keys for the whole run, plus every segment's."""
        with self._lock:
            now = time.monotonic()
            segs = self.segments
            start = self.run_start if self.run_start is not None else now
            end = max([s.last_end for s in segs] + [s.closed or 0.0 for s in segs] + [start])
            duration = max(0.0, end - start)
            ok = sum(s.ok for s in segs)
            failed = sum(s.failed for s in segs)
            inp = sum(s.input_tokens for s in segs)
            out_tok = sum(s.output_tokens for s in segs)
            out: dict[str, Any] = {
                "duration": duration,
                "completed": ok,
                "failed": failed,
                "cancelled": sum(s.cancelled for s in segs),
                "errors": dict(self.errors),
                "error_rate": error_rate(ok, failed),
                "total_input_tokens": inp,
                "total_output_tokens": out_tok,
                "output_tokens_estimated": sum(s.estimated_tokens for s in segs),
            }
            out.update(throughput(ok, inp, out_tok, duration))
            out.update(self._run_stats_locked(0.0))
            out["warmup"] = {"completed": self.warmup_done, "failed": self.warmup_failed}
            out["segments"] = [s.summary(now, self.percentiles) for s in segs]
            return out

    def _live_rate(self, now: float) -> tuple[float, float]:
        ev = self._rate_window
        while ev and ev[0][0] < now - RATE_WINDOW:
            ev.popleft()
        window = min(RATE_WINDOW, max(now - (self.run_start or self.t0), 0.25))
        toks = sum(e[1] for e in ev)
        done = sum(e[2] for e in ev)
        return toks / window, done / window

    def snapshot(self, stats_max_age: float = 0.25) -> Snapshot:
        """An immutable view of everything the panes show."""
        with self._lock:
            now = time.monotonic()
            tok_s, req_s = self._live_rate(now)
            seg = self.segments[-1] if self.segments else None
            seg_stats = seg.latency_stats(self.percentiles, stats_max_age) if seg else {}
            run_stats = self._run_stats_locked(max(1.0, stats_max_age))
            hist = self._ttft_histogram_cached(seg, now, stats_max_age)
            last_sec = int(now - self.t0)
            history = tuple((b[0], b[1], b[2]) for b in self._buckets if b[0] < last_sec)
            rows: list[RequestRow] = []
            for lst in self._live.values():
                for rid, sg, st, ttft, chunks in lst:
                    if rid not in self._open:
                        continue  # finished since the sample: its own row is below
                    el = max(0.0, now - st)
                    rows.append(
                        RequestRow(
                            rid, sg, "running", None if ttft is None else ttft * 1000.0, chunks, None, el * 1000.0, ""
                        )
                    )
            rows.sort(key=lambda r: -r.latency_ms)
            rows = rows[-20:]
            for rec in reversed(self._recent):
                dec = (rec.e2el - rec.ttft) if (rec.e2el is not None and rec.ttft is not None) else 0.0
                tps = (rec.output_tokens - 1) / dec if dec > 0 and rec.output_tokens > 1 else None
                rows.append(
                    RequestRow(
                        rec.request_id,
                        rec.segment,
                        rec.status,
                        None if rec.ttft is None else rec.ttft * 1000.0,
                        rec.output_tokens,
                        tps,
                        rec.latency * 1000.0,
                        rec.error_kind,
                    )
                )
                if len(rows) >= 100:
                    break
            seg_rows = tuple(self._segment_row(s, now) for s in self.segments)
            return Snapshot(
                elapsed=now - (self.run_start or self.t0) if self.run_start else 0.0,
                state=self.state,
                scenario=self.scenario,
                segment=seg.index if seg else 0,
                load_label=seg.label if seg else "",
                paused=self.paused,
                started=sum(self._started.values()),
                inflight=sum(self._inflight.values()),
                completed=sum(s.ok for s in self.segments),
                failed=sum(s.failed for s in self.segments),
                cancelled=sum(s.cancelled for s in self.segments),
                errors=dict(self.errors),
                output_tokens=sum(s.output_tokens for s in self.segments),
                output_tok_s=tok_s,
                request_s=req_s,
                history=history[-300:],
                segment_starts=tuple(s.opened - self.t0 for s in self.segments),
                segment_stats=seg_stats,
                run_stats=run_stats,
                ttft_hist=hist,
                recent=tuple(rows),
                segments=seg_rows,
                client=self._client_health_locked(),
                warmup_done=self.warmup_done,
                events=tuple(self.events[-20:]),
                telemetry=dict(self.telemetry),
                info=dict(self.info),
            )

    def _ttft_histogram_cached(
        self, seg: SegmentStats | None, now: float, max_age: float
    ) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """The current segment's TTFT histogram, recomputed only when requests arrived and ``max_age`` passed
        (a segment can hold a million values; snapshots come 10 times a second)."""
        key = (seg.index, seg.ok) if seg is not None else (0, 0)
        cached = self._hist_cache
        if cached is not None and (cached[0] == key or (cached[0][0] == key[0] and now - cached[1] < max_age)):
            return cached[2]
        hist = _ttft_histogram(seg)
        self._hist_cache = (key, now, hist)
        return hist

    def _segment_row(self, s: SegmentStats, now: float) -> SegmentRow:
        d = s.duration(now)
        st = s.latency_stats(self.percentiles, 1.0)
        tput = throughput(s.ok, s.input_tokens, s.output_tokens, d)
        start = s.opened - self.t0
        end = (s.closed if s.closed is not None else now) - self.t0
        secs = [b[1] for b in self._buckets if start <= b[0] < end - 1]
        live = sum(secs) / len(secs) if secs else tput["output_throughput"]
        return SegmentRow(
            s.index,
            s.label,
            s.scenario,
            d,
            s.ok,
            s.failed,
            tput["request_throughput"],
            tput["output_throughput"],
            st.get("median_ttft_ms", 0.0),
            st.get("p99_ttft_ms", 0.0),
            st.get("median_tpot_ms", 0.0),
            live,
        )


def _ttft_histogram(seg: SegmentStats | None, bins: int = 24) -> tuple[tuple[float, ...], tuple[int, ...]]:
    if seg is None or not len(seg.values["ttft"]):
        return ((), ())
    arr = np.frombuffer(seg.values["ttft"], dtype=np.float32).astype(np.float64) * 1000.0
    hi = float(np.percentile(arr, 99.5)) if arr.size > 20 else float(arr.max())
    lo = float(arr.min())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(np.clip(arr, lo, hi), bins=bins, range=(lo, hi))
    return (tuple(float(e) for e in edges), tuple(int(c) for c in counts))
