"""The server's clock as referee: per-segment phases from /metrics histograms, reconciled with our TTFT."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
from pathlib import Path
from typing import Any

import pytest

from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.engine.session import RunConfig, RunSession
from llmsurge.metrics.model import Referee
from llmsurge.metrics.reconcile import reconcile
from llmsurge.sim.model import EngineTiming
from llmsurge.sim.server import SimConfig
from llmsurge.telemetry.prometheus import SegmentClock, parse_metrics
from tests.helpers import rows, run_prepared, summary, until


async def _run(tmp_path: Path, scenario: Scenario, sim: SimConfig) -> Path:
    session = RunSession(RunConfig(scenario=scenario, workers=1, output=tmp_path / "r", sim_config=sim))
    await session.prepare()
    return await run_prepared(session)


async def test_per_segment_phases_equal_the_servers_own_clock(tmp_path: Path) -> None:
    """A simulated server with a batch of 2 and 6 requests in flight: requests queue inside it. Its /metrics
    histograms over the segment must give the same prefill as each request's own timings (the sim's clock),
    queue + prefill = its TTFT (it has no front end to speak of), and ours a loopback's cost above it."""
    timing = EngineTiming(step_base=0.004, step_per_seq=0.0, prefill_per_token=0.00005, max_seqs=2)
    shape = RequestShape(input_tokens=200, output_tokens=6)
    scenario = Scenario("referee", "", (Stage(Load(concurrency=6), requests=48),), shape=shape, warmup=3)
    out = await _run(tmp_path, scenario, SimConfig(timing=timing, timings=True))
    seg = summary(out)["segments"][0]
    rec = seg["reconciliation"]
    clock = seg["telemetry"]["server"]["clock"]
    assert clock["ttft"]["count"] == 48 and clock["queue"]["count"] == 48, clock  # our requests, not the warm-up's
    ours = [r for r in rows(out, warmup=False) if r["status"] == "ok"]
    assert len(ours) == 48
    prefill = statistics.fmean(r["server_prompt_ms"] for r in ours)  # each request's own timings
    assert abs(rec["server_prefill_ms_mean"] - prefill) < 0.01, (rec, prefill)
    assert rec["server_queue_ms_mean"] > 10  # a batch of 2 under 6: they waited
    assert abs(rec["server_queue_ms_mean"] + rec["server_prefill_ms_mean"] - rec["server_ttft_ms_mean"]) < 0.01
    assert abs(rec["client_ttft_ms_mean"] - seg["mean_ttft_ms"]) < 1e-9
    assert 0 <= rec["gap_ms_mean"] < 15, rec  # loopback, the server's HTTP handler and our read
    assert rec["gap_ms_mean"] == rec["client_ttft_ms_mean"] - rec["server_ttft_ms_mean"]
    assert 0 <= rec["client_side_ms_mean"] <= max(rec["gap_ms_mean"], 0)
    assert rec["where"] in ("agree", "client", "server front end and network") and rec["verdict"]


def _exposition(ttft: list[float], queue: list[float]) -> dict[str, Any]:
    bounds = (0.01, 0.1, 1.0)

    def hist(name: str, values: list[float]) -> str:
        lines = [f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{le="{b}"}} {sum(v <= b for v in values)}' for b in bounds]
        lines.append(f'{name}_bucket{{le="+Inf"}} {len(values)}')
        lines.append(f"{name}_sum {sum(values)}")
        lines.append(f"{name}_count {len(values)}")
        return "\n".join(lines)

    text = hist("vllm:time_to_first_token_seconds", ttft) + "\n" + hist("vllm:request_queue_time_seconds", queue)
    return parse_metrics(text + "\n")


