"""Snapshots: the panes' and the progress line's view of a run, built from a bus view outside the bus lock.

One throttle for statistics: percentiles, histograms and segment rows are recomputed at most every
``stats_every`` seconds (and at once when a segment opens); every snapshot in between carries the last ones and the
same ``stats_version``, so a pane redraws its statistics only when the version changed. Counters, rates and the
request stream are fresh in every snapshot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from llmsurge.metrics.breakdown import Views
from llmsurge.metrics.breakdown import figures as breakdown_figures
from llmsurge.metrics.bus import STALL_MIN_S, BusView, MetricsBus, RequestRate, RunEvent, WorkerRow
from llmsurge.metrics.health import Cause, ClientHealth, worst_health
from llmsurge.metrics.reconcile import Reconciliation, reconcile
from llmsurge.metrics.roofline import RooflineInputs, ceiling, describe
from llmsurge.metrics.segment import SegmentView
from llmsurge.metrics.slo import Slo
from llmsurge.metrics.stats import DEFAULT_PERCENTILES, Figures
from llmsurge.metrics.summary import scope_figures, segment_delivery
from llmsurge.redaction import shown

HISTOGRAM_BINS = 24
STREAM_ROWS = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRow:
    """One line of the request stream pane."""

    request_id: str
    segment: int
    status: str  # ok / failed / cancelled / running / stuck (running, silent while the others flow)
    ttft_ms: float | None
    output_tokens: int
    tokens_per_s: float | None
    latency_ms: float
    error_kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentRow:
    """One line of the segments (saturation) table."""

    index: int
    label: str
    scenario: str
    duration: float
    completed: int
    failed: int
    request_throughput: float  # completions that arrived while the segment was open, per second
    output_throughput: float  # output tokens that arrived while the segment was open, per second
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    n: int  # successful requests its percentiles stand on
    starved: bool = False  # measured while other processes held the CPU (timings inflated)
    cache_hit_rate: float | None = None  # share of prompt tokens from the server's prefix cache (None: not said)
    good_share: float | None = None  # share of ended requests that were good (None: no SLO set)
    input_mean: float = 0.0  # realised prompt tokens of its successful requests: mean and p90
    input_p90: float = 0.0
    output_mean: float = 0.0  # and output tokens
    output_p90: float = 0.0
    degenerate: int = 0  # answers that ended in degenerate text
    quality_score: float | None = None  # share of quality-set answers right (None: none asked)


NAN = float("nan")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunProgress:
    """How far a bounded run (``-n``, ``-d``, a staged preset) has come: what the status line says."""

    done: float
    """Requests ended (``unit`` requests) or seconds run (``unit`` s)."""
    total: float
    unit: str
    eta_s: float | None
    """Seconds left, at the pace so far (None: not yet known)."""
    draining: int = 0
    """Requests still in flight once the last one has started."""

    def describe(self) -> str:
        """``42/160 26% ETA 0:31``, ``0:12/1:00 20%``, ``draining 3``."""
        if self.draining:
            return f"draining {self.draining} in flight"
        share = min(1.0, self.done / self.total) if self.total else 0.0
        if self.unit == "s":
            head = f"{_clock(self.done)}/{_clock(self.total)}"
        else:
            head = f"{self.done:,.0f}/{self.total:,.0f}"
        eta = f" ETA {_clock(self.eta_s)}" if self.eta_s is not None and self.unit != "s" else ""
        return f"{head} {share:.0%}{eta}"


def _clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """An immutable view of the run for panes and reporters. Its text from outside (model, URL, preset and
    scenario names, event messages) is already :func:`~llmsurge.redaction.shown`: safe to put on a screen."""

    elapsed: float
    state: str
    scenario: str
    segment: int
    load_label: str
    paused: bool
    stalled_s: float | None
    """Seconds every answering stream has been silent, during a server-wide stall (None otherwise)."""
    started: int
    inflight: int
    completed: int
    failed: int
    cancelled: int
    errors: dict[str, int]
    output_tokens: int
    output_tok_s: float
    request_rate: RequestRate
    """The live request rate and its window (``request_rate.value()``: None while too few completed)."""
    history: tuple[tuple[float, float, float], ...]  # (t, output tok/s, req/s) per second
    segment_starts: tuple[float, ...]
    segment_figures: Figures
    """The current segment's statistics (latency distributions, goodput, lengths, schedule fidelity)."""
    run_figures: Figures
    ttft_hist: tuple[tuple[float, ...], tuple[int, ...]]  # (edges ms, counts) of the current segment
    recent: tuple[RequestRow, ...]
    segments: tuple[SegmentRow, ...]
    client: ClientHealth
    warmup_done: int
    stats_version: int = 0
    """Changes whenever the statistics above were recomputed (panes redraw them only then)."""
    events: tuple[RunEvent, ...] = ()
    telemetry: dict[str, object] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    slo: Slo = field(default_factory=Slo)
    roofline: tuple[str, str] = ("", "")
    """``decode 84 tok/s per stream = 62% of the 135 tok/s memory ceiling`` and ``62% of 135/s`` (empty when it
    cannot be said)."""
    client_hosts: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    """Per client host: (workers, worst loop lag ms, worst cpu fraction) — several in a Ray run."""
    roofline_aggregate: float | None = None
    workers: tuple[WorkerRow, ...] = ()
    """The per-worker table: each worker process or Ray actor (host names already safe to show)."""
    progress: RunProgress | None = None
    """How far a bounded run has come (None: unbounded, steered by hand, or not started)."""
    inputs_per_request: float = 0.0
    """Embeddings and rerank: inputs (documents) per successful request of the current segment (0: a generation)."""
    reconciliation: Reconciliation | None = None
    """The current segment's TTFT, ours against the server's clock (None: the server exports no TTFT histogram)."""
    """The decode ceiling in output tok/s at the current batch (the rate chart draws it when it is in view)."""
    """The SLO that goodput in ``segment_figures``/``run_figures`` (``request_goodput``, ``good_share``) is held to."""


