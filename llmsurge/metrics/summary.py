"""``summary.json``: built in one place from a bus view and the run's facts.

Top-level keys are ``vllm bench serve``'s (DESIGN.md); each segment carries the same keys. Latencies are over the
requests that *started* in a segment; a segment's throughputs are what *arrived* while it was open (the run's
throughputs are the run's tokens over the run's duration, as vLLM computes them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsurge.metrics.breakdown import figures as breakdown_figures
from llmsurge.metrics.bus import BusView
from llmsurge.metrics.reconcile import AGREE_MS, AGREE_SHARE, reconcile
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
    server: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    notes: list[str] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)  # source → its sampler's summary
    shares_prefixes: bool = False  # the scenario shares prompt prefixes on purpose (a warm cache is intended)
    slo: Slo = field(default_factory=Slo)
    capacity: dict[str, Any] | None = None  # a capacity search's outcome
    name: str = ""  # the run's label (--name)
    preset: str = ""
    roofline: RooflineInputs | None = None  # the decode roofline's inputs (each with its source)
    backend: str = "local"  # where the workers ran: local processes or Ray actors
    resolving: dict[str, int] = field(default_factory=dict)  # what resolving sent the server (Sent.json())
    warmup_tokens: tuple[int, int] = (0, 0)  # a warm-up request's prompt and output tokens (at most)


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
        lag_p99_ms=None if schedule is None else schedule["lag_p99_ms"],
        late_share=0.0 if schedule is None else schedule["late_share"],
        schedule_kept=True if schedule is None else bool(schedule["kept"]),
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


def server_timings(segments: tuple[SegmentView, ...]) -> dict[str, Any] | None:
    """The server's own clock from its per-request timings (llama.cpp's ``timings``, vLLM's per-request
    ``metrics``), in the shape of the phase histograms' clock (``{"ttft": {"mean_ms", "count"}, "queue": …}``) —
    what reconciles a segment where ``/metrics`` has no phase histograms; None when no request carried them."""
    ttft = _joined(segments, "server_ttft")
    if not ttft.size:
        return None
    out: dict[str, Any] = {"source": "per-request", "ttft": {"mean_ms": float(ttft.mean()), "count": int(ttft.size)}}
    for phase, name in (("queue", "server_queue"), ("prefill", "server_prefill"), ("decode", "server_decode")):
        values = _joined(segments, name)
        values = values[~np.isnan(values)]
        if values.size:
            out[phase] = {"mean_ms": float(values.mean()), "count": int(values.size)}
    return out


LATE_MS = 10.0
"""A request that left more than this after its scheduled time is late (or 1% of the mean gap, when less)."""
LATE_FLOOR_MS = 1.0
"""…but never less than this: what an event loop's timers can keep."""


def schedule_block(segments: tuple[SegmentView, ...], now: float) -> dict[str, Any] | None:
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
    return {
        "requests": len(lag),
        "lag_p50_ms": float(np.percentile(lag, 50)),
        "lag_p99_ms": p99,
        "lag_max_ms": float(lag.max()),
        "late_share": float((lag > tolerance).mean()),
        "mean_gap_ms": gap_ms,
        "tolerance_ms": tolerance,
        "kept": p99 <= tolerance,
    }


def _joined(segments: tuple[SegmentView, ...], name: str) -> np.ndarray:
    parts = [s.columns[name].values() for s in segments if s.columns[name].n]
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0, np.float64)


def lengths_block(segments: tuple[SegmentView, ...]) -> dict[str, Any]:
    """Realised prompt and output lengths of the successful requests: ``mean_`` and ``p90_input_tokens`` / …"""
    return dict(length_figures({name: _joined(segments, name) for name in LENGTHS}))


def quality_block(segments: tuple[SegmentView, ...]) -> dict[str, Any]:
    """``degenerate``: answers that ended in degenerate text; ``quality``: the quality set's score, when asked."""
    out: dict[str, Any] = {"degenerate": sum(s.degenerate for s in segments)}
    asked = sum(s.quality_asked for s in segments)
    if asked:
        right = sum(s.quality_ok for s in segments)
        out["quality"] = {"asked": asked, "correct": right, "score": right / asked}
    return out


