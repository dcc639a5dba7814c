"""Load from many machines: the worker pool as Ray actors, on a local multi-node Ray cluster (loopback only),
against the simulated server. Every run is bounded in requests and time."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")  # an install without the extra; CI installs it (the test extra pulls it in)

from ray.cluster_utils import Cluster  # noqa: E402

from llmsurge.engine.ray_pool import placeable  # noqa: E402
from llmsurge.engine.session import ConfigError, RunConfig, RunSession  # noqa: E402
from llmsurge.presets import find_preset  # noqa: E402
from tests.helpers import until  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and one more node, one CPU each, on this machine."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    node = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
    here = ray.get_runtime_context().get_node_id()
    # The node a test may take away: not the one this process (and the ticket bank) is attached to.
    c.victim = next(n for n in (c.head_node, node) if n.node_id != here)  # type: ignore[attr-defined]
    yield c
    ray.shutdown()
    c.shutdown()


def _config(url: str, tmp_path: Path, **over: Any) -> RunConfig:
    scenario = find_preset("demo").with_overrides(
        concurrency=over.pop("concurrency", 4), requests=over.pop("requests", None), input_tokens=32, output_tokens=16
    )
    return RunConfig(scenario=scenario, url=url, output=tmp_path / "r", calibrate=False, ray="auto", **over)


async def _run(session: RunSession, steer: Any = None, timeout: float = 90.0) -> None:
    await session.prepare()
    controller = await asyncio.to_thread(session.start)
    task = asyncio.ensure_future(controller.run())
    try:
        if steer is not None:
            await steer(session, controller)
        await asyncio.wait_for(task, timeout)
    finally:
        controller.stop()
        await asyncio.gather(task, return_exceptions=True)
        session.save()
        session.close()


_until = functools.partial(until, timeout=60.0)  # a Ray cluster starts slowly on a busy machine


def test_placement_counts_whole_workers() -> None:
    assert placeable(4, 2.0) == 2 and placeable(2, 8.0) == 2 and placeable(3, 0.5) == 0
    assert placeable(4, 3.0, cpus_per_worker=1.5) == 2


@pytest.mark.slow
async def test_two_nodes_share_the_load_and_obey_the_controller(cluster: Any, sim_url: str, tmp_path: Path) -> None:
    session = RunSession(_config(sim_url, tmp_path, workers=2, keep_alive=True))

    async def steer(s: RunSession, controller: Any) -> None:
        bus = s.bus
        await _until(lambda: bus.finished_total >= 20)
        controller.set_concurrency(6)  # reaches both actors: a new segment at c=6
        await _until(lambda: len(bus.view().segments) == 2 and bus.view().segments[1].ok >= 30)
        controller.pause()
        await asyncio.sleep(1.0)
        settled = bus.finished_total
        await asyncio.sleep(1.0)
        assert bus.finished_total == settled and bus.inflight_total == 0  # paused on every node
        controller.stop()

    await _run(session, steer)
    summary = json.loads((session.output / "summary.json").read_text())
    rows = [json.loads(x) for x in (session.output / "requests.jsonl").read_text().splitlines()]
    assert [s["load"] for s in summary["segments"]] == ["c=4", "c=6", "paused"]  # the pause is a segment
    assert summary["completed"] == sum(1 for r in rows if r["status"] == "ok" and not r["warmup"])
    assert summary["completed"] + summary["cancelled"] + summary["failed"] == sum(1 for r in rows if not r["warmup"])
    assert {r["worker"] for r in rows if r["segment"] == 2} == {0, 1}  # both actors took the new load
    hosts = summary["client"]["hosts"]
    assert len(hosts) == 2 and all(h["workers"] == 1 for h in hosts.values())  # one actor per node
    assert summary["client"]["backend"] == "ray" and summary["failed"] == 0


async def test_a_request_budget_holds_across_nodes(cluster: Any, sim_url: str, tmp_path: Path) -> None:
    session = RunSession(_config(sim_url, tmp_path, workers=2, requests=37, keep_alive=False))
    await _run(session)
    summary = json.loads((session.output / "summary.json").read_text())
    assert summary["completed"] == 37  # not 36 or 38: one ticket bank for both hosts


@pytest.mark.slow
async def test_more_workers_than_the_cluster_holds_run_with_those_placed(
    cluster: Any, sim_url: str, tmp_path: Path
) -> None:
    session = RunSession(_config(sim_url, tmp_path, workers=5, concurrency=8, requests=20, keep_alive=False))
    t0 = time.monotonic()
    await _run(session)
    assert time.monotonic() - t0 < 60
    assert any("room for 2 of 5 workers" in n for n in session.notes)  # said at once, not a silent wait
    assert json.loads((session.output / "summary.json").read_text())["completed"] == 20


@pytest.mark.slow
async def test_no_room_at_all_is_refused_in_one_line(cluster: Any, sim_url: str, tmp_path: Path) -> None:
    session = RunSession(_config(sim_url, tmp_path, workers=1, requests=4, ray_cpus_per_worker=8.0))
    await session.prepare()
    with pytest.raises(ConfigError, match="no room for a worker"):
        session.start()
    session.close()


@pytest.mark.slow
async def test_a_node_lost_mid_run_records_its_requests_as_worker_lost(
    cluster: Any, sim_url: str, tmp_path: Path
) -> None:
    session = RunSession(_config(sim_url, tmp_path, workers=2, concurrency=8, keep_alive=True))

    async def steer(s: RunSession, controller: Any) -> None:
        bus = s.bus
        await _until(lambda: bus.finished_total >= 30)
        cluster.remove_node(cluster.victim)  # a node goes, with the actor on it
        await _until(lambda: any("died" in n for n in s.notes), timeout=60)
        done = bus.finished_total

        def state() -> Any:  # what to show if the survivor stalls
            return bus.finished_total, bus.inflight_total, s.notes, [s.pool.tickets.get(k) for k in range(2)]

        await _until(lambda: bus.finished_total >= done + 20, why=state)  # the survivor carries on
        controller.stop()

    await _run(session, steer)
    summary = json.loads((session.output / "summary.json").read_text())
    assert summary["errors"].get("worker_lost", 0) >= 1
    assert any("worker_lost" in n for n in summary["notes"])


async def test_the_host_pane_shows_each_client_hosts_health() -> None:
    import dataclasses

    from llmsurge.engine.session import RunConfig
    from llmsurge.telemetry.samples import HostSample
    from llmsurge.tui.app import make_app
    from tests.test_tui import _screen_lines, _settle
    from tests.tui_data import seeded_snapshot

    base = seeded_snapshot()
    snap = dataclasses.replace(
        base,
        client_hosts={"gpu-a/1f2e3d4c": (4, 3.0, 0.41), "gpu-b/9a8b7c6d": (4, 12.0, 0.77)},
        telemetry={**base.telemetry, "host": HostSample(20.0, 16, 30.0, 8.0, 35.0, 12.0)},
    )
    cfg = RunConfig(scenario=find_preset("demo"), url="http://127.0.0.1:8000")
    app = make_app(cfg, snapshot_source=lambda: snap)
    async with app.run_test(size=(160, 60)) as pilot:
        await _settle(pilot)
        text = "\n".join(_screen_lines(app.export_screenshot()))
    assert "gpu-a/1f2e3d4c" in text and "4w  cpu 41%  lag 3 ms" in text
    assert "gpu-b/9a8b7c6d" in text and "cpu 77%  lag 12 ms" in text
