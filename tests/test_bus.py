"""The metrics bus (the store), snapshots and the client diagnosis."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from llmsurge.engine.backend import auto_workers
from llmsurge.metrics.bus import RATE_ENOUGH, MetricsBus, RequestRate
from llmsurge.metrics.health import Cause, diagnose
from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.snapshot import SnapshotBuilder
from llmsurge.metrics.summary import summarize_run
from llmsurge.metrics.wire import LiveRequest, RequestStart, WorkerTick


def _rec(i: int, segment: int, ok: bool = True, worker: int = 0) -> RequestRecord:
    now = time.monotonic()
    r = RequestRecord(
        f"{worker}-{i}",
        segment,
        worker,
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
    bus.ingest(
        WorkerTick(
            worker=0,
            records=[RequestRecord("w", 0, 0, 0.0, 0.0, warmup=True, output_tokens=3)],
            tokens=0,
            started=1,
            inflight=0,
            loop_lag_ms=0,
            cpu=0,
        )
    )
    s1 = bus.open_segment("c=1", "t")
    bus.ingest(
        WorkerTick(
            worker=0,
            records=[_rec(i, s1) for i in range(10)] + [_rec(99, s1, ok=False)],
            tokens=100,
            started=12,
            inflight=0,
            loop_lag_ms=0,
            cpu=0,
        )
    )
    s2 = bus.open_segment("c=2", "t")
    bus.ingest(
        WorkerTick(
            worker=0, records=[_rec(i, s2) for i in range(5)], tokens=50, started=17, inflight=0, loop_lag_ms=0, cpu=0
        )
    )
    s = summarize_run(bus.view(with_stats=True))
    assert (s.run.completed, s.run.failed, s.warmup.completed) == (15, 1, 1)
    assert [x.completed for x in s.segments] == [10, 5]
    assert s.run.errors == {"http_500": 1}
    assert s.run.total_output_tokens == 150
    # tokens count where they arrived: 100 while c=1 was open, 50 while c=2 was
    assert [x.delivered_output_tokens for x in s.segments] == [100, 50]
    snap = SnapshotBuilder(bus).snapshot()
    assert snap.segment == 2 and [r.label for r in snap.segments] == ["c=1", "c=2"]
    assert snap.recent[0].request_id == "0-4"  # finished rows: newest first
    assert sum(snap.ttft_hist[1]) == 5  # histogram of the current segment only
    assert snap.segment_figures["ttft"].n == 5 and snap.run_figures["ttft"].n == 15


def test_a_finished_request_is_not_also_shown_running() -> None:
    bus = MetricsBus()
    seg = bus.open_segment("c=2", "t")
    now = time.monotonic()
    starts = [RequestStart("0-1", seg, now, time.time(), False), RequestStart("0-2", seg, now, time.time(), False)]
    live = [LiveRequest("0-1", seg, now, 0.05, 3), LiveRequest("0-2", seg, now, 0.05, 3)]
    bus.ingest(
        WorkerTick(
            worker=0, records=[], tokens=6, started=2, inflight=2, loop_lag_ms=0.0, cpu=0.0, live=live, starts=starts
        )
    )
    builder = SnapshotBuilder(bus)
    assert [(r.request_id, r.status) for r in builder.snapshot().recent] == [("0-1", "running"), ("0-2", "running")]
    bus.ingest(
        WorkerTick(worker=0, records=[_rec(1, seg)], tokens=1, started=2, inflight=1, loop_lag_ms=0.0, cpu=0.0)
    )  # 0-1 finished; the live sample is stale
    rows = [(r.request_id, r.status) for r in builder.snapshot().recent]
    assert rows == [("0-2", "running"), ("0-1", "ok")]


def test_statistics_recompute_once_per_interval_and_at_a_segment_change() -> None:
    bus = MetricsBus()
    seg = bus.open_segment("c=1", "t")
    builder = SnapshotBuilder(bus, stats_every=60.0)
    first = builder.snapshot()
    bus.ingest(
        WorkerTick(
            worker=0, records=[_rec(i, seg) for i in range(5)], tokens=50, started=5, inflight=0, loop_lag_ms=0, cpu=0
        )
    )
    again = builder.snapshot()
    assert again.stats_version == first.stats_version and again.completed == 5  # counters fresh, stats held
    bus.open_segment("c=2", "t")
    changed = builder.snapshot()
    assert changed.stats_version > first.stats_version and changed.run_figures["ttft"].n == 5


@pytest.mark.slow
def test_a_snapshot_does_not_hold_the_lock_while_it_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """300,000 values in a segment: the statistics are computed with the bus's lock free, so ingest keeps going
    (checked by where the lock is at each computation, not by timing it: the machine may be busy)."""
    import llmsurge.metrics.snapshot as snapshot_module

    bus = MetricsBus()
    seg = bus.open_segment("c=1", "t")
    recs = [_rec(i, seg) for i in range(1000)]
    for _ in range(300):
        bus.ingest(WorkerTick(worker=0, records=recs, tokens=0, started=0, inflight=0, loop_lag_ms=0, cpu=0))
    held_during: list[bool] = []
    real_latency, real_histogram = snapshot_module.scope_figures, snapshot_module.ttft_histogram

    def latency(*args: Any, **kwargs: Any) -> Any:
        held_during.append(bus._lock.locked())
        return real_latency(*args, **kwargs)

    def histogram(*args: Any, **kwargs: Any) -> Any:
        held_during.append(bus._lock.locked())
        return real_histogram(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "scope_figures", latency)
    monkeypatch.setattr(snapshot_module, "ttft_histogram", histogram)
    snap = SnapshotBuilder(bus).snapshot()
    assert snap.run_figures["ttft"].n == 300_000
    assert held_during and not any(held_during), held_during  # every computation ran with the lock free


def test_client_diagnosis_tells_busy_from_starved() -> None:
    assert diagnose(2.0, 0.3, 20.0)[0] is Cause.NONE
    cause, reason = diagnose(150.0, 0.97, 100.0)
    assert cause is Cause.CLIENT_BUSY and "add --workers" in reason
    cause, reason = diagnose(1200.0, 0.01, 99.0)
    assert cause is Cause.HOST_STARVED and "add --workers" not in reason and "move the client or the server" in reason
    assert diagnose(300.0, 0.05, 30.0)[0] is Cause.LOOP_LAG


def test_client_saturation_is_reported_worst_values_kept() -> None:
    """The client's health is told once per statistics period, with the worst a snapshot saw in it: a spike between
    two periods is not missed, and the figures do not change at the frame rate."""
    bus = MetricsBus()
    bus.open_segment("c=1", "t")
    bus.ingest(WorkerTick(worker=0, records=[], tokens=0, started=0, inflight=0, loop_lag_ms=2.0, cpu=0.3))
    builder = SnapshotBuilder(bus, stats_every=3600.0)
    assert not builder.snapshot().client.saturated
    bus.ingest(WorkerTick(worker=1, records=[], tokens=0, started=0, inflight=0, loop_lag_ms=150.0, cpu=0.97))
    held = builder.snapshot().client
    assert not held.saturated and held.workers == 1  # the period's figures hold until the next statistics
    bus.ingest(WorkerTick(worker=1, records=[], tokens=0, started=0, inflight=0, loop_lag_ms=1.0, cpu=0.1))
    builder.snapshot()
    builder.stats_every = 0.0  # the next period
    h = builder.snapshot().client
    assert h.saturated and "97%" in h.reason and h.workers == 2 and h.max_loop_lag_ms == 150.0  # the spike, kept
    calm = builder.snapshot().client
    assert not calm.saturated and calm.max_loop_lag_ms == 2.0  # a new period: the workers' latest
    view = bus.view()
    assert (view.worst_loop_lag_ms, view.worst_worker_cpu) == (150.0, 0.97)  # the worst seen, not the last


def test_auto_workers() -> None:
    assert auto_workers(1) == 1 and auto_workers(2) == 1 and auto_workers(4) == 3 and auto_workers(64) == 8


def test_columns_read_without_the_lock_match_what_was_written() -> None:
    from llmsurge.metrics.columns import Column

    c = Column()
    values = np.random.default_rng(0).random(70_000).astype(np.float32)
    c.extend(values[:1000])
    view = c.view()
    for v in values[1000:]:
        c.append(float(v))
    assert np.array_equal(view.values(), values[:1000])  # an earlier view is unchanged by later appends
    assert np.array_equal(c.view().values(), values)


def test_one_request_rate_with_its_window() -> None:
    """The live request rate: completions over the last whole seconds of the current segment, reaching back until
    enough are counted (≥ 2 s) or 30 s — never 0.00 between sparse completions, never a burst of two read as a rate,
    never the previous segment's completions; its window is part of it, for the label."""
    busy = tuple((float(s), 100.0, 5.0) for s in range(40, 60))  # 5 completions a second
    rate = RequestRate.over(busy, since=0.0)
    assert (rate.done, rate.seconds, rate.value()) == (10.0, 2.0, 5.0) and rate.label() == "last 2 s"
    sparse = tuple((float(s), 10.0, 1.0 if s % 5 == 0 else 0.0) for s in range(0, 60))  # one every 5 s
    rate = RequestRate.over(sparse, since=0.0)
    assert rate.seconds == 30.0 and rate.value() == pytest.approx(6 / 30) and rate.value(enough=RATE_ENOUGH) is None
    after_change = RequestRate.over((*busy, (60.0, 0.0, 1.0)), since=60.0)  # a new segment: its own seconds only
    assert after_change.seconds == 1.0 and after_change.value() is None and after_change.label() == "last 1 s"
    assert RequestRate().value() is None and RequestRate().label() == "no second yet"


