"""Typed telemetry samples: what each source reports, shown by the panes and written to ``telemetry.jsonl``.

A reading a source cannot give is :data:`~llmsurge.telemetry.base.NA` (formats as ``N/A``, is ``nan`` in
arithmetic), so panes never branch on "is this metric available"; a source that cannot read at all gives
:class:`Unavailable` with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from llmsurge.telemetry.na import NA


@dataclass(frozen=True)
class Unavailable:
    """The source could not be read; ``reason`` says why (the pane shows it)."""

    reason: str
    available: ClassVar[bool] = False


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment."""

    index: int | str
    name: str
    util: float = NA  # percent
    mem_util: float = NA  # percent of time the memory was read or written (NVML)
    dram_active: float = NA  # fraction of cycles the memory interface was busy (DCGM_FI_PROF_DRAM_ACTIVE)
    mem_used_mib: float = NA
    mem_total_mib: float = NA
    power_w: float = NA
    power_limit_w: float = NA
    temp_c: float = NA
    sm_clock_mhz: float = NA
    mem_clock_mhz: float = NA
    util_history: tuple[float, ...] = ()
    util_mean: float = NA  # over the current segment's readings (the pane shows them beside the current value)
    util_peak: float = NA
    power_mean: float = NA
    power_peak: float = NA


@dataclass(frozen=True)
class GpuSample:
    """Every GPU a backend (NVML, ROCm SMI, a DCGM exporter) sees."""

    backend: str
    gpus: tuple[GpuReading, ...]
    available: ClassVar[bool] = True


@dataclass(frozen=True)
class ServerPhase:
    """One phase of a request on the server's own clock over the current segment (histogram deltas): its mean
    (exact: ``_sum``/``_count``) and percentiles (interpolated inside the buckets)."""

    count: float
    mean_ms: float
    p50_ms: float = NA
    p99_ms: float = NA


PHASES = ("queue", "prefill", "ttft", "decode")
"""The phases reconciled with the client's TTFT: queue + prefill inside the engine; the server's TTFT adds its HTTP
front end (tokenizing, detokenizing) from the request's arrival."""


@dataclass(frozen=True)
class ServerSample:
    """The server's own view from its ``/metrics``. Rates are over the last :attr:`rate_window` seconds."""

    kind: str
    running: float = NA
    waiting: float = NA
    kv_cache: float = NA  # fraction
    prefix_hit_rate: float = NA  # fraction
    generation_tok_s: float = NA
    prompt_tok_s: float = NA
    rate_window: float = NA  # seconds the two rates above are averaged over
    rate_source: str = ""  # how the rates were found ("counter deltas", the server's own average …)
    preemptions_per_s: float = NA
    preemptions_total: float = NA
    generation_tokens_total: float = NA
    prompt_tokens_total: float = NA
    ttft_p50_ms: float = NA
    ttft_p99_ms: float = NA
    ttft_p99_bound_ms: float = NA  # the upper bound of the histogram bucket the p99 lies in (it is interpolated)
    itl_p50_ms: float = NA
    itl_p99_ms: float = NA
    e2e_p50_ms: float = NA
    e2e_p99_ms: float = NA
    phases: dict[str, ServerPhase] = field(default_factory=dict)
    """:data:`PHASES` the server exports, over the current segment (vLLM: ``request_queue_time_seconds`` …)."""
    kv: KvFacts | None = None
    """What the KV forecast reads (:mod:`llmsurge.metrics.kv`): the cache's size and the segment's gauges."""
    available: ClassVar[bool] = True


@dataclass(frozen=True)
class KvFacts:
    """The KV cache as the server describes it, and its usage over the current segment so far."""

    capacity_tokens: float | None = None  # vLLM ``cache_config_info``, SGLang ``max_total_num_tokens``
    block_size: int | None = None  # tokens a cache block holds (vLLM), where the cache is paged
    slots: int | None = None  # llama.cpp ``/props`` ``total_slots``
    slot_context: int | None = None  # llama.cpp: tokens a slot holds
    segment_running: float | None = None  # mean of the running gauge over this segment's readings
    segment_usage: float | None = None  # mean KV usage (fraction) over the same readings


@dataclass(frozen=True)
class HostSample:
    """The machine's CPU and memory, and our own processes' CPU (percent of one core each)."""

    cpu_percent: float
    cpu_count: int
    mem_percent: float
    mem_used_gib: float
    workers_cpu_percent: float = NA
    busiest_worker_cpu_percent: float = NA
    ui_cpu_percent: float = NA
    available: ClassVar[bool] = True


TelemetrySample = GpuSample | ServerSample | HostSample | Unavailable


def sample_json(sample: TelemetrySample) -> dict[str, object]:
    """A sample as one ``telemetry.jsonl`` object (N/A becomes null when written)."""
    out: dict[str, object] = {"available": sample.available}
    out.update(asdict(sample))
    return out