@dataclass(frozen=True)
class _Stats:
    version: int
    segment: int
    segment_figures: Figures
    run_figures: Figures
    ttft_hist: tuple[tuple[float, ...], tuple[int, ...]]
    rows: tuple[SegmentRow, ...]


def breakdown_rows(views: Views) -> tuple[SegmentRow, ...]:
    """Run-wide rows per model and per server (index 0: not a segment), after the segments."""
    out = []
    for kind, rows in breakdown_figures(views).items():
        for name, r in rows.items():
            out.append(
                SegmentRow(
                    index=0,
                    label=shown(f"{'model' if kind == 'models' else 'server'} {name}", limit=48),
                    scenario="",
                    duration=0.0,
                    completed=int(r["completed"]),
                    failed=int(r["failed"]),
                    request_throughput=NAN,
                    output_throughput=NAN,
                    ttft_p50_ms=float(r["p50_ttft_ms"]),
                    ttft_p99_ms=float(r["p99_ttft_ms"]),
                    tpot_p50_ms=NAN,
                    n=int(r["n_ttft"]),
                )
            )
    return tuple(out)


def _reconciliation(view: BusView, figures: Figures) -> Reconciliation | None:
    """The current segment's TTFT against the server's own phases (its live ``/metrics`` sample)."""
    phases = getattr(view.telemetry.get("server"), "phases", None)
    segs = view.segments
    ttft = figures["ttft"]
    if not phases or not segs or not ttft.n:
        return None
    clock = {k: {"mean_ms": p.mean_ms, "count": p.count} for k, p in phases.items()}
    return reconcile(ttft.mean, clock, segs[-1].mean_loop_lag_ms)


def _with_referee(health: ClientHealth, rec: Reconciliation | None) -> ClientHealth:
    """The client-health line, told when the server's clock puts the gap in our TTFT on the client."""
    if rec is None or rec.where != "client":
        return health
    said = (
        f"our loop lag is {rec.client_side_ms_mean:.0f} of the {rec.gap_ms_mean:.0f} ms our TTFT adds to the"
        " server's clock: the client is the bottleneck"
    )
    if health.saturated:
        return dataclasses.replace(health, reason=f"{health.reason}; {said}")
    return dataclasses.replace(
        health, cause=Cause.LOOP_LAG, reason=f"{said} (add --workers, or move the client off the server's cores)"
    )