def test_each_worker_has_its_row_and_a_lost_one_says_so() -> None:
    bus = MetricsBus()
    seg = bus.open_segment("c=4", "t")
    bus.ingest(
        WorkerTick(
            worker=0, records=[_rec(i, seg) for i in range(3)], tokens=30, started=4, inflight=1, loop_lag_ms=2.0,
            cpu=0.4,
        )
    )  # fmt: skip
    bus.ingest(
        WorkerTick(
            worker=1, records=[_rec(1, seg, worker=1), _rec(2, seg, ok=False, worker=1)], tokens=10, started=4,
            inflight=2, loop_lag_ms=9.0, cpu=0.9,
        )
    )  # fmt: skip
    w0, w1 = bus.view().worker_rows
    assert (w0.worker, w0.state, w0.inflight, w0.done, w0.failed, w0.cpu, w0.loop_lag_ms) == (
        0,
        "running",
        1,
        3,
        0,
        0.4,
        2.0,
    )
    assert (w1.done, w1.failed, w1.inflight) == (1, 1, 2)
    bus.worker_lost(1, taken=6, last_segment=seg, why="killed")  # two it started after its last tick
    w1 = bus.view().worker_rows[1]
    assert w1.state == "lost" and w1.inflight == 0 and w1.failed == 1 + 2  # those two failed as lost


