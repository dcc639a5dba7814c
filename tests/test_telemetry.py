"""Telemetry against recorded real /metrics texts, the simulated server, a fake ROCm boundary, and degraded cases."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.metrics.bus import MetricsBus
from llmsurge.render.format import num
from llmsurge.telemetry.base import NA, Sampler
from llmsurge.telemetry.gpu import DcgmSampler, RocmSampler, gpus_from_dcgm
from llmsurge.telemetry.host import HostSampler
from llmsurge.telemetry.probe import local_gpu_sampler
from llmsurge.telemetry.prometheus import ServerMetricsSampler, histogram_quantile, index_families
from llmsurge.telemetry.samples import GpuSample, HostSample, ServerSample, TelemetrySample, Unavailable
from tests.conftest import FIXTURES


def _fams(name: str) -> dict[str, Any]:
    return index_families(list(text_string_to_metric_families((FIXTURES / name).read_text())))


def test_na_formats_as_na_and_is_nan() -> None:
    assert f"{NA}" == "N/A" and f"{NA:.1f}" == "N/A" and str(NA) == "N/A"
    assert NA != NA and not NA and (NA + 1) != (NA + 1)
    assert num(NA) == "N/A"


def _server(sample: TelemetrySample) -> ServerSample:
    assert isinstance(sample, ServerSample), sample
    return sample


def test_recorded_vllm_metrics() -> None:
    s = _server(ServerMetricsSampler("http://unused").digest(_fams("metrics_vllm.txt"), 100.0))
    assert s.kind == "vLLM"
    assert s.running == 0.0 and s.waiting == 0.0 and s.kv_cache == 0.0
    assert s.prompt_tokens_total == 483.0
    assert s.prefix_hit_rate == 0.0  # hits 0 of 483 queried tokens
    assert s.preemptions_total == 0.0
    # the TTFT histogram (13 requests, 7 of them ≤ 40 ms … all ≤ 60 ms) gives a p50 inside its buckets
    assert 20.0 <= s.ttft_p50_ms <= 60.0 and s.ttft_p99_ms <= 60.0
    assert s.ttft_p99_bound_ms == 60.0 >= s.ttft_p99_ms  # the bucket it lies in: what the histogram knows for sure


def test_recorded_llamacpp_metrics() -> None:
    s = _server(ServerMetricsSampler("http://unused").digest(_fams("metrics_llamacpp.txt"), 100.0))
    assert s.kind == "llama.cpp"
    assert s.running == 0.0 and s.waiting == 0.0
    assert s.generation_tokens_total == 24.0 and s.prompt_tokens_total == 64.0
    assert s.generation_tok_s == pytest.approx(44.9527)  # llama.cpp's own average when no rate yet
    assert "llama.cpp's own average" in s.rate_source  # and the pane says what the figure is
    assert f"{s.ttft_p50_ms}" == "N/A"  # llama.cpp has no TTFT histogram


def test_renamed_vllm_metric_still_shows() -> None:
    text = (FIXTURES / "metrics_vllm.txt").read_text().replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    text = text.replace(
        'vllm:gpu_cache_usage_perc{engine="0",model_name="tiny"} 0.0',
        'vllm:gpu_cache_usage_perc{engine="0",model_name="tiny"} 0.25',
    )
    s = _server(
        ServerMetricsSampler("http://unused").digest(index_families(list(text_string_to_metric_families(text))), 1.0)
    )
    assert s.kv_cache == 0.25


def test_llamacpp_rate_is_windowed_not_a_jumping_delta() -> None:
    """llama.cpp's counters move only when a request ends: a per-scrape delta jumps (256 against 82 delivered);
    the rate is over a 10 s window."""
    sampler = ServerMetricsSampler("http://unused")
    text = (FIXTURES / "metrics_llamacpp.txt").read_text()

    def at(tokens: float, now: float) -> ServerSample:
        body = text.replace("llamacpp:tokens_predicted_total 24", f"llamacpp:tokens_predicted_total {tokens}")
        return _server(sampler.digest(index_families(list(text_string_to_metric_families(body))), now))

    at(0, 0.0)
    rates = [at(tokens, float(t)).generation_tok_s for t, tokens in enumerate([0, 0, 256, 256, 512, 512, 768], 1)]
    assert rates[-1] == pytest.approx(768 / 7)  # the delivered rate over the window, not the last second's 256
    assert max(rates) < 256 * 0.6


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.1: 10.0, 0.2: 20.0, 0.4: 40.0, float("inf"): 40.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.2)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.375, buckets) == pytest.approx(0.15)
    assert f"{histogram_quantile(0.5, {0.1: 0.0, float('inf'): 0.0})}" == "N/A"  # no observations: no value
    assert f"{histogram_quantile(0.5, {})}" == "N/A"
    assert histogram_quantile(0.99, {0.1: 5.0, float("inf"): 10.0}) == pytest.approx(0.1)  # past the last bound


def test_rates_and_segment_percentiles_from_the_sim(sim_url: str) -> None:
    bus = MetricsBus()
    bus.open_segment("c=1", "t")
    s = ServerMetricsSampler(sim_url, bus)
    first = _server(s.sample_once())
    assert first.kind == "vLLM" and f"{first.generation_tok_s}" == "N/A"  # no rate from one scrape
    with httpx.Client() as c:
        for _ in range(3):
            c.post(
                sim_url + "/v1/completions",
                json={"model": "llmsurge-sim", "prompt": "a b", "max_tokens": 20, "ignore_eos": True},
            )
    time.sleep(0.05)
    second = _server(s.sample_once())
    assert second.generation_tok_s > 0 and second.prompt_tok_s > 0
    assert second.ttft_p50_ms > 0  # requests since the segment began
    bus.open_segment("c=2", "t")
    third = _server(s.sample_once())
    assert f"{third.ttft_p50_ms}" == "N/A"  # a new segment starts with an empty delta
    s.close()
    assert "1" in s.summary()["segments"]


def test_dcgm_gpu_from_the_sim_moves_with_load(sim_url: str) -> None:
    s = DcgmSampler(sim_url + "/metrics")
    idle = s.sample()
    assert isinstance(idle, GpuSample) and idle.gpus[0].util == 0.0 and idle.gpus[0].mem_total_mib > 0
    fams = list(
        text_string_to_metric_families(
            '# TYPE DCGM_FI_DEV_GPU_UTIL gauge\nDCGM_FI_DEV_GPU_UTIL{gpu="0",modelName="H100"} 87\n'
            'DCGM_FI_DEV_GPU_UTIL{gpu="1",modelName="H100"} 12\n'
        )
    )
    rows = gpus_from_dcgm(fams)
    assert [(g.index, g.util) for g in rows] == [(0, 87.0), (1, 12.0)]
    s.close()


class FakeRocml:
    """The calls pyrsmi's rocml module documents, answering like one MI300X (and -1 for a failed reading)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        answers = {
            "smi_initialize": None,
            "smi_shutdown": None,
            "smi_get_device_count": 1,
            "smi_get_device_name": "AMD Instinct MI300X",
            "smi_get_device_utilization": 73,
            "smi_get_device_memory_used": 96 * 2**30,
            "smi_get_device_memory_total": 192 * 2**30,
            "smi_get_device_average_power": -1,
        }
        if name not in answers:
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            self.calls.append(name)
            return answers[name]

        return call