def workload_block(segments: tuple[SegmentView, ...], percentiles: tuple[float, ...]) -> dict[str, Any]:
    """What the requests were: realised mean and p90 prompt and output lengths; per turn of a multi-turn chat, its
    TTFT and prefix-cache hits (``turns``); for a reasoning model, time to the first reasoning and first answer
    token (``reasoning``). The last two only when the run had such requests."""
    out = lengths_block(segments)
    turn = _joined(segments, "turn")
    if turn.size:
        ttft, prompt, cached = (_joined(segments, m) for m in ("turn_ttft", "turn_prompt", "turn_cached"))
        rows = []
        for k in sorted({int(t) for t in turn}):
            sel = turn == k
            t_k, c_k, p_k = ttft[sel], cached[sel], prompt[sel]
            reported = ~np.isnan(c_k)
            hit = float(c_k[reported].sum() / p_k[reported].sum()) if reported.any() and p_k[reported].sum() else None
            row: dict[str, Any] = {"turn": k, "completed": int(sel.sum()), "mean_prompt_tokens": float(p_k.mean())}
            row.update(describe_ms("ttft", t_k[~np.isnan(t_k)], percentiles))
            row["prefix_cache_hit_rate"] = hit
            rows.append(row)
        out["turns"] = rows
    ttfr = _joined(segments, "ttfr")
    if ttfr.size:
        answer = _joined(segments, "answer_ttfc")
        block: dict[str, Any] = {
            "completed": int(ttfr.size),
            "mean_reasoning_tokens": float(_joined(segments, "reasoning").mean()),
        }
        block.update(describe_ms("ttfr", ttfr, percentiles))
        block.update(describe_ms("answer_ttfc", answer[~np.isnan(answer)], percentiles))
        out["reasoning"] = block
    return out


SHORT_OUTPUT_NOTE = 0.01


def _notes(s: dict[str, Any], view: BusView, facts: RunFacts) -> list[str]:
    """What the figures need said beside them (each once)."""
    notes = list(facts.notes)
    if view.usage_rejected:
        notes.append(
            f"implausible usage from the server on {view.usage_rejected} request(s) (e.g."
            f" {view.usage_rejected_example}): chunk counts used instead, marked estimated"
        )
    hit = s["prefix_cache_hit_rate"]
    if hit is not None and hit > COLD_CACHE_WARN and not facts.shares_prefixes:
        notes.append(
            f"{hit:.0%} of prompt tokens came from the server's prefix cache in a run meant to be cold: TTFT is"
            " flattered (prompts repeated? a re-run with the same --seed sends the same ones)"
        )
    asked = sum(seg.exact_asked for seg in view.segments)
    short = s["short_outputs"]
    if asked and short / asked > SHORT_OUTPUT_NOTE:
        notes.append(
            f"asked for exact output lengths (ignore_eos) but {short} of {asked} requests ({short / asked:.0%})"
            " came back shorter: the server ignores ignore_eos, so lengths and throughput are not what was asked"
        )
    if s.get("degenerate"):
        where = [str(seg["segment"]) for seg in s["segments"] if seg.get("degenerate")]
        notes.append(
            f"{s['degenerate']} answer(s) ended in degenerate text (a token or phrase repeated, one character, broken"
            f" decoding) in segment(s) {', '.join(where)}: the server may emit garbage at that load"
            " (requests.jsonl: degenerate)"
        )
    schedule = s.get("schedule")
    if schedule is not None and not schedule["kept"]:
        notes.append(
            f"open loop: the client could not keep the schedule: requests went out up to"
            f" {schedule['lag_p99_ms']:,.0f} ms (p99) after their scheduled time, {schedule['late_share']:.0%} of"
            f" them later than {schedule['tolerance_ms']:g} ms ({_late_because(s, view)}); latency from the"
            " scheduled time is in *_e2el_sched_ms"
        )
    starved = [str(seg["segment"]) for seg in s["segments"] if seg["starved"]]
    if starved:
        notes.append(
            f"segment(s) {', '.join(starved)} were measured while other processes held the CPU: their timings are"
            " inflated (summary.json segments[].client)"
        )
    return notes