class SnapshotBuilder:
    """Builds snapshots of one bus, recomputing statistics at most every ``stats_every`` seconds."""

    def __init__(
        self,
        bus: MetricsBus,
        stats_every: float = 1.0,
        percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
        slo: Slo | None = None,
    ) -> None:
        self.bus = bus
        self.stats_every = stats_every
        self.percentiles = percentiles
        self.slo = slo or Slo()
        self._stats: _Stats | None = None
        self._at = 0.0
        self._client = ClientHealth(0, 0.0, 0.0, Cause.NONE, "")
        self._rates: tuple[float, RequestRate] = (0.0, RequestRate())
        """Output tokens and requests per second, as of the last statistics (the first non-zero figures at once)."""
        self._worst = (0.0, 0.0)
        """The workers' worst (loop lag ms, cpu) seen by the snapshots since the statistics were last computed: the
        client's health is told with them, once per statistics period — a spike between two is not missed, and the
        figures do not flicker at the frame rate (a pane whose text changes is drawn again)."""
        self._segment_stats: dict[tuple[int, int], Figures] = {}
        self._run_stats: tuple[tuple[int, int], Figures] | None = None
        self.roofline: RooflineInputs | None = None
        self.progress: Callable[[], RunProgress | None] | None = None
        """Where the run's progress comes from (the controller, once it runs)."""
        """Roofline inputs from flags and the server (the GPU's identity is added from telemetry)."""

    def set_slo(self, slo: Slo) -> None:
        """Hold goodput to ``slo`` from now on (every segment's figures are recomputed: the values are kept)."""
        self.slo = slo
        self._segment_stats.clear()
        self._run_stats = None
        self._stats = None

    def snapshot(self) -> Snapshot:
        """The run now."""
        now = time.monotonic()
        segs = self.bus.current_segment()
        due = self._stats is None or now - self._at >= self.stats_every or self._stats.segment != segs
        view = self.bus.view(with_stats=due)
        if view.workers:
            lag, cpu = max(w[0] for w in view.workers), max(w[1] for w in view.workers)
            self._worst = (max(self._worst[0], lag), max(self._worst[1], cpu))
        if due:
            self._stats = self._compute(view)
            self._at = now
            self._client = worst_health(len(view.workers), *self._worst, view.host_cpu)
            self._worst = (0.0, 0.0)
        if due or (not self._rates[0] and view.output_tok_s):  # (a newcomer's first sight: the first tokens, at once)
            self._rates = (view.output_tok_s, view.request_rate)
        assert self._stats is not None
        return self._assemble(view, self._stats)

    def _compute(self, view: BusView) -> _Stats:
        """Percentiles of the current segment and the run, the TTFT histogram, the segment rows."""
        segs = view.segments
        current = segs[-1] if segs else None
        seg_stats = self._segment_latency(current) if current is not None else Figures()
        run_key = (len(segs), sum(s.ok for s in segs))
        if self._run_stats is None or self._run_stats[0] != run_key:
            duration = view.now - view.run_start if view.run_start else 0.0
            self._run_stats = (run_key, scope_figures(segs, self.percentiles, self.slo, duration))
        run_stats = self._run_stats[1]
        rows = tuple(self._segment_row(s, view.now) for s in segs) + breakdown_rows(view.breakdown)
        version = (self._stats.version + 1) if self._stats is not None else 1
        index = current.index if current is not None else 0
        return _Stats(version, index, seg_stats, run_stats, ttft_histogram(current), rows)

    def _segment_latency(self, seg: SegmentView) -> Figures:
        """A segment's latency block, cached while no request of it has finished since (closed ones never change)."""
        key = (seg.index, seg.ok)
        cached = self._segment_stats.get(key)
        if cached is None:
            now = time.monotonic()
            cached = scope_figures((seg,), self.percentiles, self.slo, seg.duration(now), now=now)
            self._segment_stats = {k: v for k, v in self._segment_stats.items() if k[0] != seg.index}
            self._segment_stats[key] = cached
        return cached

    def _segment_row(self, seg: SegmentView, now: float) -> SegmentRow:
        st = self._segment_latency(seg)
        e2el = st["e2el"]
        delivered = segment_delivery(seg, now, e2el.median if e2el.n else None)
        return SegmentRow(
            index=seg.index,
            label=seg.label,
            scenario=shown(seg.scenario),
            duration=seg.duration(now),
            completed=seg.ok,
            failed=seg.failed,
            request_throughput=delivered["request_throughput"],
            output_throughput=delivered["output_throughput"],
            ttft_p50_ms=st["ttft"].at(50.0) or 0.0,
            ttft_p99_ms=st["ttft"].at(99.0) or 0.0,
            tpot_p50_ms=st["tpot"].at(50.0) or 0.0,
            n=seg.ok,
            starved=seg.starved_seconds > 0,
            cache_hit_rate=seg.cache_hit_rate,
            good_share=st.good_share if self.slo else None,
            input_mean=st.input_mean,
            input_p90=st.input_p90,
            output_mean=st.output_mean,
            output_p90=st.output_p90,
            degenerate=seg.degenerate,
            quality_score=seg.quality_score,
        )

    def _assemble(self, view: BusView, stats: _Stats) -> Snapshot:
        segs = view.segments
        current = segs[-1] if segs else None
        rec = _reconciliation(view, stats.segment_figures)
        return Snapshot(
            elapsed=view.now - view.run_start if view.run_start else 0.0,
            state=view.state,
            scenario=shown(view.scenario),
            segment=current.index if current else 0,
            load_label=current.label if current else "",
            paused=view.paused,
            stalled_s=view.stalled_s,
            started=view.started,
            inflight=view.inflight,
            completed=sum(s.ok for s in segs),
            failed=sum(s.failed for s in segs),
            cancelled=sum(s.cancelled for s in segs),
            errors=view.errors,
            output_tokens=sum(s.output_tokens for s in segs),
            output_tok_s=self._rates[0],
            request_rate=self._rates[1],
            history=view.history[-300:],
            segment_starts=tuple(s.opened - view.t0 for s in segs),
            segment_figures=stats.segment_figures,
            run_figures=stats.run_figures,
            ttft_hist=stats.ttft_hist,
            recent=request_rows(view),
            segments=stats.rows,
            client=_with_referee(self._client, rec),
            warmup_done=view.warmup_done,
            stats_version=stats.version,
            events=tuple(dataclasses.replace(e, message=shown(e.message, limit=600)) for e in view.events[-20:]),
            telemetry=view.telemetry,
            info={k: shown(v) for k, v in view.info.items()},
            slo=self.slo,
            roofline=(roof := self._roofline(view, stats.segment_figures))[:2],
            roofline_aggregate=roof[2],
            client_hosts=view.hosts,
            workers=tuple(dataclasses.replace(w, host=shown(w.host)) for w in view.worker_rows),
            progress=self.progress() if self.progress is not None else None,
            reconciliation=rec,
            inputs_per_request=current.inputs / current.ok if current is not None and current.ok else 0.0,
        )

    def _roofline(self, view: BusView, seg: Figures) -> tuple[str, str, float | None]:
        """The current segment's decode rate against its ceiling: (in words, short, the aggregate ceiling in
        tok/s); empty when an input is missing."""
        tpot = seg["tpot"].at(50.0)
        tok_s = self._rates[0]  # (the rate the panes show)
        if self.roofline is None or not tpot or not tok_s:
            return "", "", None
        inputs = self.roofline
        gpu = view.telemetry.get("gpu")
        gpus = getattr(gpu, "gpus", ())
        names = [g.name for g in gpus if g.name]
        if names:
            inputs = inputs.with_device(names[0])
        dram = [g.dram_active for g in gpus if g.dram_active == g.dram_active]
        per_stream = 1000.0 / tpot
        context = seg.input_mean + seg.output_mean / 2
        batch = min(tok_s / per_stream, float(max(1, view.inflight)))  # never above what is in flight
        c = ceiling(inputs, max(1.0, batch), context)
        if not c.per_stream:
            return "", "", None
        text, short = describe(per_stream, c), f"{per_stream / c.per_stream:.0%} of {c.per_stream:,.0f}/s"
        if dram:  # the memory interface's measured activity, beside the computed share (DCGM)
            active = sum(dram) / len(dram)
            text += f"; DRAM active {active:.0%} measured (DCGM)"
            short += f" ·DRAM {active:.0%}"
        return text, short, c.aggregate


