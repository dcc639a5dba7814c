"""How close is decode to the hardware's limit? The roofline of a decode step, done right.

Each decode step of a batch of B sequences reads every weight once (the weights are not "cached": they stream from
memory every step) plus each sequence's KV cache, and does about 2 × parameters FLOPs per token. So::

    aggregate decode tok/s ≤ B × bandwidth / (weight bytes + B × KV bytes per sequence)     (memory)
    aggregate decode tok/s ≤ peak FLOPS / (2 × parameters)                                  (compute)

and one stream's ceiling is the aggregate over B. Every input says where it came from (the server, the GPU's
identity in a table of common accelerators, or a flag); a ceiling that lacks an input is not shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmsurge.metrics.model import Level

GB = 1e9
TERA = 1e12


@dataclass(frozen=True)
class Accelerator:
    """Memory bandwidth (bytes/s) and dense FP16/BF16 tensor peak (FLOP/s) of one device, from its datasheet."""

    name: str
    bandwidth: float
    peak_flops: float


def _acc(name: str, gbs: float, tflops: float) -> Accelerator:
    return Accelerator(name, gbs * GB, tflops * TERA)


ACCELERATORS: tuple[tuple[str, Accelerator], ...] = (
    (r"H200", _acc("NVIDIA H200", 4800, 989)),
    (r"GH200", _acc("NVIDIA GH200", 4000, 989)),
    (r"H100.*(PCIe|PCI-E)", _acc("NVIDIA H100 PCIe", 2000, 756)),
    (r"H100.*NVL", _acc("NVIDIA H100 NVL", 3900, 835)),
    (r"H100", _acc("NVIDIA H100 SXM", 3350, 989)),
    (r"H800", _acc("NVIDIA H800", 3350, 989)),
    (r"B200", _acc("NVIDIA B200", 8000, 2250)),
    (r"A100.*80", _acc("NVIDIA A100 80GB", 2039, 312)),
    (r"A100", _acc("NVIDIA A100 40GB", 1555, 312)),
    (r"L40S", _acc("NVIDIA L40S", 864, 362)),
    (r"L40", _acc("NVIDIA L40", 864, 181)),
    (r"L4\b", _acc("NVIDIA L4", 300, 121)),
    (r"A10G", _acc("NVIDIA A10G", 600, 125)),
    (r"A10\b", _acc("NVIDIA A10", 600, 125)),
    (r"RTX 5090", _acc("NVIDIA RTX 5090", 1792, 209)),
    (r"RTX 5080", _acc("NVIDIA RTX 5080", 960, 113)),
    (r"RTX 5070 Ti", _acc("NVIDIA RTX 5070 Ti", 896, 88)),
    (r"RTX 5070", _acc("NVIDIA RTX 5070", 672, 62)),
    (r"RTX 4090", _acc("NVIDIA RTX 4090", 1008, 165)),
    (r"RTX 4080", _acc("NVIDIA RTX 4080", 717, 97)),
    (r"RTX 3090", _acc("NVIDIA RTX 3090", 936, 71)),
    (r"RTX 6000 Ada", _acc("NVIDIA RTX 6000 Ada", 960, 365)),
    (r"MI300X", _acc("AMD Instinct MI300X", 5300, 1307)),
    (r"MI325X", _acc("AMD Instinct MI325X", 6000, 1307)),
    (r"MI250", _acc("AMD Instinct MI250X", 3277, 383)),
    (r"Ryzen AI Max|Strix Halo|Radeon 8060S", _acc("AMD Ryzen AI Max+ 395 (unified LPDDR5X)", 256, 59)),
    (r"M4 Max", _acc("Apple M4 Max (unified)", 546, 34)),
    (r"M3 Max", _acc("Apple M3 Max (unified)", 400, 28)),
    (r"M2 Ultra", _acc("Apple M2 Ultra (unified)", 800, 27)),
    (r"M2 Max", _acc("Apple M2 Max (unified)", 400, 13.6)),
)


def identify(device_name: str) -> Accelerator | None:
    """The accelerator a device name (NVML's, ROCm's, DCGM's ``modelName``) is, when the table knows it."""
    for pattern, acc in ACCELERATORS:
        if re.search(pattern, device_name, re.I):
            return acc
    return None


@dataclass(frozen=True)
class RooflineInputs:
    """What the arithmetic needs, each with where it came from ('' when unknown)."""

    weight_bytes: float | None = None
    params: float | None = None
    bandwidth: float | None = None  # bytes/s
    peak_flops: float | None = None
    kv_bytes_per_token: float | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def merged(self, other: RooflineInputs) -> RooflineInputs:
        """These inputs, with ``other``'s filling what these lack (the first given wins: flags before discovery)."""
        values = {
            k: getattr(self, k) if getattr(self, k) is not None else getattr(other, k)
            for k in ("weight_bytes", "params", "bandwidth", "peak_flops", "kv_bytes_per_token")
        }
        sources = {**other.sources, **{k: v for k, v in self.sources.items() if getattr(self, k) is not None}}
        return RooflineInputs(**values, sources=sources)

    def with_device(self, device_name: str) -> RooflineInputs:
        """Bandwidth and peak FLOPS from the device's identity, where not given already."""
        acc = identify(device_name) if device_name else None
        if acc is None:
            return self
        found = RooflineInputs(
            bandwidth=acc.bandwidth,
            peak_flops=acc.peak_flops,
            sources={"bandwidth": f"{acc.name} datasheet", "peak_flops": f"{acc.name} datasheet"},
        )
        return self.merged(found)

    def missing(self) -> list[str]:
        """What the memory ceiling still needs."""
        need = {"weight_bytes": "--model-bytes", "bandwidth": "--mem-bandwidth"}
        return [flag for k, flag in need.items() if getattr(self, k) is None]

    def to_json(self) -> dict[str, object]:
        """The inputs and their sources, for ``summary.json``."""
        out: dict[str, object] = {}
        for k in ("weight_bytes", "params", "bandwidth", "peak_flops", "kv_bytes_per_token"):
            v = getattr(self, k)
            out[k] = None if v is None else {"value": v, "source": self.sources.get(k, "")}
        return out


def from_llamacpp_meta(meta: dict[str, object]) -> RooflineInputs:
    """Weight bytes and parameters from llama.cpp's ``/v1/models`` ``meta`` (``size``, ``n_params``)."""

    def positive(v: object) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    size, params = positive(meta.get("size")), positive(meta.get("n_params"))
    where = "the server (llama.cpp /v1/models meta)"
    sources = {k: where for k, v in (("weight_bytes", size), ("params", params)) if v is not None}
    return RooflineInputs(weight_bytes=size, params=params, sources=sources)


@dataclass(frozen=True)
class Ceiling:
    """The decode ceilings at one batch size (tok/s; None where an input is missing) and which one binds."""

    batch: float
    context_tokens: float
    memory_aggregate: float | None
    compute_aggregate: float | None

    @property
    def aggregate(self) -> float | None:
        """The lower of the two ceilings (None when neither is known)."""
        known = [v for v in (self.memory_aggregate, self.compute_aggregate) if v is not None]
        return min(known) if known else None

    @property
    def per_stream(self) -> float | None:
        """One stream's share of the aggregate ceiling."""
        agg = self.aggregate
        return None if agg is None else agg / max(self.batch, 1.0)

    @property
    def bound(self) -> str:
        """``memory`` or ``compute``: which ceiling binds ('' when unknown)."""
        if self.memory_aggregate is None:
            return "compute" if self.compute_aggregate is not None else ""
        if self.compute_aggregate is None or self.memory_aggregate <= self.compute_aggregate:
            return "memory"
        return "compute"


def ceiling(inputs: RooflineInputs, batch: float, context_tokens: float = 0.0) -> Ceiling:
    """The ceilings for a decode batch of ``batch`` sequences of ``context_tokens`` tokens each (the KV they
    read each step; left out when its bytes per token are unknown)."""
    b = max(batch, 1.0)
    memory = None
    if inputs.weight_bytes and inputs.bandwidth:
        kv = (inputs.kv_bytes_per_token or 0.0) * context_tokens
        memory = b * inputs.bandwidth / (inputs.weight_bytes + b * kv)
    compute = inputs.peak_flops / (2.0 * inputs.params) if inputs.peak_flops and inputs.params else None
    return Ceiling(b, context_tokens, memory, compute)


def segment_roofline(inputs: RooflineInputs, seg: Level) -> dict[str, object] | None:
    """A segment's ``roofline`` block from its summary keys: the effective decode batch is the aggregate output
    rate over one stream's decode rate (1 / median TPOT), never more than the requests in flight on average (the
    median can flatter one stream); context is the mean prompt plus half the mean output."""
    tpot = seg.value("median_tpot_ms") or 0.0
    aggregate = seg.output_throughput or 0.0
    if not tpot or not aggregate or not seg.completed:
        return None
    per_stream = 1000.0 / tpot
    batch = max(1.0, aggregate / per_stream)
    rate = seg.request_throughput if seg.request_throughput == seg.request_throughput else None  # NaN: none
    in_flight = (rate or 0.0) * (seg.value("mean_e2el_ms") or 0.0) / 1000.0
    if in_flight >= 1.0:  # Little's law: a batch is never larger than the requests in flight on average
        batch = min(batch, in_flight)
    context = (seg.value("mean_input_tokens") or 0.0) + (seg.value("mean_output_tokens") or 0.0) / 2
    c = ceiling(inputs, batch, context)
    if c.aggregate is None:
        return None
    return {
        "batch": batch,
        "context_tokens": context,
        "ceiling_per_stream_tok_s": c.per_stream,
        "ceiling_aggregate_tok_s": c.aggregate,
        "memory_ceiling_aggregate_tok_s": c.memory_aggregate,
        "compute_ceiling_aggregate_tok_s": c.compute_aggregate,
        "bound": c.bound,
        "measured_per_stream_tok_s": per_stream,
        "measured_aggregate_tok_s": aggregate,
        "fraction": per_stream / c.per_stream if c.per_stream else None,
    }


def describe(per_stream: float, c: Ceiling) -> str:
    """``decode 84 tok/s per stream = 62% of the 135 tok/s memory ceiling``."""
    top = c.per_stream
    if not top:
        return ""
    return (
        f"decode {per_stream:,.0f} tok/s per stream = {per_stream / top:.0%} of the {top:,.0f} tok/s {c.bound} ceiling"
    )


__all__ = ["Accelerator", "Ceiling", "RooflineInputs", "ceiling", "describe", "identify"]
