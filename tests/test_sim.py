"""The simulated server behaves like continuous batching, exports vLLM metrics, and injects faults."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.engine.client import one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.net import Target
from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import Faults, SimConfig


async def _burst(url: str, n: int, tokens: int = 40) -> tuple[float, list]:
    async with make_client() as c:
        t0 = time.monotonic()
        recs = await asyncio.gather(
            *[one_request(c, Target(url, "llmsurge-sim"), RequestShape(), "a b c", tokens) for _ in range(n)]
        )
        return time.monotonic() - t0, recs


@pytest.mark.slow
async def test_throughput_rises_then_queueing_raises_ttft() -> None:
    timing = EngineTiming(step_base=0.01, step_per_seq=0.0002, prefill_per_token=0.0, max_seqs=16)
    with SimProcess(SimConfig(timing=timing)) as sim:
        d1, _r1 = await _burst(sim.url, 1)
        d16, r16 = await _burst(sim.url, 16)
        d64, r64 = await _burst(sim.url, 64)
    tput = [n * 40 / d for n, d in ((1, d1), (16, d16), (64, d64))]
    assert tput[1] > 8 * tput[0]  # batching: 16 streams decode nearly as fast as one
    assert tput[2] < tput[1] * 1.5  # past the knee (max_seqs=16) total throughput stops growing
    ttft16 = max(r.ttft for r in r16)
    ttft64 = max(r.ttft for r in r64)
    assert ttft64 > 2 * ttft16  # requests wait in the queue behind the batch


def _metrics(url: str) -> dict[str, float]:
    """Family name → the sum of its counter/gauge values (histograms: their count)."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for s in fam.samples:
            if s.name in (fam.name, fam.name + "_total", fam.name + "_count"):
                out[fam.name] = out.get(fam.name, 0.0) + s.value
    return out


async def test_metrics_use_vllm_names_and_follow_the_load() -> None:
    timing = EngineTiming(step_base=0.02, step_per_seq=0.0, prefill_per_token=0.0, max_seqs=4)
    with SimProcess(SimConfig(timing=timing)) as sim:
        before = _metrics(sim.url)
        async with make_client() as c:
            target = Target(sim.url, "llmsurge-sim")
            burst = asyncio.gather(*[one_request(c, target, RequestShape(), "a b c", 30) for _ in range(8)])
            task = asyncio.ensure_future(burst)
            await asyncio.sleep(0.3)
            during = await asyncio.to_thread(_metrics, sim.url)
            await task
        after = _metrics(sim.url)
    assert during["vllm:num_requests_running"] == 4 and during["vllm:num_requests_waiting"] == 4  # max_seqs=4
    assert during["vllm:kv_cache_usage_perc"] > 0 and during["DCGM_FI_DEV_GPU_UTIL"] > 0
    assert after["vllm:generation_tokens"] - before["vllm:generation_tokens"] == 8 * 30
    assert after["vllm:prompt_tokens"] - before["vllm:prompt_tokens"] == 8 * (3 + 8)
    assert after["vllm:time_to_first_token_seconds"] - before["vllm:time_to_first_token_seconds"] == 8
    assert after["vllm:num_requests_running"] == 0 and before["DCGM_FI_DEV_GPU_UTIL"] == 0


async def test_kv_cache_pressure_preempts_and_every_request_still_finishes() -> None:
    timing = EngineTiming(step_base=0.002, step_per_seq=0.0, prefill_per_token=0.0, max_seqs=8, kv_capacity_tokens=300)
    with SimProcess(SimConfig(timing=timing)) as sim:
        _d, recs = await _burst(sim.url, 8, tokens=40)
        preempted = _metrics(sim.url)["vllm:num_preemptions"]
    assert all(r.ok and r.output_tokens == 40 for r in recs)
    assert preempted > 0  # 8 × (11 prompt + 40 out) tokens do not fit in 300


def test_fault_spec_parsing() -> None:
    f = Faults.parse("http500=0.05, reset=0.02")
    assert f.http500 == 0.05 and f.reset == 0.02 and f.describe() == "http500=0.05,reset=0.02"
    for bad in ("boom=0.1", "http500", "http500=2", "http500=x"):
        with pytest.raises(ValueError, match="bad fault"):
            Faults.parse(bad)


async def test_every_fault_kind_shows_up(faulty_sim_url: str) -> None:
    async with make_client() as c:
        shape = RequestShape(timeout=2.0)
        sem = asyncio.Semaphore(64)

        async def one() -> object:
            async with sem:
                return await one_request(c, Target(faulty_sim_url, "llmsurge-sim"), shape, "a b", 20)

        recs = await asyncio.gather(*[one() for _ in range(400)])
    kinds = Counter(r.error_kind for r in recs if not r.ok)
    for k in ("http_500", "http_429", "http_503", "reset", "timeout", "protocol"):
        assert kinds[k] > 0, kinds
    assert any(r.ok and r.tokens_estimated for r in recs)  # no_usage: counted, marked as estimated


@pytest.mark.slow
async def test_several_server_processes_share_a_port() -> None:
    with SimProcess(SimConfig(timing=EngineTiming.fast()), processes=2) as sim:
        pids = set(sim.pids)
        assert len(pids) == 2
        _d, recs = await _burst(sim.url, 40, tokens=10)
        answered = set()
        for _ in range(40):  # a fresh connection each time: the kernel spreads them over the processes
            async with httpx.AsyncClient() as c:
                answered.add(int((await c.get(sim.url + "/v1/models")).headers["x-llmsurge-sim-pid"]))
    assert all(r.ok for r in recs)
    assert answered == pids  # both processes served


def test_a_request_field_of_the_wrong_type_is_answered_not_a_crash(sim_url: str) -> None:
    """A max_tokens that is not a whole number, a tool without a name: the simulated server answers (its default
    length; a 400 for the tools), as a server does, instead of failing with a 500."""
    base = {"model": "llmsurge-sim", "ignore_eos": True}
    chat = httpx.post(sim_url + "/v1/chat/completions", timeout=30,
                      json={**base, "messages": [{"role": "user", "content": "hi"}], "max_tokens": [8]})  # fmt: skip
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1, chat.text
    resp = httpx.post(sim_url + "/v1/responses", timeout=30, json={**base, "input": "hi", "max_output_tokens": [4]})
    assert resp.status_code == 200 and resp.json()["status"] == "completed", resp.text
    tools = httpx.post(sim_url + "/v1/chat/completions", timeout=30,
                       json={**base, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                             "tools": [{"type": "function", "function": {}}]})  # fmt: skip
    assert tools.status_code == 400 and "tools must be a list" in tools.text
