"""Measurement truth: cold re-runs, no spurious failures, starvation named, arrival-based segment throughput,
bounded memory with exact recomputation, and the smaller traps (ignored ignore_eos, thin percentiles, client-side
queueing, file limits). Real sockets against the simulated and hostile servers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmsurge.engine.controller import Controller
from llmsurge.engine.pool import WorkerPool
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.lifetime import open_files_note
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.sketch import EXACT_UP_TO, ItlSketch
from llmsurge.metrics.stats import Distribution
from llmsurge.metrics.summary import RunFacts, build_summary, summarize_run
from llmsurge.metrics.wire import WorkerTick
from llmsurge.net import Target
from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig
from llmsurge.telemetry.samples import HostSample
from tests.helpers import run_cli as _run


def _summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[str]:
    """One simulated server kept across runs, so its prefix cache remembers what earlier runs sent."""
    timing = EngineTiming(step_base=0.002, step_per_seq=0.0, prefill_per_token=0.0002, max_seqs=16)
    with SimProcess(SimConfig(timing=timing)) as sim:
        yield sim.url


# ---- 1. re-runs are cold unless asked to repeat ----------------------------------------------------------


@pytest.mark.slow
def test_a_rerun_is_cold_and_the_same_seed_reproduces_the_cache_hits(shared_sim: str, tmp_path: Path) -> None:
    args = ["-c", "2", "-n", "16", "--input-tokens", "200", "--output-tokens", "8"]
    assert _run("run", shared_sim, *args, "-o", str(tmp_path / "a")).returncode == 0
    first = _summary(tmp_path / "a")
    assert _run("run", shared_sim, *args, "-o", str(tmp_path / "b")).returncode == 0
    rerun = _summary(tmp_path / "b")
    assert first["config"]["seed"] != rerun["config"]["seed"]  # a fresh seed each run, recorded
    assert rerun["prefix_cache_hit_rate"] < 0.1  # new prompts: the server's cache cannot help
    r = _run("run", shared_sim, *args, "--seed", str(first["config"]["seed"]), "-o", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    repeat = _summary(tmp_path / "c")
    assert repeat["prefix_cache_hit_rate"] > 0.8  # the same prompts again: served from cache
    assert repeat["mean_ttft_ms"] < rerun["mean_ttft_ms"]  # and flattered, as the warning says
    assert any("meant to be cold" in n for n in repeat["notes"]) and "meant to be cold" in r.stdout
    rows = [json.loads(x) for x in (tmp_path / "c" / "requests.jsonl").read_text().splitlines()]
    assert all(x["cached_tokens"] is not None for x in rows if x["status"] == "ok")


def test_cached_tokens_are_read_in_both_servers_forms(hostile_url: str, tmp_path: Path) -> None:
    from llmsurge.engine.client import cached_tokens

    assert cached_tokens({"prompt_tokens_details": {"cached_tokens": 64}}) == 64  # OpenAI, vLLM
    assert cached_tokens({"timings": {"cache_n": 12, "prompt_n": 17}}) == 12  # llama.cpp
    assert cached_tokens({"prompt_tokens": 5}) is None  # not reported: not zero
    r = _run("run", hostile_url, "--model", "cached", "-c", "1", "-n", "3", "-o", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert _summary(tmp_path / "h")["prefix_cache_hit_rate"] == pytest.approx(0.64)


# ---- 2. no spurious failures from a server that closes idle connections ------------------------------------


@pytest.mark.slow
def test_idle_connections_closed_by_the_server_cost_no_request(closing_url: str, tmp_path: Path) -> None:
    """Like llama-server (5 s there, 0.3 s here): pooled connections die while idle; a request that meets one
    is re-sent on a fresh connection before any response byte, and counted."""
    out = tmp_path / "k"
    r = _run("run", closing_url, "--model", "normal", "-r", "3", "--arrival", "poisson", "-n", "24", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    assert s["failed"] == 0 and s["completed"] == 24, s["errors"]
    assert sum(x["resent"] for x in rows) > 0  # stale connections were met, and re-sent


# ---- 3. starvation is told apart from a busy client ---------------------------------------------------------


def _tick(worker: int, lag: float, cpu: float) -> WorkerTick:
    return WorkerTick(worker=worker, records=[], tokens=10, started=0, inflight=1, loop_lag_ms=lag, cpu=cpu)


@pytest.mark.slow
def test_a_starved_segment_is_marked_and_a_busy_one_is_not() -> None:
    bus = MetricsBus()
    bus.open_segment("c=8", "t")
    bus.set_telemetry("host", HostSample(cpu_percent=99.0, cpu_count=2, mem_percent=10.0, mem_used_gib=1.0))
    t_end = time.monotonic() + 2.2
    while time.monotonic() < t_end:  # two seconds of a worker waiting for a core it does not use
        bus.ingest(_tick(0, 900.0, 0.02))
        time.sleep(0.05)
    bus.open_segment("c=16", "t")
    bus.set_telemetry("host", HostSample(cpu_percent=60.0, cpu_count=2, mem_percent=10.0, mem_used_gib=1.0))
    t_end = time.monotonic() + 2.2
    while time.monotonic() < t_end:  # two seconds of our own worker at full tilt
        bus.ingest(_tick(0, 150.0, 0.97))
        time.sleep(0.05)
    bus.ingest(_tick(0, 1.0, 0.1))
    s = build_summary(bus.view(with_stats=True), RunFacts())
    starved, busy = s.segments
    assert starved.starved and starved.client is not None and starved.client.starved_seconds >= 1
    assert not busy.starved and busy.client is not None and busy.client.client_busy_seconds >= 1
    assert s.client.max_loop_lag_ms == 900.0 and s.client.max_cpu == 0.97  # the worst seen
    assert s.client.starved_segments == (1,) and s.to_json()["client"]["starved_segments"] == [1]
    assert any("other processes held the CPU" in n for n in s.notes)
    assert any("host starved" in e for e in s.client.saturation_events)
    assert any("client busy" in e for e in s.client.saturation_events)


# ---- 6. a segment's throughput is what arrived while it was open; the ramp stops at the plateau ------------


@pytest.mark.slow
async def test_segment_throughput_never_exceeds_the_servers_ceiling_and_the_ramp_stops() -> None:
    # 8 sequences a step, a step every 10 ms: the server cannot deliver more than 800 tokens/s.
    timing = EngineTiming(step_base=0.01, step_per_seq=0.0, prefill_per_token=0.0, max_seqs=8)
    stages = tuple(Stage(Load(concurrency=c), duration=3.0) for c in (2, 4, 8, 16, 32, 64))
    ramp = Scenario("ramp", "r", stages, RequestShape(endpoint="completions", output_tokens=150), stop_on_plateau=True)
    with SimProcess(SimConfig(timing=timing)) as sim:
        bus = MetricsBus()
        pool = WorkerPool(Target(sim.url, "llmsurge-sim"), Calibration(), bus, workers=1)
        pool.start()
        await asyncio.wait_for(Controller(pool, bus, ramp, drain_grace=0).run(), 120)
    segs = summarize_run(bus.view(with_stats=True)).segments
    ceiling = 800.0
    tput = [s.output_throughput or 0.0 for s in segs]
    assert all(t <= ceiling * 1.05 for t in tput), tput
    loads = [s.load for s in segs]
    # no growth past c=8: it stops at c=16 (or one level later on a machine busy enough to have slowed c=8)
    assert loads[:4] == ["c=2", "c=4", "c=8", "c=16"] and len(loads) <= 5, loads
    assert tput[2] > ceiling * 0.8
    assert any("ramp ends" in e.message for e in bus.events)


# ---- 5. per-token figures in bounded memory; exact recomputation ----------------------------------------------


def test_itl_sketch_percentiles_are_within_one_percent_of_numpys() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.gamma(2.0, 0.008, 200_000), rng.lognormal(-3.0, 0.8, 50_000)])
    sketch = ItlSketch()
    for chunk in np.array_split(values, 500):
        sketch.extend(chunk.tolist())
    got = Distribution.of_sketch(sketch, (50.0, 90.0, 99.0, 99.9)).keys("itl")
    for key, q in (("median_itl_ms", 50), ("p90_itl_ms", 90), ("p99_itl_ms", 99), ("p99.9_itl_ms", 99.9)):
        want = np.percentile(values, q) * 1000.0
        assert abs(got[key] - want) <= 0.01 * want, (key, got[key], want)
    assert got["mean_itl_ms"] == pytest.approx(values.mean() * 1000.0, rel=1e-9)
    assert got["std_itl_ms"] == pytest.approx(values.std() * 1000.0, rel=1e-6)
    small = ItlSketch()
    small.extend(values[:EXACT_UP_TO].tolist())  # few values: kept exactly, numpy's percentiles exactly
    assert Distribution.of_sketch(small, (99.0,)).keys("itl")["p99_itl_ms"] == pytest.approx(
        np.percentile(values[:EXACT_UP_TO], 99) * 1000
    )


@pytest.mark.slow
def test_report_recomputes_the_summary_exactly_and_names_a_figure_that_differs(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert _run("run", "-c", "8", "-n", "120", "--output-tokens", "120", "-o", str(out)).returncode == 0
    r = _run("report", str(out))
    assert r.returncode == 0 and "summary.json agrees with requests.jsonl" in r.stdout, r.stdout
    figures = json.loads(_run("report", str(out), "--json").stdout)
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    itl = np.array([v for x in rows if x["status"] == "ok" and not x["warmup"] for v in x["itl_ms"]])
    assert len(itl) > EXACT_UP_TO  # the live summary sketched these
    assert figures["p99_itl_ms"] == pytest.approx(np.percentile(itl, 99), rel=1e-12)  # the report is exact
    assert figures["median_itl_ms"] == pytest.approx(np.median(itl), rel=1e-12)
    s = _summary(out)
    for key in ("mean_input_tokens", "p90_input_tokens", "mean_output_tokens", "p90_output_tokens"):
        assert figures[key] == pytest.approx(s[key]) and s[key] > 0, key  # report shows the token figures too
    s["p99_ttft_ms"] *= 1.5
    (out / "summary.json").write_text(json.dumps(s))
    r = _run("report", str(out))
    assert "run: p99_ttft_ms is" in r.stdout and "agrees" not in r.stdout
    assert r.returncode == 1  # a summary that disagrees with its requests fails the check
    phases = json.loads(_run("report", str(out), "--json").stdout)["phases"]
    assert phases["new_connections"] + phases["pooled"] == 120  # every request says how it was sent
    assert phases["new_connections"] <= 8  # kept alive: at most one per stream (warm-up opened most)
    assert phases["headers_ms"]["p50"] <= phases["ttft_ms"]["p50"]  # the headers come before the first token


# ---- 7. the smaller traps ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_that_ignores_ignore_eos_is_named(hostile_url: str, tmp_path: Path) -> None:
    out = tmp_path / "e"  # the hostile server's "normal" model always stops after 4 tokens
    r = _run("run", hostile_url, "--model", "normal", "-n", "5", "--output-tokens", "16", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    assert s["short_outputs"] == 5 and s["segments"][0]["short_outputs"] == 5
    assert any("ignores ignore_eos" in n for n in s["notes"])
    r = _run("run", hostile_url, "--model", "normal", "-n", "5", "--output-tokens", "4", "-o", str(tmp_path / "f"))
    assert not any("ignore_eos" in n for n in _summary(tmp_path / "f")["notes"])  # as asked: nothing to say


def test_thin_percentiles_are_starred_and_n_is_shown(hostile_url: str, tmp_path: Path) -> None:
    r = _run("run", hostile_url, "--model", "normal", "-n", "9", "--output-tokens", "4", "-o", str(tmp_path / "p"))
    assert r.returncode == 0
    ttft = next(line for line in r.stdout.splitlines() if line.startswith("│ TTFT (ms)"))  # the matrix: a pipe
    cells = [c.strip() for c in ttft.split("│")[2:-1]]  # n, mean, p50, p90, p99
    assert cells[0] == "9" and cells[-1].endswith("*") and "read it as the maximum" in r.stdout, ttft
    assert _summary(tmp_path / "p")["n_ttft"] == 9


@pytest.mark.slow
def test_open_loop_waits_for_a_free_slot_are_reported_apart(shared_sim: str, tmp_path: Path) -> None:
    out = tmp_path / "w"  # 40 arrivals/s, but at most 2 in flight, each taking ~0.2 s: most wait for a slot
    r = _run("run", shared_sim, "-r", "40", "-c", "2", "-n", "30", "--output-tokens", "100", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    assert s["p99_client_wait_ms"] > 100 and s["p99_e2el_sched_ms"] > s["p99_e2el_ms"]
    assert any("after their scheduled time" in n for n in s["notes"])
    assert s["schedule"]["kept"] is False and s["schedule"]["late_share"] > 0.5  # schedule fidelity, said plainly
    assert any("waited for a free slot under the in-flight cap" in n for n in s["notes"])
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines() if '"warmup": false' in x]
    assert all(x["client_wait_ms"] is not None for x in rows)


def test_the_open_files_limit_is_raised_and_a_load_that_cannot_fit_is_named() -> None:
    import resource

    from llmsurge.lifetime import raise_open_files_limit

    limit = raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit
    assert open_files_note(100, 1, 1024) == ""
    note = open_files_note(10_000, 2, 1024)
    assert "ulimit -n" in note and "1,920 will fit" in note


def test_a_record_knows_when_it_came_back_short() -> None:
    r = RequestRecord("a", 1, 0, 0.0, 0.0, ignore_eos=True, max_tokens=16, output_tokens=4)
    assert r.came_back_short
    r.output_tokens = 16
    assert not r.came_back_short
    assert not RequestRecord("b", 1, 0, 0.0, 0.0, ignore_eos=False, max_tokens=16, output_tokens=4).came_back_short
