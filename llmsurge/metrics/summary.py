"""``summary.json``: built in one place from a bus view and the run's facts.

Top-level keys are ``vllm bench serve``'s (DESIGN.md); each segment carries the same keys. Latencies are over the
requests that *started* in a segment; a segment's throughputs are what *arrived* while it was open (the run's
throughputs are the run's tokens over the run's duration, as vLLM computes them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from llmsurge.metrics.breakdown import figures as breakdown_figures
from llmsurge.metrics.bus import BusView
from llmsurge.metrics.kv import KvForecast, forecast
from llmsurge.metrics.model import (
    Capacity,
    ClientHealth,
    HostWorst,
    JsonObject,
    Level,
    PhaseClock,
    Quality,
    Reasoning,
    Referee,
    RunClient,
    RunSummary,
    Schedule,
    ServerTimings,
    Turn,
    Warmup,
)
from llmsurge.metrics.reconcile import reconcile
from llmsurge.metrics.roofline import RooflineInputs, segment_roofline
from llmsurge.metrics.segment import SegmentView
from llmsurge.metrics.sketch import ItlSketch
from llmsurge.metrics.slo import Slo, goodput
from llmsurge.metrics.stats import (
    ALIGNED,
    DEFAULT_PERCENTILES,
    LENGTHS,
    SCHEDULED,
    SEND_LAG,
    Figures,
    describe_ms,
    error_rate,
    latency_distributions,
    length_figures,
    pooling_block,
    throughput,
)


@dataclass
class RunFacts:
    """What the summary says about the run besides its measurements (the session knows these)."""

    version: str = ""
    started_wall: float = field(default_factory=time.time)
    endpoint: str = "chat"
    model: str = ""
    server: dict[str, object] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)
    calibration: dict[str, object] = field(default_factory=dict)
    workers: int = 1
    notes: list[str] = field(default_factory=list)
    telemetry: dict[str, JsonObject] = field(default_factory=dict)  # source → its sampler's summary
    shares_prefixes: bool = False  # the scenario shares prompt prefixes on purpose (a warm cache is intended)
    slo: Slo = field(default_factory=Slo)
    capacity: Capacity | None = None  # a capacity search's outcome
    name: str = ""  # the run's label (--name)
    preset: str = ""
    roofline: RooflineInputs | None = None  # the decode roofline's inputs (each with its source)
    backend: str = "local"  # where the workers ran: local processes or Ray actors
    resolving: dict[str, int] = field(default_factory=dict)  # what resolving sent the server (Sent.json())
    warmup_tokens: tuple[int, int] = (0, 0)  # a warm-up request's prompt and output tokens (at most)
    reset_cache: bool = False  # --reset-cache: each stage was meant to start with the server's cache empty


def aligned_values(segments: tuple[SegmentView, ...]) -> dict[str, np.ndarray]:
    """The segments' per-request columns, concatenated (one row per successful request)."""
    return {
        m: np.concatenate([s.columns[m].values() for s in segments]) if segments else np.empty(0, np.float32)
        for m in ALIGNED
    }


def scope_figures(
    segments: tuple[SegmentView, ...],
    percentiles: tuple[float, ...],
    slo: Slo | None = None,
    duration: float = 0.0,
    now: float | None = None,
) -> Figures:
    """The typed figures of one segment or several (views taken with their ITL sketches): latencies, goodput when
    an SLO is set (over ``duration``), realised lengths and, given ``now``, the schedule's fidelity."""
    values = aligned_values(segments)
    itl = ItlSketch()
    for s in segments:
        if s.itl is not None:
            itl.merge(s.itl)
    lengths = lengths_block(segments)
    schedule = schedule_block(segments, now) if now is not None else None
    return Figures(
        latency=latency_distributions(values, itl, percentiles),
        good=goodput(values, slo, duration, failed=sum(s.failed for s in segments)) if slo else {},
        input_mean=lengths["mean_input_tokens"],
        input_p90=lengths["p90_input_tokens"],
        output_mean=lengths["mean_output_tokens"],
        output_p90=lengths["p90_output_tokens"],
        lag_p99_ms=None if schedule is None else schedule.lag_p99_ms,
        late_share=0.0 if schedule is None else schedule.late_share,
        schedule_kept=True if schedule is None else schedule.kept,
        itl_bunched_share=itl.bunched_share,
    )


