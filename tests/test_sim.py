"""The simulated server behaves like continuous batching, exports vLLM metrics, and injects faults."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.engine.client import Target, make_client, one_request
from llmsurge.engine.scenario import RequestShape
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


def test_metrics_use_vllm_names_and_parse(sim_url: str) -> None:
    text = httpx.get(sim_url + "/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    for n in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:time_to_first_token_seconds",
        "vllm:prefix_cache_hits",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_POWER_USAGE",
    ):
        assert n in names


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


async def test_several_server_processes_share_a_port() -> None:
    with SimProcess(SimConfig(timing=EngineTiming.fast()), processes=2) as sim:
        assert len(sim.pids) == 2
        _d, recs = await _burst(sim.url, 40, tokens=10)
    assert all(r.ok for r in recs)