def _late_because(s: dict[str, Any], view: BusView) -> str:
    """Why requests left late, where the run knows."""
    why = []
    if any(seg["starved"] for seg in s["segments"]):
        why.append("other processes held the CPU")
    if any(seg["client"]["client_busy_seconds"] for seg in s["segments"]):
        why.append("the workers were busy: add --workers")
    capped = any("max=" in seg["load"] for seg in s["segments"])
    if capped:
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


def segment_summary(
    seg: SegmentView, now: float, percentiles: tuple[float, ...], slo: Slo | None = None
) -> dict[str, Any]:
    """vLLM bench serve's keys for one segment (the view must carry its ITL sketch)."""
    out: dict[str, Any] = {
        "segment": seg.index,
        "load": seg.label,
        "scenario": seg.scenario,
        "start_time": seg.wall_opened,
        "duration": seg.duration(now),
        "completed": seg.ok,
        "failed": seg.failed,
        "cancelled": seg.cancelled,
        "errors": seg.errors,
        "error_rate": error_rate(seg.ok, seg.failed),
        "total_input_tokens": seg.input_tokens,
        "total_output_tokens": seg.output_tokens,
        "output_tokens_estimated": seg.estimated_tokens,
        "delivered_output_tokens": seg.arrived_tokens,
        "cached_prompt_tokens": seg.cached_tokens,
        "prefix_cache_hit_rate": seg.cache_hit_rate,
    }
    latency = run_latency((seg,), percentiles, slo, seg.duration(now))
    out.update(segment_delivery(seg, now, latency.get("median_e2el_ms")))
    out.update(pooling_block(seg.inputs, seg.duration(now), seg.arrived_inputs, seg.arrived_input_tokens))
    out.update(latency)
    out.update(scheduled_block((seg,), percentiles))
    schedule = schedule_block((seg,), now)
    if schedule is not None:
        out["schedule"] = schedule
    out.update(workload_block((seg,), percentiles))
    out.update(quality_block((seg,)))
    out["short_outputs"] = seg.short_outputs
    clock = server_timings((seg,))
    if clock is not None:
        out["server_timings"] = clock
    out["client"] = {
        "max_loop_lag_ms": seg.max_loop_lag_ms,
        "mean_loop_lag_ms": seg.mean_loop_lag_ms,
        "max_worker_cpu": seg.max_worker_cpu,
        "peak_host_cpu_percent": seg.peak_host_cpu,
        "starved_seconds": seg.starved_seconds,
        "client_busy_seconds": seg.busy_seconds,
    }
    out["starved"] = seg.starved_seconds > 0
    return out


def summarize_run(
    view: BusView, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES, slo: Slo | None = None
) -> dict[str, Any]:
    """vLLM bench serve's top-level keys for the whole run, plus every segment's (a view taken with stats)."""
    segs = view.segments
    start = view.run_start if view.run_start is not None else view.now
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
        "errors": view.errors,
        "error_rate": error_rate(ok, failed),
        "total_input_tokens": inp,
        "total_output_tokens": out_tok,
        "output_tokens_estimated": sum(s.estimated_tokens for s in segs),
        "cached_prompt_tokens": sum(s.cached_tokens for s in segs),
        "prefix_cache_hit_rate": _hit_rate(segs),
    }
    out.update(throughput(ok, inp, out_tok, duration))
    inputs = sum(s.inputs for s in segs)
    out.update(pooling_block(inputs, duration, inputs, inp))
    out.update(run_latency(segs, percentiles, slo, duration))
    out.update(scheduled_block(segs, percentiles))
    schedule = schedule_block(segs, view.now)
    if schedule is not None:
        out["schedule"] = schedule
    out.update(workload_block(segs, percentiles))
    out.update(quality_block(segs))
    out["short_outputs"] = sum(s.short_outputs for s in segs)
    out["warmup"] = {"completed": view.warmup_done, "failed": view.warmup_failed}
    out["segments"] = [segment_summary(s, view.now, percentiles, slo) for s in segs]
    return out


