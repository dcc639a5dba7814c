"""A seeded, deterministic Snapshot for snapshot tests (no clocks, no servers)."""

from __future__ import annotations

import random

from llmsurge.metrics.bus import RequestRate
from llmsurge.metrics.health import Cause, ClientHealth
from llmsurge.metrics.reconcile import reconcile
from llmsurge.metrics.snapshot import RequestRow, SegmentRow, Snapshot
from llmsurge.metrics.stats import Distribution, Figures
from llmsurge.telemetry.samples import GpuReading, GpuSample, ServerSample, Unavailable

LENGTHS = {"input_mean": 128.0, "input_p90": 128.0, "output_mean": 126.0, "output_p90": 128.0}


def seeded_snapshot(seed: int = 3) -> Snapshot:
    rng = random.Random(seed)
    ttft = [0.04 + rng.random() * 0.03 for _ in range(300)]
    stats = Figures(
        latency={
            "ttft": Distribution.of_seconds(ttft),
            "ttfc": Distribution.of_seconds([t + 0.002 for t in ttft]),
            "tpot": Distribution.of_seconds([0.015 + rng.random() * 0.004 for _ in range(300)]),
            "itl": Distribution.of_seconds([0.014 + rng.random() * 0.006 for _ in range(3000)]),
            "e2el": Distribution.of_seconds([1.9 + rng.random() * 0.2 for _ in range(300)]),
        }
    )
    history = tuple((float(t), 500.0 + 12 * t + rng.random() * 40, 4.0 + rng.random()) for t in range(60))
    counts = [0] * 24
    lo, hi = min(ttft) * 1000, max(ttft) * 1000
    for v in ttft:
        counts[min(23, int((v * 1000 - lo) / (hi - lo) * 24))] += 1
    edges = tuple(lo + (hi - lo) * i / 24 for i in range(25))
    recent = [
        RequestRow(
            request_id=f"0-{400 - i}",
            segment=3,
            status="running",
            ttft_ms=45.0 + i,
            output_tokens=30 + i,
            tokens_per_s=None,
            latency_ms=700.0 + i,
            error_kind="",
        )
        for i in range(4)
    ]
    for i in range(30):
        failed = i % 9 == 4
        recent.append(
            RequestRow(
                request_id=f"0-{390 - i}",
                segment=3,
                status="failed" if failed else "ok",
                ttft_ms=None if failed else 50.0 + i,
                output_tokens=0 if failed else 128,
                tokens_per_s=None if failed else 66.5,
                latency_ms=2000.0 + i,
                error_kind="http_500" if failed else "",
            )
        )
    segments = (
        SegmentRow(
            index=1,
            label="c=8",
            scenario="demo",
            duration=20.0,
            completed=80,
            failed=0,
            request_throughput=4.0,
            output_throughput=530.0,
            ttft_p50_ms=47.0,
            ttft_p99_ms=56.0,
            tpot_p50_ms=14.5,
            n=80,
            **LENGTHS,
        ),
        SegmentRow(
            index=2,
            label="c=16",
            scenario="demo",
            duration=20.0,
            completed=150,
            failed=1,
            request_throughput=7.5,
            output_throughput=990.0,
            ttft_p50_ms=51.0,
            ttft_p99_ms=60.0,
            tpot_p50_ms=17.0,
            n=150,
            **LENGTHS,
        ),
        SegmentRow(
            index=3,
            label="c=32",
            scenario="demo",
            duration=20.0,
            completed=270,
            failed=3,
            request_throughput=13.5,
            output_throughput=1600.0,
            ttft_p50_ms=70.0,
            ttft_p99_ms=79.0,
            tpot_p50_ms=24.0,
            n=270,
            **LENGTHS,
        ),
    )
    gpu = GpuReading(
        index=0,
        name="Simulated GPU 80GB",
        util=62.0,
        mem_used_mib=40000.0,
        mem_total_mib=81559.0,
        power_w=410.0,
        power_limit_w=700.0,
        temp_c=58.0,
        sm_clock_mhz=1980.0,
        util_history=(10.0, 30.0, 50.0, 62.0, 60.0, 62.0),
        util_mean=55.0,
        util_peak=71.0,
        power_mean=380.0,
        power_peak=455.0,
    )
    telemetry = {
        "gpu": GpuSample("DCGM exporter (simulated)", (gpu,)),
        "server": ServerSample(
            kind="vLLM",
            running=32.0,
            waiting=0.0,
            kv_cache=0.31,
            prefix_hit_rate=0.02,
            generation_tok_s=1600.0,
            prompt_tok_s=1800.0,
            rate_window=10.0,
            rate_source="over 10 s",
            ttft_p50_ms=45.0,
            ttft_p99_ms=75.0,
            ttft_p99_bound_ms=100.0,
        ),
        "host": Unavailable("psutil could not read this machine"),
    }
    return Snapshot(
        elapsed=62.0,
        state="running",
        scenario="demo",
        segment=3,
        load_label="c=32",
        paused=False,
        stalled_s=None,
        started=540,
        inflight=32,
        completed=500,
        failed=4,
        cancelled=0,
        errors={"http_500": 4},
        output_tokens=64000,
        output_tok_s=1601.0,
        request_rate=RequestRate(done=75.0, seconds=6.0),  # 12.5 req/s over the last 6 s
        history=history,
        segment_starts=(0.0, 20.0, 40.0),
        segment_figures=stats,
        run_figures=stats,
        ttft_hist=(edges, tuple(counts)),
        recent=tuple(recent),
        segments=segments,
        client=ClientHealth(1, 1.5, 0.12, Cause.NONE, ""),
        warmup_done=0,
        telemetry=telemetry,
        reconciliation=reconcile(
            51.0,
            {"ttft": {"mean_ms": 46.0, "count": 270}, "queue": {"mean_ms": 9.0}, "prefill": {"mean_ms": 35.0}},
            1.5,
        ),
        info={
            "url": "http://127.0.0.1:8000 (simulated)",
            "model": "llmsurge-sim",
            "server": "simulated",
            "preset": "demo",
        },
    )
