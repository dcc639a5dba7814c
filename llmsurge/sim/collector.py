"""The simulated server's ``/metrics``: the engine's counters, gauges and histograms under vLLM's names, its KV
cache's size as vLLM's ``cache_config_info``, and GPU gauges under the DCGM exporter's names, derived from the load
so the demo's GPU pane moves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from llmsurge.sim.prefix_cache import BLOCK_TOKENS

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer


class SimCollector(Collector):
    """Exports the engine's counters with vLLM's names, and GPU gauges with DCGM exporter's names."""

    def __init__(self, server: SimServer) -> None:
        self.server = server

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        s = self.server
        e = s.engine
        labels = ["engine", "model_name"]
        lv = ["0", s.config.model]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(lv, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(lv, value)
            return c

        def hist(name: str, doc: str, h: object) -> HistogramMetricFamily:
            from llmsurge.sim.model import Histogram

            assert isinstance(h, Histogram)
            m = HistogramMetricFamily(name, doc, labels=labels)
            m.add_metric(lv, h.cumulative(), h.total)
            return m

        yield gauge("vllm:num_requests_running", "Number of requests in model execution batches.", len(e.running))
        yield gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", len(e.waiting))
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage)
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=["engine", "block_size", "num_gpu_blocks", "kv_cache_size_tokens", "enable_prefix_caching"],
        )
        cap = e.timing.kv_capacity_tokens
        info.add_metric(["0", str(BLOCK_TOKENS), str(cap // BLOCK_TOKENS), str(cap), "True"], 1.0)
        yield info
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", e.prompt_tokens_total)
        yield counter("vllm:generation_tokens", "Number of generation tokens processed.", e.generation_tokens_total)
        yield counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            e.prefix_cache.queries,
        )
        yield counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", e.prefix_cache.hits
        )
        yield counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", e.preemptions_total)
        yield hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", e.ttft)
        yield hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", e.itl)
        yield hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", e.e2e)
        yield hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", e.queue)
        yield hist(
            "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", e.prefill
        )
        yield hist("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", e.decode)
        # A pretend GPU whose load follows the batch.
        t = e.timing
        busy = min(1.0, len(e.running) / max(1, min(t.max_seqs, 256)) * 1.6) if e.running else 0.0
        glabels = ["gpu", "UUID", "device", "modelName", "Hostname"]
        gv = ["0", "GPU-00000000-sim", "nvidia0", s.config.gpu_name, "llmsurge-sim"]
        fb_total = 81559.0
        fb_used = 2400.0 + 60000.0 * e.kv_usage + (18000.0 if e.requests_total else 0.0)
        for name, doc, value in (
            ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", round(100.0 * busy)),
            ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", round(fb_used)),
            ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", round(fb_total - fb_used)),
            ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", round(70.0 + 550.0 * busy, 1)),
            ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", round(34.0 + 40.0 * busy)),
            ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", 1980 if busy else 345),
            ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", 2619 if busy else 1593),
            (
                "DCGM_FI_PROF_DRAM_ACTIVE",
                "Ratio of cycles the device memory interface is active.",
                round(0.8 * busy, 3),
            ),
        ):
            g = GaugeMetricFamily(name, doc, labels=glabels)
            g.add_metric(gv, value)
            yield g