def test_rocm_sampler_at_the_pyrsmi_boundary() -> None:
    fake = FakeRocml()
    s = RocmSampler(rocml=fake)
    sample = s.sample()
    assert isinstance(sample, GpuSample)
    g = sample.gpus[0]
    assert g.name == "AMD Instinct MI300X" and g.util == 73.0
    assert g.mem_used_mib == 96 * 1024 and g.mem_total_mib == 192 * 1024
    assert f"{g.power_w}" == "N/A"  # -1 from ROCm SMI means "not available"
    s.close()
    assert fake.calls[0] == "smi_initialize" and "smi_shutdown" in fake.calls


def test_no_gpu_library_degrades_to_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "pyrsmi", None)
    reason = local_gpu_sampler()
    assert isinstance(reason, str)
    assert "nvidia-ml-py not installed" in reason and "pyrsmi not installed" in reason


def test_real_nvml_reads_the_gpus_this_machine_has() -> None:
    """NVML for real: a machine with an NVIDIA driver must give readings, one without must say why."""
    has_gpu = os.path.exists("/dev/nvidiactl")
    result = local_gpu_sampler()
    if has_gpu:
        assert isinstance(result, Sampler), result
        sample = result.sample()
        assert isinstance(sample, GpuSample) and sample.gpus and sample.gpus[0].mem_total_mib > 0
        result.close()
    else:
        assert isinstance(result, str) and "NVIDIA" in result