def run_latency(
    segments: tuple[SegmentView, ...], percentiles: tuple[float, ...], slo: Slo | None = None, duration: float = 0.0
) -> dict[str, float]:
    """The latency block over every segment and goodput when an SLO is set, under ``summary.json``'s names."""
    return scope_figures(segments, percentiles, slo, duration).keys()


def scheduled_block(segments: tuple[SegmentView, ...], percentiles: tuple[float, ...]) -> dict[str, float]:
    """Open loop: ``*_client_wait_ms`` (how late we sent requests) and ``*_e2el_sched_ms`` (E2EL from the
    scheduled time); nothing for closed-loop segments."""
    out: dict[str, float] = {}
    for m in SCHEDULED:
        parts = [s.columns[m].values() for s in segments if s.columns[m].n]
        if parts:
            out.update(describe_ms(m, np.concatenate(parts), percentiles))
    return out


def server_timings(segments: tuple[SegmentView, ...]) -> ServerTimings | None:
    """The server's own clock from its per-request timings (llama.cpp's ``timings``, vLLM's per-request
    ``metrics``), in the shape of the phase histograms' clock (``{"ttft": {"mean_ms", "count"}, "queue": …}``) —
    what reconciles a segment where ``/metrics`` has no phase histograms; None when no request carried them."""
    ttft = _joined(segments, "server_ttft")
    if not ttft.size:
        return None
    phases = {"ttft": PhaseClock(mean_ms=float(ttft.mean()), count=int(ttft.size))}
    for phase, name in (("queue", "server_queue"), ("prefill", "server_prefill"), ("decode", "server_decode")):
        values = _joined(segments, name)
        values = values[~np.isnan(values)]
        if values.size:
            phases[phase] = PhaseClock(mean_ms=float(values.mean()), count=int(values.size))
    return ServerTimings(source="per-request", phases=phases)


LATE_MS = 10.0
"""A request that left more than this after its scheduled time is late (or 1% of the mean gap, when less)."""
LATE_FLOOR_MS = 1.0
"""…but never less than this: what an event loop's timers can keep."""


def schedule_block(segments: tuple[SegmentView, ...], now: float) -> Schedule | None:
    """Schedule fidelity of the open-loop requests (rate, trace): how late each left against its schedule —
    p50, p99 and max lag, the late share and the tolerance it is judged by; None when nothing was scheduled."""
    parts = [s.columns[SEND_LAG].values() for s in segments if s.columns[SEND_LAG].n]
    if not parts:
        return None
    lag = np.concatenate(parts).astype(np.float64) * 1000.0
    span = sum(s.duration(now) for s in segments if s.columns[SEND_LAG].n)
    gap_ms = span * 1000.0 / len(lag)
    tolerance = max(LATE_FLOOR_MS, min(LATE_MS, 0.01 * gap_ms))
    p99 = float(np.percentile(lag, 99))
    return Schedule(
        requests=len(lag),
        lag_p50_ms=float(np.percentile(lag, 50)),
        lag_p99_ms=p99,
        lag_max_ms=float(lag.max()),
        late_share=float((lag > tolerance).mean()),
        mean_gap_ms=gap_ms,
        tolerance_ms=tolerance,
        kept=p99 <= tolerance,
    )


def _joined(segments: tuple[SegmentView, ...], name: str) -> np.ndarray:
    parts = [s.columns[name].values() for s in segments if s.columns[name].n]
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0, np.float64)


def lengths_block(segments: tuple[SegmentView, ...]) -> dict[str, float]:
    """Realised prompt and output lengths of the successful requests: ``mean_`` and ``p90_input_tokens`` / …"""
    return dict(length_figures({name: _joined(segments, name) for name in LENGTHS}))