def test_a_segment_too_short_to_hold_one_request_has_no_request_rate() -> None:
    def tick(records: list[RequestRecord]) -> WorkerTick:
        return WorkerTick(worker=0, records=records, tokens=0, started=len(records), inflight=0, loop_lag_ms=0, cpu=0)

    bus = MetricsBus()
    s1 = bus.open_segment("c=8", "t")
    time.sleep(1.2)  # longer than its requests' 1 s E2EL
    bus.ingest(tick([_rec(i, s1) for i in range(8)]))
    s2 = bus.open_segment("c=16", "t")
    bus.ingest(tick([_rec(i + 10, s2) for i in range(8)]))  # its requests take 1 s: none fits in its 0.3 s
    time.sleep(0.3)
    s3 = bus.open_segment("paused", "t")  # a pause: no request of its own
    bus.ingest(tick([_rec(i + 20, s2) for i in range(8)]))  # the previous load's tail arrives meanwhile
    time.sleep(0.2)
    bus.open_segment("c=16", "t")
    summary = summarize_run(bus.view(with_stats=True))
    rates = {s.segment: s.request_throughput for s in summary.segments}
    assert rates[s1] > 0
    assert np.isnan(rates[s2]) and np.isnan(rates[s3])  # "—" on screen, null in summary.json
    assert summary.segments[s3 - 1].output_throughput == 0.0  # token rates stand
    assert summary.to_json()["segments"][s3 - 1]["request_throughput"] is None  # null in the file
    snap = SnapshotBuilder(bus).snapshot()
    shown = {row.index: row.request_throughput for row in snap.segments}
    assert shown[s1] == pytest.approx(rates[s1], rel=0.05) and np.isnan(shown[s2]) and np.isnan(shown[s3])


