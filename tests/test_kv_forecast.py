"""KV headroom, forecast: where the server's KV cache fills for the running workload, from a load below it — the
definition (metrics/kv.py), what the servers say of their cache, and a run against a simulated server whose cache
size is known (`llmsurge sim --kv-tokens`): the forecast read at a quarter of the knee, live and in summary.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.engine.session import RunConfig
from llmsurge.metrics.kv import KvForecast, forecast, held_tokens
from llmsurge.metrics.model import Level
from llmsurge.presets import load_preset_file
from llmsurge.telemetry.prometheus import ServerMetricsSampler, index_families, kv_capacity, llamacpp_slots
from llmsurge.telemetry.samples import ServerSample
from llmsurge.tui.app import make_app
from tests.conftest import FIXTURES
from tests.helpers import pilot_until, sim_cli
from tests.test_tui import _screen_lines


def test_the_gauge_scales_what_the_running_requests_hold_to_a_full_cache() -> None:
    f = forecast(running=6.0, usage=0.3, input_tokens=512, output_tokens=64, capacity_tokens=10_000)
    assert f is not None and f.method == "gauge"
    assert f.full_at == pytest.approx(20.0) and f.now == 6.0 and f.headroom == pytest.approx(20 / 6)
    assert f.tokens_per_request == pytest.approx(500.0)  # 30% of 10,000 tokens over 6 requests: measured, not 544
    assert "6.0 running held 30.0% of the KV cache" in f.derived


def test_without_a_reading_the_cache_size_over_what_a_request_holds() -> None:
    f = forecast(running=0.0, usage=0.0, input_tokens=512, output_tokens=64, capacity_tokens=8_704)
    assert f is not None and f.method == "size"
    assert f.tokens_per_request == 544.0 and f.full_at == pytest.approx(16.0)  # prompt + half the output
    assert forecast(running=None, usage=None, input_tokens=512, output_tokens=64) is None  # nothing to go on
    # a paged cache holds whole blocks: 512 prompt tokens and 1..32 more fill five 128-token blocks all along
    assert (
        held_tokens(512, 32, block_size=128) == 640.0 and held_tokens(100, 56, block_size=128) == 192.0
    )  # one block, then two half the time
    long = sum(-(-(1000 + t) // 16) for t in range(1, 4001)) * 16 / 4000  # every step of a 4,000-token answer
    assert held_tokens(1000, 4000, block_size=16) == long
    paged = forecast(running=0.0, usage=None, input_tokens=512, output_tokens=32, capacity_tokens=8192, block_size=128)
    assert paged is not None and paged.full_at == pytest.approx(12.8) and "128-token blocks" in paged.derived
    assert forecast(running=3.0, usage=0.001, input_tokens=None, output_tokens=None) is None  # too coarse a gauge


def test_llama_cpp_defers_beyond_its_slots_and_a_request_must_fit_one() -> None:
    f = forecast(running=2.0, usage=None, input_tokens=128, output_tokens=32, slots=4, slot_context=1024)
    assert f is not None and (f.method, f.full_at, f.capacity_tokens) == ("slots", 4.0, 4096.0)
    assert "4 slots of 1,024 tokens" in f.derived
    assert forecast(running=1.0, usage=None, input_tokens=1000, output_tokens=100, slots=4, slot_context=1024) is None
    assert llamacpp_slots({"total_slots": 4, "default_generation_settings": {"n_ctx": 1024}}) == (4, 1024)
    assert llamacpp_slots({"total_slots": True, "default_generation_settings": "x"}) == (None, None)


def test_the_forecast_keeps_through_summary_json_and_refuses_nonsense() -> None:
    f = forecast(running=6.0, usage=0.3, input_tokens=512, output_tokens=64, capacity_tokens=10_000)
    assert f is not None
    level = Level(segment=1, completed=3, kv_forecast=f)
    back = Level.from_json(json.loads(json.dumps(level.to_json())))
    assert back.kv_forecast == KvForecast.from_json(f.to_json()) and back.kv_forecast is not None
    assert back.kv_forecast.full_at == 20.0 and back.kv_forecast.method == "gauge"
    for bad in ({"full_at_concurrency": -3, "now_concurrency": 1}, {"full_at_concurrency": "9"}, [], None):
        assert KvForecast.from_json(bad) is None


def test_what_real_servers_say_of_their_cache() -> None:
    vllm = index_families(list(text_string_to_metric_families((FIXTURES / "metrics_vllm.txt").read_text())))
    assert kv_capacity(vllm) == (262_144.0, 128)  # vLLM 0.32 CPU, 1 GiB: cache_config_info's kv_cache_size_tokens
    blocks_only = (FIXTURES / "metrics_vllm.txt").read_text().replace('kv_cache_size_tokens="262144",', "")
    fams = index_families(list(text_string_to_metric_families(blocks_only)))
    assert kv_capacity(fams) == (2048 * 128.0, 128)  # an older vLLM: num_gpu_blocks × block_size
    llama = index_families(list(text_string_to_metric_families((FIXTURES / "metrics_llamacpp.txt").read_text())))
    assert kv_capacity(llama) == (None, None)
    sample = ServerMetricsSampler("http://unused").digest(vllm, 1.0)
    assert isinstance(sample, ServerSample) and sample.kv is not None
    assert sample.kv.capacity_tokens == 262_144.0 and sample.kv.block_size == 128 and sample.kv.segment_usage == 0.0


STAGES = (4, 12, 14, 15, 16, 17, 18, 20)
KV_TOKENS = 8192


@pytest.mark.slow
async def test_the_forecast_from_a_quarter_of_the_knee_is_where_waiting_begins(tmp_path: Path) -> None:
    """A simulated server with an 8,192-token cache and 512-token prompts: from the first stage (c=4), the server
    pane says where the cache fills, and summary.json's first segment says the same within 20% of the lowest
    concurrency at which requests waited in the server's queue — by its own per-request clock (vLLM's
    ``queue_time_ms``): past twice what a request waits for the next engine step when the cache has room. (The
    ``waiting`` gauge is no measure of it: a scrape catches requests that arrived during the current step at any
    load.)"""
    preset = tmp_path / "kv.toml"
    stages = "".join(f"[[stages]]\nconcurrency = {c}\nduration = {4 if c == 4 else 2.5}\n\n" for c in STAGES)
    preset.write_text(f'name = "kv"\ndescription = "the KV knee"\n[request]\ninput_tokens = 512\n'
                      f"output_tokens = 32\n\n{stages}")  # fmt: skip
    out = tmp_path / "run"
    with sim_cli("--kv-tokens", str(KV_TOKENS), "--request-metrics") as url:
        config = RunConfig(scenario=load_preset_file(preset), url=url, workers=1, output=out, keep_alive=True)
        app = make_app(config)
        said: list[str] = []
        async with app.run_test(size=(160, 48)) as pilot:
            bus = app.session.bus

            def shown() -> bool:
                said[:] = [ln for ln in _screen_lines(app.export_screenshot()) if "KV full at" in ln]
                return bool(said) and bus.current_segment() == 1

            await pilot_until(pilot, shown, 60)
            await pilot_until(pilot, lambda: bus.state == "done", 120)
            await pilot.press("q")
            await pilot_until(pilot, lambda: not app.is_running, 30)
    s = json.loads((out / "summary.json").read_text())
    queued = [(seg["load"], seg["server_timings"]["queue"]["mean_ms"]) for seg in s["segments"]]
    first = s["segments"][0]
    floor = queued[0][1]  # the c=4 segment: a request waits for the next engine step, not for room in the cache
    waited = [int(load.removeprefix("c=")) for load, queue in queued if queue > 2 * floor + 5]
    assert waited, queued
    knee = waited[0]
    assert first["load"] == "c=4" and knee / 2 >= 4  # read at no more than half the knee
    kv = first["kv_forecast"]
    assert kv["method"] == "gauge" and kv["capacity_tokens"] == KV_TOKENS
    assert abs(kv["full_at_concurrency"] - knee) <= 0.2 * knee, (kv, knee)
    assert 500 <= kv["tokens_per_request"] <= 544  # 512-token prompts and half of 32 output, measured
    live = re.search(r"KV full at\s+≈ c=(\d+)\s+now c=([\d.]+)", said[0])
    assert live, said
    assert abs(int(live.group(1)) - knee) <= 0.2 * knee and float(live.group(2)) <= 4.0, said