def test_scrapes_partition_the_run_into_segments() -> None:
    clock = SegmentClock()
    clock.mark(1, _exposition([0.05] * 3, [0.01] * 3))  # after the warm-up: three requests already seen
    clock.add(1, _exposition([0.05] * 3 + [0.2] * 4, [0.01] * 3 + [0.1] * 4))
    one = clock.phases[1]
    assert one["ttft"].count == 4 and abs(one["ttft"].mean_ms - 200.0) < 1e-6  # the warm-up left out
    assert abs(one["queue"].mean_ms - 100.0) < 1e-6
    # segment 2 opened: the scrape its opening asked for is its base; a later one holds only its own requests
    clock.add(2, _exposition([0.05] * 3 + [0.2] * 5, [0.01] * 3 + [0.1] * 5), boundary=True)
    assert clock.phases[2]["ttft"].count == 0 and clock.phases[1]["ttft"].count == 4
    clock.add(2, _exposition([0.05] * 3 + [0.2] * 5 + [0.5] * 2, [0.01] * 3 + [0.1] * 5 + [0.3] * 2))
    assert clock.phases[2]["ttft"].count == 2 and abs(clock.phases[2]["ttft"].mean_ms - 500.0) < 1e-6
    # without a boundary scrape, the base is the segment before's last: nothing is lost between scrapes
    clock.add(3, _exposition([0.05] * 3 + [0.2] * 5 + [0.5] * 3, [0.01] * 3 + [0.1] * 5 + [0.3] * 3))
    assert clock.phases[3]["ttft"].count == 1


def test_the_verdict_names_where_the_gap_lies() -> None:
    clock = {"ttft": {"mean_ms": 141.0, "count": 100}, "queue": {"mean_ms": 20.0}, "prefill": {"mean_ms": 110.0}}
    front = reconcile(618.0, clock, loop_lag_ms=0.0)  # the vLLM on a saturated host
    assert front is not None and front.where == "server front end and network"
    assert front.gap_ms_mean == 477.0 and front.rest_ms == 477.0 and front.server_front_ms_mean == 11.0
    assert "477.0 of the 477.0 ms" in front.verdict
    client = reconcile(618.0, clock, loop_lag_ms=400.0)
    assert client is not None and client.where == "client" and client.client_side_ms_mean == 400.0
    assert "the client is the bottleneck" in client.verdict
    agree = reconcile(142.0, clock, loop_lag_ms=0.2)
    assert agree is not None and agree.where == "agree"
    assert reconcile(None, clock, 0.0) is None and reconcile(100.0, {}, 0.0) is None


def test_the_referee_puts_a_client_gap_on_the_client_health_line() -> None:
    from llmsurge.metrics.health import Cause, ClientHealth
    from llmsurge.metrics.snapshot import _with_referee

    clock = {"ttft": {"mean_ms": 40.0, "count": 50}}
    fine = ClientHealth(1, 3.0, 0.2, Cause.NONE, "")
    starved = reconcile(90.0, clock, loop_lag_ms=45.0)
    assert starved is not None and starved.where == "client"
    said = _with_referee(fine, starved)
    assert said.saturated and "the client is the bottleneck" in said.reason and "--workers" in said.reason
    assert _with_referee(fine, reconcile(41.0, clock, 0.5)) is fine