def _add_roofline(s: dict[str, Any], inputs: RooflineInputs) -> None:
    """``roofline``: the inputs and, per segment, the decode ceilings against what was measured."""
    block: dict[str, Any] = {"inputs": inputs.to_json()}
    missing = inputs.missing()
    if missing:
        block["missing"] = missing
    elif inputs.kv_bytes_per_token is None:
        block["note"] = "KV cache bytes per token unknown (--kv-bytes-per-token): the ceilings count weights only"
    s["roofline"] = block
    for seg in s["segments"]:
        seg["roofline"] = r = segment_roofline(inputs, seg)
        dram = [t["mean_gpu_dram_active"] for t in seg.get("telemetry", {}).values() if "mean_gpu_dram_active" in t]
        if r is not None and dram:  # the memory interface's measured activity, beside the computed fraction
            r["measured_dram_active"] = dram[0]


def _hit_rate(segs: tuple[SegmentView, ...]) -> float | None:
    reported = sum(s.cache_reported_prompt_tokens for s in segs)
    return sum(s.cached_tokens for s in segs) / reported if reported else None


COLD_CACHE_WARN = 0.2
"""A run not meant to share prompts that got more than this share of prompt tokens from cache was flattered."""


def build_summary(
    view: BusView, facts: RunFacts, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
) -> dict[str, Any]:
    """The whole of ``summary.json``."""
    s = summarize_run(view, percentiles, facts.slo)
    for seg in s["segments"]:
        per = {
            name: t["segments"].get(str(seg["segment"]))
            for name, t in facts.telemetry.items()
            if t.get("available") and t.get("segments")
        }
        seg["telemetry"] = {k: v for k, v in per.items() if v}
        clock = (seg["telemetry"].get("server") or {}).get("clock")
        own = seg.get("server_timings")
        lag = seg["client"]["mean_loop_lag_ms"]
        rec = reconcile(seg.get("mean_ttft_ms"), clock or own, lag) if clock or own else None
        if rec is not None:
            seg["reconciliation"] = {**rec.json(), "source": "histograms" if clock else "per-request"}
        if clock and own:  # both clocks: the per-request one beside the histograms', and whether they agree
            both = reconcile(seg.get("mean_ttft_ms"), own, lag)
            if both is not None and rec is not None:
                seg["reconciliation_per_request"] = {**both.json(), "source": "per-request"}
                apart = abs(both.server_ttft_ms_mean - rec.server_ttft_ms_mean)
                seg["reconciliation_per_request"]["agrees_with_histograms"] = apart <= max(
                    AGREE_MS, AGREE_SHARE * rec.server_ttft_ms_mean
                )
    if s["warmup"]["completed"] or s["warmup"]["failed"]:
        s["warmup"]["input_tokens"], s["warmup"]["output_tokens"] = facts.warmup_tokens
    s.update(breakdown_figures(view.breakdown))  # models, targets: per model and per server, when several
    if facts.roofline is not None:
        _add_roofline(s, facts.roofline)
    notes = _notes(s, view, facts)
    starved = [seg["segment"] for seg in s["segments"] if seg["starved"]]
    s.update(
        {
            "name": facts.name or None,
            "preset": facts.preset or None,
            "llmsurge_version": facts.version,
            "date": time.strftime("%Y%m%d-%H%M%S", time.localtime(facts.started_wall)),
            "backend": "openai-chat" if facts.endpoint == "chat" else "openai",
            "model_id": facts.model,
            "server": facts.server,
            "config": facts.config,
            "calibration": facts.calibration,
            "resolving": facts.resolving,
            "client": {
                "workers": facts.workers,
                "max_loop_lag_ms": view.worst_loop_lag_ms,
                "max_cpu": view.worst_worker_cpu,
                "saturated": bool(view.saturation_events),
                "saturation_events": list(view.saturation_events),
                "starved_segments": starved,
                "backend": facts.backend,
                "hosts": {
                    host: {"workers": n, "max_loop_lag_ms": lag, "max_cpu": cpu}
                    for host, (n, lag, cpu) in view.hosts_worst.items()
                },
            },
            "notes": notes,
            "telemetry": facts.telemetry,
        }
    )
    if facts.slo:
        s["slo"] = {m: v * 1000.0 for m, v in facts.slo.limits.items()}  # ms, as the other keys
    if facts.capacity is not None:
        s["capacity"] = facts.capacity
    return s