def test_server_without_metrics_and_broken_sampler() -> None:
    s = ServerMetricsSampler("http://127.0.0.1:9")  # nothing listens there
    out = s.sample_once()
    assert isinstance(out, Unavailable) and "127.0.0.1:9" in out.reason

    class Broken(Sampler):
        name = "broken"

        def sample(self) -> TelemetrySample:
            raise RuntimeError("library exploded")

    b = Broken().sample_once()
    assert b == Unavailable("RuntimeError: library exploded")


def test_host_sampler_reads_cpu_of_given_processes() -> None:
    import os

    h = HostSampler(lambda: [os.getpid()])
    h.sample()  # the first reading of a process only sets its baseline
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass  # burn a little CPU
    s = h.sample()
    assert isinstance(s, HostSample) and s.cpu_count >= 1 and s.workers_cpu_percent > 0
    assert 0 <= s.mem_percent <= 100


@pytest.mark.slow
def test_telemetry_recorded_in_results(sim_url: str, tmp_path: Any) -> None:
    import asyncio
    import json

    from rich.console import Console

    from llmsurge.engine.session import RunConfig, RunSession
    from llmsurge.headless import run_headless
    from llmsurge.presets import find_preset

    sc = find_preset("max-throughput").with_overrides(concurrency=4, duration=2.5, output_tokens=16)
    session = RunSession(RunConfig(scenario=sc, url=sim_url, workers=1, output=tmp_path / "r", calibrate=False))
    assert asyncio.run(run_headless(session, Console(file=open(os.devnull, "w")))) == 0  # noqa: SIM115
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "r" / "telemetry.jsonl").read_text().splitlines()]
    assert {x["source"] for x in lines} == {"gpu", "server", "host"}  # the simulated GPU (DCGM names) too
    gpu = [x for x in lines if x["source"] == "gpu"]
    assert gpu[-1].get("gpus"), gpu[-1]
    assert gpu[-1]["gpus"][0]["name"] == "Simulated GPU 80GB" and "DCGM" in gpu[-1]["backend"]
    server = summary["telemetry"]["server"]
    assert server["available"] and server["segments"]["1"]["peak_running"] > 0
    assert "server" in summary["segments"][0]["telemetry"]


def test_each_gpu_carries_its_segments_mean_and_peak() -> None:
    """Every reading carries the current segment's mean and peak utilization and power (the pane shows them beside
    the current values); a new segment starts them afresh."""
    from llmsurge.telemetry.gpu import GpuSampler
    from llmsurge.telemetry.samples import GpuReading

    reads = [(40.0, 300.0), (80.0, 500.0), (60.0, NA), (10.0, 100.0)]

    class Scripted(GpuSampler):
        source = "scripted"

        def read_gpus(self) -> list[GpuReading]:
            util, power = reads.pop(0)
            return [GpuReading(0, "g", util=util, power_w=power), GpuReading(1, "h", util=util / 2)]

    bus = MetricsBus()
    bus.open_segment("c=1", "t")
    s = Scripted(bus)
    for _ in range(3):
        s.sample_once()
    assert isinstance(s.last, GpuSample)
    g, h = s.last.gpus
    assert (g.util_mean, g.util_peak, g.power_mean, g.power_peak) == (60.0, 80.0, 400.0, 500.0)
    assert (h.util_mean, h.util_peak) == (30.0, 40.0) and h.power_mean != h.power_mean  # no power read: NA
    bus.open_segment("c=2", "t")
    s.sample_once()
    assert isinstance(s.last, GpuSample)
    assert (s.last.gpus[0].util_mean, s.last.gpus[0].util_peak, s.last.gpus[0].power_peak) == (10.0, 10.0, 100.0)
