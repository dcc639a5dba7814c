"""The controller's API works while a run goes on, and each change opens a segment."""

from __future__ import annotations

import asyncio

import pytest

from llmsurge.engine.controller import Controller
from llmsurge.engine.pool import WorkerPool, split_load
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.summary import summarize_run
from llmsurge.net import Target
from tests.helpers import until as _until


def _setup(url: str, scenario: Scenario, workers: int = 2) -> tuple[MetricsBus, WorkerPool, Controller]:
    bus = MetricsBus()
    pool = WorkerPool(Target(url, "llmsurge-sim"), Calibration(), bus, workers=workers)
    pool.start()
    return bus, pool, Controller(pool, bus, scenario, keep_alive=True)


def test_split_load() -> None:
    assert [x.concurrency for x in split_load(Load(concurrency=5), 2)] == [3, 2]
    assert [x.concurrency for x in split_load(Load(concurrency=1), 3)] == [1, 0, 0]
    assert [x.rate for x in split_load(Load(rate=3.0, max_concurrency=3), 2)] == [1.5, 1.5]


@pytest.mark.slow
async def test_live_changes_open_segments_and_take_effect(sim_url: str) -> None:
    sc = Scenario("t", "t", (Stage(Load(concurrency=2), duration=60),), RequestShape(output_tokens=200))
    bus, _pool, ctrl = _setup(sim_url, sc)
    task = asyncio.create_task(ctrl.run())
    try:
        await _until(lambda: bus.inflight_total == 2)
        ctrl.set_concurrency(16)
        await _until(lambda: bus.inflight_total == 16)
        ctrl.set_concurrency(4)
        await _until(lambda: bus.inflight_total == 4)
        ctrl.set_rate(50.0)
        await _until(lambda: bus.segments[-1].finished > 5)
        ctrl.pause()
        await _until(lambda: bus.inflight_total == 0)  # in flight drains to zero
        n = bus.started_total
        await asyncio.sleep(0.3)
        assert bus.started_total == n  # nothing new starts while paused
        ctrl.resume()
        await _until(lambda: bus.started_total > n)
    finally:
        ctrl.stop()
        await asyncio.wait_for(task, 20)
    labels = [s.label for s in bus.segments]
    assert labels == ["c=2", "c=16", "c=4", "r=50/s poisson", "paused", "r=50/s poisson"]  # a pause is a segment
    summary = summarize_run(bus.view(with_stats=True))
    assert len(summary.segments) == 6
    pause = summary.segments[4]
    assert pause.load == "paused" and pause.completed == 0 and pause.duration >= 0.3
    # every request started was finished one way or another
    assert bus.finished_total == bus.started_total
    # requests belong to the segment they started in, and the cancelled ones are counted
    total = sum(s.completed + s.failed + s.cancelled for s in summary.segments)
    assert total == bus.started_total


async def test_request_budget_warmup_and_switch(sim_url: str) -> None:
    sc = Scenario("a", "a", (Stage(Load(concurrency=3), requests=10),), RequestShape(output_tokens=5), warmup=3)
    bus, _pool, ctrl = _setup(sim_url, sc)
    ctrl.keep_alive = False
    await asyncio.wait_for(ctrl.run(), 30)
    s = summarize_run(bus.view(with_stats=True))
    assert s.run.completed == 10 and s.warmup.completed == 3  # warm-up kept out of the statistics
    assert bus.state == "done"

    sc2 = Scenario(
        "b",
        "b",
        (Stage(Load(concurrency=2), requests=4), Stage(Load(concurrency=4), requests=8)),
        RequestShape(output_tokens=5),
    )
    bus, _pool, ctrl = _setup(sim_url, sc)
    ctrl.scenario = Scenario("slow", "s", (Stage(Load(concurrency=2), duration=30),), RequestShape(output_tokens=50))
    task = asyncio.create_task(ctrl.run())
    await _until(lambda: bus.inflight_total == 2)
    ctrl.switch_scenario(sc2)
    await _until(lambda: bus.state == "done" and ctrl.finished, 30)
    ctrl.stop()
    await asyncio.wait_for(task, 20)
    segs = summarize_run(bus.view(with_stats=True)).segments
    assert [(x.scenario, x.load) for x in segs] == [("slow", "c=2"), ("b", "c=2"), ("b", "c=4")]
    assert segs[1].completed == 4 and segs[2].completed == 8


async def test_open_loop_rate_is_kept(sim_url: str) -> None:
    sc = Scenario("r", "r", (Stage(Load(rate=40.0, arrival="constant"), duration=2.0),), RequestShape(output_tokens=3))
    bus, _pool, ctrl = _setup(sim_url, sc)
    ctrl.keep_alive = False
    await asyncio.wait_for(ctrl.run(), 30)
    n = summarize_run(bus.view(with_stats=True)).run.completed
    assert 60 <= n <= 100, n  # 40/s for 2 s


async def test_progress_stays_while_steered_and_goes_once_the_bound_is_spent(sim_url: str) -> None:
    """A key that changes the load keeps the run's bound (the stage still ends at its request budget), so the
    status line keeps its progress; once the scenario has ended, a key starts load that nothing bounds."""
    sc = Scenario("p", "p", (Stage(Load(concurrency=1), requests=12),), RequestShape(output_tokens=20))
    bus, _pool, ctrl = _setup(sim_url, sc)
    task = asyncio.create_task(ctrl.run())
    try:
        await _until(lambda: ctrl.progress() is not None and bus.finished_total >= 1)
        ctrl.set_concurrency(3)  # steered by hand
        progress = ctrl.progress()
        assert progress is not None and progress.total == 12 and progress.unit == "requests"
        await _until(lambda: ctrl.finished, 60)
        assert bus.finished_total == 12 and ctrl.progress() is None  # the budget held though the load was steered
        ctrl.set_concurrency(2)  # after the end: more load, unbounded
        assert not ctrl.finished and ctrl.progress() is None
    finally:
        ctrl.stop()
        await asyncio.wait_for(task, 20)