def turns_block(segments: tuple[SegmentView, ...], percentiles: tuple[float, ...]) -> tuple[Turn, ...]:
    """Per turn of a multi-turn chat: its TTFT and prefix-cache hits (none when the run had no such chats)."""
    turn = _joined(segments, "turn")
    if not turn.size:
        return ()
    ttft, prompt, cached = (_joined(segments, m) for m in ("turn_ttft", "turn_prompt", "turn_cached"))
    rows = []
    for k in sorted({int(t) for t in turn}):
        sel = turn == k
        t_k, c_k, p_k = ttft[sel], cached[sel], prompt[sel]
        reported = ~np.isnan(c_k)
        hit = float(c_k[reported].sum() / p_k[reported].sum()) if reported.any() and p_k[reported].sum() else None
        rows.append(
            Turn(
                turn=k,
                completed=int(sel.sum()),
                mean_prompt_tokens=float(p_k.mean()),
                figures=describe_ms("ttft", t_k[~np.isnan(t_k)], percentiles),
                prefix_cache_hit_rate=hit,
            )
        )
    return tuple(rows)


def reasoning_block(segments: tuple[SegmentView, ...], percentiles: tuple[float, ...]) -> Reasoning | None:
    """A reasoning model's requests: time to the first reasoning token and to the first answer token."""
    ttfr = _joined(segments, "ttfr")
    if not ttfr.size:
        return None
    answer = _joined(segments, "answer_ttfc")
    figures = describe_ms("ttfr", ttfr, percentiles)
    figures.update(describe_ms("answer_ttfc", answer[~np.isnan(answer)], percentiles))
    return Reasoning(
        completed=int(ttfr.size), mean_reasoning_tokens=float(_joined(segments, "reasoning").mean()), figures=figures
    )


SHORT_OUTPUT_NOTE = 0.01


def _notes(s: RunSummary, view: BusView, facts: RunFacts) -> list[str]:
    """What the figures need said beside them (each once)."""
    notes = list(facts.notes)
    run = s.run
    if view.usage_rejected:
        notes.append(
            f"implausible usage from the server on {view.usage_rejected} request(s) (e.g."
            f" {view.usage_rejected_example}): chunk counts used instead, marked estimated"
        )
    hit = run.prefix_cache_hit_rate
    if hit is not None and hit > COLD_CACHE_WARN and not facts.shares_prefixes:
        notes.append(
            f"{hit:.0%} of prompt tokens came from the server's prefix cache in a run meant to be cold: TTFT is"
            " flattered (prompts repeated? a re-run with the same --seed sends the same ones)"
        )
    if facts.reset_cache:  # the reset was done, but did the server start cold?
        warm = [seg for seg in s.segments if (seg.prefix_cache_hit_rate or 0.0) > COLD_CACHE_WARN]
        if warm:
            notes.append(
                f"--reset-cache: segment {warm[0].segment} still took {warm[0].prefix_cache_hit_rate:.0%} of its"
                " prompt tokens from the server's cache after the reset: the server keeps another cache (llama.cpp's"
                " prompt cache in RAM: start it with --cache-ram 0)"
            )
    asked = sum(seg.exact_asked for seg in view.segments)
    short = run.short_outputs
    if asked and short / asked > SHORT_OUTPUT_NOTE:
        notes.append(
            f"asked for exact output lengths (ignore_eos) but {short} of {asked} requests ({short / asked:.0%})"
            " came back shorter: the server ignores ignore_eos, so lengths and throughput are not what was asked"
        )
    if run.degenerate:
        where = [str(seg.segment) for seg in s.segments if seg.degenerate]
        notes.append(
            f"{run.degenerate} answer(s) ended in degenerate text (a token or phrase repeated, one character, broken"
            f" decoding) in segment(s) {', '.join(where)}: the server may emit garbage at that load"
            " (requests.jsonl: degenerate)"
        )
    schedule = run.schedule
    if schedule is not None and not schedule.kept:
        notes.append(
            f"open loop: the client could not keep the schedule: requests went out up to"
            f" {schedule.lag_p99_ms:,.0f} ms (p99) after their scheduled time, {schedule.late_share:.0%} of"
            f" them later than {schedule.tolerance_ms:g} ms ({_late_because(s)}); latency from the"
            " scheduled time is in *_e2el_sched_ms"
        )
    starved = [str(seg.segment) for seg in s.segments if seg.starved]
    if starved:
        notes.append(
            f"segment(s) {', '.join(starved)} were measured while other processes held the CPU: their timings are"
            " inflated (summary.json segments[].client)"
        )
    return notes