def test_a_stream_stuck_while_the_others_flow_is_flagged_on_its_row() -> None:
    """A request that began its answer and has sent nothing for longer than the stall threshold, while the others
    flow, reads "stuck" (and for how long) in the request stream; a server-wide stall is said apart, not per row."""
    from llmsurge.metrics.snapshot import request_rows
    from llmsurge.metrics.wire import LiveRequest, RequestStart

    bus = MetricsBus()
    seg = bus.open_segment("c=2", "t")
    now = time.monotonic()
    starts = [RequestStart("0-1", seg, now, time.time(), False), RequestStart("0-2", seg, now, time.time(), False)]
    live = [LiveRequest("0-1", seg, now, 0.05, 5), LiveRequest("0-2", seg, now, 0.05, 3)]
    bus.ingest(WorkerTick(worker=0, starts=starts, tokens=8, started=2, inflight=2, live=live))
    bus._progress["0-1"] = (5, now - 3.0)  # its last token three seconds ago
    live = [LiveRequest("0-1", seg, now, 0.05, 5), LiveRequest("0-2", seg, now, 0.05, 9)]  # the other flows
    bus.ingest(WorkerTick(worker=0, tokens=6, started=2, inflight=2, live=live))
    rows = {r.request_id: r for r in request_rows(bus.view())}
    assert rows["0-1"].status == "stuck" and rows["0-1"].error_kind.startswith("silent 3")
    assert rows["0-2"].status == "running" and not rows["0-2"].error_kind
    assert bus.view().stalled_s is None and not any(e.message.startswith("stall") for e in bus.events)


def test_a_record_crosses_the_process_boundary_whole() -> None:
    """Workers send records pickled (by their fields' values, ``RequestRecord.__reduce__``): every field comes back,
    set or default, of its own type."""
    import dataclasses
    import pickle
    from array import array

    from llmsurge.metrics.records import ServerTimings, Status

    rec = RequestRecord("3-7", 2, 3, 12.5, 1_700_000_000.0, warmup=True, ttft=0.25, e2el=1.5, chunks=4)
    rec.itl.extend([0.1, 0.2, 0.3])
    rec.fail("http_503", "busy", 503)
    rec.text_head, rec.tool_calls, rec.body, rec.reused = "héllo", {0: ['{"a"']}, b"{}", True
    rec.server = ServerTimings(prompt_ms=12.0)
    back = pickle.loads(pickle.dumps(rec))
    assert back == rec and back is not rec
    assert type(back.itl) is array and back.status is Status.FAILED and back.server == rec.server
    for f in dataclasses.fields(RequestRecord):  # every field rebuilt through __init__: none may be init=False
        assert f.init, f.name
    assert pickle.loads(pickle.dumps(RequestRecord("a", 1, 0, 0.0, 0.0))) == RequestRecord("a", 1, 0, 0.0, 0.0)