async def _starve(pids: list[int], done: asyncio.Task[None]) -> None:
    """Take the CPU from these processes as a loaded host does — by stopping them, which no scheduler policy or
    neighbour on a busy CI machine can soften — 100–250 ms at a time with 20–150 ms between. The lengths are drawn
    at random: a closed loop falls into step with a regular pattern (it sends at each resume and its first tokens
    come back before the next stop), which hides the starvation from TTFT."""
    rng = random.Random(7)

    def signal_all(sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # the run ended, and its worker with it
                os.kill(pid, sig)

    while not done.done():
        signal_all(signal.SIGSTOP)
        try:
            await asyncio.sleep(rng.uniform(0.10, 0.25))
        finally:
            signal_all(signal.SIGCONT)
        await asyncio.sleep(rng.uniform(0.02, 0.15))


@pytest.mark.slow
async def test_a_starved_client_shows_a_growing_client_share(tmp_path: Path) -> None:
    """The same load twice against a simulated server; in the second segment the worker is denied the CPU half of
    the time. Ours grows by the wait far more than the server's clock does: the reconciliation puts that on the
    client."""
    timing = EngineTiming(step_base=0.005, step_per_seq=0.0, prefill_per_token=0.00001, max_seqs=256)
    shape = RequestShape(input_tokens=200, output_tokens=64)
    load = Load(concurrency=48)
    stages = (Stage(load, duration=4.0), Stage(load, duration=4.0))
    scenario = Scenario("starved", "", stages, shape=shape)
    cfg = RunConfig(scenario=scenario, workers=1, output=tmp_path / "r", sim_config=SimConfig(timing=timing))
    session = RunSession(cfg)
    await session.prepare()
    ctrl = await asyncio.to_thread(session.start)
    task = asyncio.create_task(ctrl.run())
    try:
        await until(lambda: session.bus.current_segment() == 2 or task.done(), 30)
        await _starve(session.worker_pids(), task)
        await asyncio.wait_for(task, 60)
    finally:
        if not task.done():
            ctrl.stop()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(session.close)
    session.save()
    calm, starved = (seg["reconciliation"] for seg in summary(session.output)["segments"])
    assert starved["client_side_ms_mean"] > calm["client_side_ms_mean"] + 20.0, (calm, starved)
    assert starved["gap_ms_mean"] > calm["gap_ms_mean"] + 50.0, (calm, starved)
    assert starved["where"] != "agree", starved  # the gap is named (loop lag undercounts a stopped process)
    grew = starved["server_ttft_ms_mean"] - calm["server_ttft_ms_mean"]  # bursts from a late client queue a little
    assert starved["gap_ms_mean"] - calm["gap_ms_mean"] > 2 * max(grew, 0.0), (calm, starved)  # the growth is ours


async def test_compare_places_a_ttft_regression_on_the_server(tmp_path: Path) -> None:
    """The same load against a server with a batch of 8, then of 2: our TTFT grows, and by the server's clock the
    growth is its queue — compare shows its figures beside ours and says where the change lies."""
    from llmsurge.metrics.compare import compare
    from llmsurge.metrics.runs import load_run

    shape = RequestShape(input_tokens=100, output_tokens=12)
    scenario = Scenario("c6", "", (Stage(Load(concurrency=6), requests=36),), shape=shape)
    runs = []
    for seqs in (8, 2):
        timing = EngineTiming(step_base=0.004, step_per_seq=0.0, prefill_per_token=0.00005, max_seqs=seqs)
        runs.append(await _run(tmp_path / f"b{seqs}", scenario, SimConfig(timing=timing)))
    cmp = compare([load_run(str(p)) for p in runs])
    rows = {row.metric.label: row for row in cmp.levels[0].rows}
    queue = rows["server's queue (mean)"]
    assert queue.values[1] > queue.values[0] + 10  # type: ignore[operator]
    assert "TTFT outside the server (mean)" in rows and "  of which our loop lag" in rows
    placed = [n for n in cmp.notes if "mean TTFT" in n]
    assert len(placed) == 1 and "on the server: its own TTFT moved +" in placed[0], cmp.notes


# ---- the server's clock per request: vLLM's per-request metrics, llama.cpp's timings ---------------------------


def test_vllm_per_request_metrics_are_read_from_a_real_transcript() -> None:
    """vLLM 0.32 started with --enable-per-request-metrics (a recorded stream): its final usage chunk's ``metrics``
    become the request's server clock — queue, prefill (TTFT from scheduling), decode — under the same names as
    llama.cpp's timings."""
    from llmsurge.engine.client import ChunkCounter, _Stream
    from llmsurge.metrics.records import RequestRecord

    raw = (Path(__file__).parents[2] / "shared/realservers/samples/sse_chat_vllm_per_request_metrics.txt").read_bytes()
    rec = RequestRecord("v", 1, 0, start=0.0, wall_start=0.0)
    stream = _Stream(rec, ChunkCounter())
    stream.feed(raw[raw.index(b"data:") :])
    assert stream.finish() and rec.ok and rec.output_tokens == 8
    assert rec.server is not None and rec.server.source == "vLLM per-request metrics"
    assert rec.server.queue_ms == pytest.approx(0.027912, rel=1e-5)
    assert rec.server.prompt_ms == pytest.approx(5.702228, rel=1e-6)
    assert rec.server.decode_ms == pytest.approx(26.973415, rel=1e-6)
    row = rec.to_json()
    assert (row["server_queue_ms"], row["server_source"]) == (rec.server.queue_ms, "vLLM per-request metrics")
    again = RequestRecord.from_json(row)
    assert again.server == rec.server  # read back from requests.jsonl as written


@pytest.mark.slow
async def test_a_segment_is_reconciled_from_per_request_timings(tmp_path: Path) -> None:
    """Without /metrics phase histograms (here: telemetry off), each request's own timings reconcile the segment;
    with both, the per-request clock is kept beside the histograms' and said to agree."""
    timing = EngineTiming(step_base=0.004, step_per_seq=0.0, prefill_per_token=0.00005, max_seqs=2)
    shape = RequestShape(input_tokens=200, output_tokens=6)
    scenario = Scenario("referee", "", (Stage(Load(concurrency=6), requests=24),), shape=shape, warmup=2)
    sim = SimConfig(timing=timing, request_metrics=True)
    session = RunSession(
        RunConfig(scenario=scenario, workers=1, output=tmp_path / "a", sim_config=sim, telemetry=False)
    )
    await session.prepare()
    seg = summary(await run_prepared(session))["segments"][0]
    rec = seg["reconciliation"]
    assert rec["source"] == "per-request" and seg["server_timings"]["ttft"]["count"] == 24
    assert rec["server_queue_ms_mean"] > 5  # a batch of 2 under 6: they waited, and vLLM's metrics say so
    assert abs(rec["server_queue_ms_mean"] + rec["server_prefill_ms_mean"] - rec["server_ttft_ms_mean"]) < 0.01
    assert 0 <= rec["gap_ms_mean"] < 15 and rec["where"] in ("agree", "client", "server front end and network")
    both = await _run(tmp_path / "b", scenario, sim)  # /metrics too: both clocks
    seg = summary(both)["segments"][0]
    assert seg["reconciliation"]["source"] == "histograms"
    per_request = seg["reconciliation_per_request"]
    assert per_request["source"] == "per-request" and per_request["agrees_with_histograms"] is True, (
        seg["reconciliation"]["server_ttft_ms_mean"],
        per_request["server_ttft_ms_mean"],
    )


def test_the_per_request_clock_agrees_on_the_engine_time_both_clocks_keep() -> None:
    """vLLM's per-request clock starts when the engine takes the request; its histograms' TTFT starts at the HTTP
    front end. Real vLLM 0.32 on 2 CPU cores at c=3 (2026-12-07): histograms TTFT 175.0 ms = queue 0.0 + prefill
    121.0 + front end 54.0; per request 120.4 = queue 0.0 + prefill 120.4. The engine's share agrees; a clock whose
    prefill reads 30% apart does not."""

    def clock(ttft: float, queue: float, prefill: float) -> dict[str, dict[str, float]]:
        return {k: {"mean_ms": v, "count": 48.0} for k, v in (("ttft", ttft), ("queue", queue), ("prefill", prefill))}

    histograms = reconcile(178.9, clock(175.0, 0.0, 121.0), 0.7)
    per_request = reconcile(178.9, clock(120.4, 0.0, 120.4), 0.7)
    apart = reconcile(178.9, clock(157.0, 0.0, 157.0), 0.7)
    assert histograms is not None and per_request is not None and apart is not None
    assert per_request.engine_ms_mean == pytest.approx(120.4) and histograms.server_front_ms_mean == pytest.approx(54)
    referee = Referee(result=histograms, source="histograms")
    assert Referee(result=per_request, source="per-request").beside(referee).agrees_with_histograms is True
    assert Referee(result=apart, source="per-request").beside(referee).agrees_with_histograms is False