def _late_because(s: RunSummary) -> str:
    """Why requests left late, where the run knows."""
    why = []
    if any(seg.starved for seg in s.segments):
        why.append("other processes held the CPU")
    if any(seg.client is not None and seg.client.client_busy_seconds for seg in s.segments):
        why.append("the workers were busy: add --workers")
    if any("max=" in seg.load for seg in s.segments):
        why.append("requests waited for a free slot under the in-flight cap (-c)")
    return "; ".join(why) or "a late event loop on the client"


def segment_delivery(seg: SegmentView, now: float, e2el_median_ms: float | None) -> dict[str, float]:
    """Throughputs from what arrived while the segment was open, over its own duration — the one definition the
    segments pane and summary.json both read. A segment too short to hold one of its own requests has no request
    rate (NaN: "—" on screen, null in the file): none of its requests has succeeded yet, or it lasted less than
    their median E2EL, so its completions are the previous load's tail (8 of them over 0.3 s read 25.8 req/s).
    Its token rates stand: tokens did arrive while it was open."""
    duration = seg.duration(now)
    out = throughput(seg.arrived_completions, seg.arrived_input_tokens, seg.arrived_tokens, duration)
    if seg.ok == 0 or (e2el_median_ms is not None and duration * 1000.0 < e2el_median_ms):
        out["request_throughput"] = float("nan")
    return out


def _level_figures(
    segments: tuple[SegmentView, ...], percentiles: tuple[float, ...], slo: Slo | None, duration: float
) -> dict[str, float]:
    """A level's figures besides its counts and throughputs: latencies, goodput, open-loop waits, lengths."""
    out = run_latency(segments, percentiles, slo, duration)
    out.update(scheduled_block(segments, percentiles))
    out.update(lengths_block(segments))
    return out


def _level(
    segments: tuple[SegmentView, ...],
    now: float,
    duration: float,
    percentiles: tuple[float, ...],
    slo: Slo | None,
    errors: Mapping[str, int],
    seg: SegmentView | None = None,
) -> Level:
    """One level's figures: a segment (``seg``, throughputs as delivered while it was open), or the whole run
    (throughputs are the run's tokens over the run's duration, as vLLM computes them)."""
    ok = sum(s.ok for s in segments)
    failed = sum(s.failed for s in segments)
    inp = sum(s.input_tokens for s in segments)
    out_tok = sum(s.output_tokens for s in segments)
    figures = _level_figures(segments, percentiles, slo, duration)
    if seg is not None:
        rates = segment_delivery(seg, now, figures.get("median_e2el_ms"))
        figures.update(pooling_block(seg.inputs, duration, seg.arrived_inputs, seg.arrived_input_tokens))
    else:
        rates = throughput(ok, inp, out_tok, duration)
        inputs = sum(s.inputs for s in segments)
        figures.update(pooling_block(inputs, duration, inputs, inp))
    quality_asked = sum(s.quality_asked for s in segments)
    return Level(
        segment=None if seg is None else seg.index,
        load="run" if seg is None else seg.label,
        scenario=None if seg is None else seg.scenario,
        start_time=None if seg is None else seg.wall_opened,
        duration=duration,
        completed=ok,
        failed=failed,
        cancelled=sum(s.cancelled for s in segments),
        errors=dict(errors),
        error_rate=error_rate(ok, failed),
        total_input_tokens=inp,
        total_output_tokens=out_tok,
        output_tokens_estimated=sum(s.estimated_tokens for s in segments),
        delivered_output_tokens=None if seg is None else seg.arrived_tokens,
        cached_prompt_tokens=sum(s.cached_tokens for s in segments),
        prefix_cache_hit_rate=_hit_rate(segments),
        request_throughput=rates["request_throughput"],
        output_throughput=rates["output_throughput"],
        total_token_throughput=rates["total_token_throughput"],
        figures=figures,
        schedule=schedule_block(segments, now),
        turns=turns_block(segments, percentiles),
        reasoning=reasoning_block(segments, percentiles),
        degenerate=sum(s.degenerate for s in segments),
        quality=Quality(asked=quality_asked, correct=sum(s.quality_ok for s in segments)) if quality_asked else None,
        short_outputs=sum(s.short_outputs for s in segments),
        server_timings=server_timings(segments) if seg is not None else None,
        client=None if seg is None else _client_health(seg),
        starved=seg is not None and seg.starved_seconds > 0,
    )


