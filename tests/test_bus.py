"""The metrics bus: segments, live rates, client self-diagnosis."""

from __future__ import annotations

import time

from llmsurge.engine.controller import auto_workers
from llmsurge.metrics.bus import MetricsBus, WorkerTick
from llmsurge.metrics.records import RequestRecord


def _rec(i: int, segment: int, ok: bool = True) -> RequestRecord:
    now = time.monotonic()
    r = RequestRecord(
        f"0-{i}",
        segment,
        0,
        now - 1.0,
        time.time(),
        ttft=0.1 + i * 0.001,
        ttfc=0.1,
        e2el=1.0,
        itl=[0.01] * 9,
        output_tokens=10,
        prompt_tokens=5,
        finish_reason="length",
        end=now,
    )
    if not ok:
        r.fail("http_500", "boom", 500)
    return r


def test_segments_counts_and_warmup_excluded() -> None:
    bus = MetricsBus()
    bus.ingest(WorkerTick(0, [RequestRecord("w", 0, 0, 0.0, 0.0, warmup=True, output_tokens=3)], 0, 1, 0, 0, 0))
    s1 = bus.open_segment("c=1", "t")
    bus.ingest(WorkerTick(0, [_rec(i, s1) for i in range(10)] + [_rec(99, s1, ok=False)], 100, 12, 0, 0, 0))
    s2 = bus.open_segment("c=2", "t")
    bus.ingest(WorkerTick(0, [_rec(i, s2) for i in range(5)], 50, 17, 0, 0, 0))
    s = bus.run_summary()
    assert (s["completed"], s["failed"], s["warmup"]["completed"]) == (15, 1, 1)
    assert [x["completed"] for x in s["segments"]] == [10, 5]
    assert s["errors"] == {"http_500": 1}
    assert s["total_output_tokens"] == 150
    snap = bus.snapshot()
    assert snap.segment == 2 and [r.label for r in snap.segments] == ["c=1", "c=2"]
    assert snap.recent[0].request_id == "0-4"  # newest first
    assert sum(snap.ttft_hist[1]) == 5  # histogram of the current segment only


def test_client_saturation_is_reported() -> None:
    bus = MetricsBus()
    bus.open_segment("c=1", "t")
    bus.ingest(WorkerTick(0, [], 0, 0, 0, loop_lag_ms=2.0, cpu=0.3))
    assert not bus.client_health().saturated
    bus.ingest(WorkerTick(1, [], 0, 0, 0, loop_lag_ms=150.0, cpu=0.97))
    h = bus.client_health()
    assert h.saturated and "97%" in h.reason and h.workers == 2
    assert bus.saturation_seen  # kept for summary.json's client section
    assert bus.snapshot().client.saturated


def test_auto_workers() -> None:
    assert auto_workers(1) == 1 and auto_workers(2) == 1 and auto_workers(4) == 3 and auto_workers(64) == 8