def ttft_histogram(seg: SegmentView | None, bins: int = HISTOGRAM_BINS) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Bin edges (ms) and counts of a segment's TTFTs; the top 0.5% folded into the last bin."""
    if seg is None or not seg.columns["ttft"].n:
        return ((), ())
    arr = seg.columns["ttft"].values().astype(np.float64) * 1000.0
    arr = arr[~np.isnan(arr)]
    if not arr.size:
        return ((), ())
    hi = float(np.percentile(arr, 99.5)) if arr.size > 20 else float(arr.max())
    lo = float(arr.min())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(np.clip(arr, lo, hi), bins=bins, range=(lo, hi))
    return (tuple(float(e) for e in edges), tuple(int(c) for c in counts))


def request_rows(view: BusView) -> tuple[RequestRow, ...]:
    """The request stream: requests in flight first (the longest-running on top), then finished ones, newest
    first. A request that finished is never also shown as running."""
    running = sorted(view.live, key=lambda r: r.start)[:20]
    stuck = {  # answering, silent past the stall threshold while the others flow (a server-wide stall is said apart)
        rid: s for rid, s in view.quiet.items() if s > STALL_MIN_S and view.stalled_s is None
    }
    rows = [
        RequestRow(
            request_id=r.request_id,
            segment=r.segment,
            status="stuck" if r.request_id in stuck else "running",
            ttft_ms=None if r.ttft is None else r.ttft * 1000.0,
            output_tokens=r.chunks,
            tokens_per_s=None,
            latency_ms=max(0.0, view.now - r.start) * 1000.0,
            error_kind=f"silent {stuck[r.request_id]:.0f}s" if r.request_id in stuck else "",
        )
        for r in running
    ]
    for rec in reversed(view.recent):
        rate = rec.decode_rate
        rows.append(
            RequestRow(
                request_id=rec.request_id,
                segment=rec.segment,
                status=rec.status.value,
                ttft_ms=None if rec.ttft is None else rec.ttft * 1000.0,
                output_tokens=rec.output_tokens,
                tokens_per_s=rate,
                latency_ms=rec.latency * 1000.0,
                error_kind=rec.error_kind,
            )
        )
        if len(rows) >= STREAM_ROWS:
            break
    return tuple(rows)