def _client_health(seg: SegmentView) -> ClientHealth:
    return ClientHealth(
        max_loop_lag_ms=seg.max_loop_lag_ms,
        mean_loop_lag_ms=seg.mean_loop_lag_ms,
        max_worker_cpu=seg.max_worker_cpu,
        peak_host_cpu_percent=seg.peak_host_cpu,
        starved_seconds=seg.starved_seconds,
        client_busy_seconds=seg.busy_seconds,
    )


def segment_summary(seg: SegmentView, now: float, percentiles: tuple[float, ...], slo: Slo | None = None) -> Level:
    """One segment's figures (the view must carry its ITL sketch)."""
    return _level((seg,), now, seg.duration(now), percentiles, slo, seg.errors, seg=seg)


def run_duration(view: BusView) -> float:
    """From the first request sent to the last ended (or the last segment closed)."""
    segs = view.segments
    start = view.run_start if view.run_start is not None else view.now
    end = max([s.last_end for s in segs] + [s.closed or 0.0 for s in segs] + [start])
    return max(0.0, end - start)


def summarize_run(
    view: BusView, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES, slo: Slo | None = None
) -> RunSummary:
    """The whole run's figures, every segment's and the warm-up's (a view taken with stats); the run's facts are
    :func:`build_summary`'s."""
    run = _level(view.segments, view.now, run_duration(view), percentiles, slo, view.errors)
    return RunSummary(
        run=run,
        segments=tuple(segment_summary(s, view.now, percentiles, slo) for s in view.segments),
        warmup=Warmup(completed=view.warmup_done, failed=view.warmup_failed),
    )


def _hit_rate(segs: tuple[SegmentView, ...]) -> float | None:
    reported = sum(s.cache_reported_prompt_tokens for s in segs)
    return sum(s.cached_tokens for s in segs) / reported if reported else None


COLD_CACHE_WARN = 0.2
"""A run not meant to share prompts that got more than this share of prompt tokens from cache was flattered."""


def _referees(level: Level) -> Level:
    """The level held against the server's clock: its phase histograms' (telemetry ``server.clock``) where
    ``/metrics`` has them, else its per-request timings; both when it has both, and whether they agree."""
    histograms = level.telemetry.get("server", {}).get("clock")
    own = level.server_timings.to_json() if level.server_timings is not None else None
    lag = level.client.mean_loop_lag_ms if level.client is not None else None
    ttft = level.figures.get("mean_ttft_ms")
    clock = histograms or own
    if not clock:
        return level
    rec = reconcile(ttft, clock, lag)
    if rec is None:
        return level
    referee = Referee(result=rec, source="histograms" if histograms else "per-request")
    beside = None
    if histograms and own:
        both = reconcile(ttft, own, lag)
        beside = Referee(result=both, source="per-request").beside(referee) if both is not None else None
    return replace(level, reconciliation=referee, reconciliation_per_request=beside)


def _with_telemetry(seg: Level, telemetry: Mapping[str, JsonObject]) -> Level:
    """A segment with each sampler's summary of it."""
    per = {
        name: t["segments"].get(str(seg.segment))
        for name, t in telemetry.items()
        if t.get("available") and t.get("segments")
    }
    level = _referees(replace(seg, telemetry={k: v for k, v in per.items() if v}))
    return replace(level, kv_forecast=_kv_forecast(level, telemetry.get("server", {}).get("kv") or {}))


def _kv_forecast(level: Level, kv: Mapping[str, object]) -> KvForecast | None:
    """Where the server's KV cache fills for this level's workload: its gauges over the level (the server
    sampler's means) and the cache's size (:mod:`llmsurge.metrics.kv`)."""
    server = level.telemetry.get("server", {})
    completed = level.completed or None
    return forecast(
        running=_float_or_none(server.get("mean_running")),
        usage=_float_or_none(server.get("mean_kv_cache")),
        input_tokens=level.total_input_tokens / completed if completed else None,
        output_tokens=level.total_output_tokens / completed if completed else None,
        capacity_tokens=_float_or_none(kv.get("capacity_tokens")),
        block_size=_int_or_none(kv.get("block_size")),
        slots=_int_or_none(kv.get("slots")),
        slot_context=_int_or_none(kv.get("slot_context")),
    )


def _int_or_none(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float_or_none(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v == v else None


def _with_roofline(seg: Level, inputs: RooflineInputs) -> Level:
    """A segment's decode ceilings against what was measured (and the memory interface's measured activity)."""
    r = segment_roofline(inputs, seg)
    dram = [t["mean_gpu_dram_active"] for t in seg.telemetry.values() if "mean_gpu_dram_active" in t]
    if r is not None and dram:
        r["measured_dram_active"] = dram[0]
    return replace(seg, roofline=r)


def _roofline_block(inputs: RooflineInputs) -> dict[str, object]:
    """``roofline``: the inputs, what is missing, and what the ceilings leave out."""
    block: dict[str, object] = {"inputs": inputs.to_json()}
    missing = inputs.missing()
    if missing:
        block["missing"] = missing
    elif inputs.kv_bytes_per_token is None:
        block["note"] = "KV cache bytes per token unknown (--kv-bytes-per-token): the ceilings count weights only"
    return block


def build_summary(view: BusView, facts: RunFacts, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> RunSummary:
    """The whole of ``summary.json``, typed: built once per run (its file is :meth:`RunSummary.to_json`)."""
    measured = summarize_run(view, percentiles, facts.slo)
    segments = tuple(_with_telemetry(seg, facts.telemetry) for seg in measured.segments)
    if facts.roofline is not None:
        segments = tuple(_with_roofline(seg, facts.roofline) for seg in segments)
    warm = view.warmup_done or view.warmup_failed
    summary = replace(
        measured,
        segments=segments,
        name=facts.name or None,
        preset=facts.preset or None,
        llmsurge_version=facts.version,
        date=time.strftime("%Y%m%d-%H%M%S", time.localtime(facts.started_wall)),
        backend="openai-chat" if facts.endpoint == "chat" else "openai",
        model_id=facts.model,
        warmup=replace(
            measured.warmup,
            input_tokens=facts.warmup_tokens[0] if warm else None,
            output_tokens=facts.warmup_tokens[1] if warm else None,
        ),
        breakdown=breakdown_figures(view.breakdown),
        roofline=_roofline_block(facts.roofline) if facts.roofline is not None else None,
        server=facts.server,
        config=facts.config,
        calibration=facts.calibration,
        resolving=facts.resolving,
        client=RunClient(
            workers=facts.workers,
            max_loop_lag_ms=view.worst_loop_lag_ms,
            max_cpu=view.worst_worker_cpu,
            saturation_events=tuple(view.saturation_events),
            starved_segments=tuple(seg.segment for seg in segments if seg.starved and seg.segment is not None),
            backend=facts.backend,
            event_loop=", ".join(view.event_loops),
            hosts={
                host: HostWorst(workers=n, max_loop_lag_ms=lag, max_cpu=cpu)
                for host, (n, lag, cpu) in view.hosts_worst.items()
            },
        ),
        telemetry=facts.telemetry,
        slo={m: v * 1000.0 for m, v in facts.slo.limits.items()} if facts.slo else None,  # ms, as the other keys
        capacity=facts.capacity,
    )
    return replace(summary, notes=tuple(_notes(summary, view, facts)))
