"""GPU samplers: NVIDIA through NVML (``pynvml`` from nvidia-ml-py), AMD through pyrsmi, and a remote GPU
through a DCGM exporter's Prometheus endpoint. All produce the same sample shape for the GPU pane."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from llmsurge.metrics.bus import MetricsBus
from llmsurge.telemetry.base import NA, Sampler, TelemetrySink, na
from llmsurge.telemetry.samples import GpuReading, GpuSample, TelemetrySample, Unavailable

_T = TypeVar("_T")

HISTORY = 30


class _Window:
    """One GPU's utilization and power over the current segment: mean and peak."""

    __slots__ = ("n_power", "n_util", "power_peak", "power_sum", "util_peak", "util_sum")

    def __init__(self) -> None:
        self.util_sum = self.power_sum = 0.0
        self.n_util = self.n_power = 0
        self.util_peak: float = NA
        self.power_peak: float = NA

    def add(self, util: float, power: float) -> None:
        if util == util:
            self.util_sum += util
            self.n_util += 1
            self.util_peak = util if self.util_peak != self.util_peak else max(self.util_peak, util)
        if power == power:
            self.power_sum += power
            self.n_power += 1
            self.power_peak = power if self.power_peak != self.power_peak else max(self.power_peak, power)

    def onto(self, g: GpuReading) -> GpuReading:
        """``g`` with this segment's mean and peak."""
        return replace(
            g,
            util_mean=self.util_sum / self.n_util if self.n_util else NA,
            util_peak=self.util_peak,
            power_mean=self.power_sum / self.n_power if self.n_power else NA,
            power_peak=self.power_peak,
        )


class GpuSampler(Sampler):
    """Common parts: the per-GPU utilization history and the fields summarised per segment."""

    name = "gpu"
    source = ""

    def __init__(self, bus: MetricsBus | None = None, writer: TelemetrySink | None = None) -> None:
        super().__init__(bus, writer)
        self._history: dict[int | str, deque[float]] = {}
        self._window: tuple[int, dict[int | str, _Window]] = (-1, {})

    def read_gpus(self) -> list[GpuReading]:
        """One reading per GPU (subclasses)."""
        raise NotImplementedError

    def sample(self) -> TelemetrySample:
        gpus = self.read_gpus()
        if not gpus:
            return Unavailable(f"{self.source}: no GPU found")
        segment = self.bus.current_segment() if self.bus is not None else 0
        if self._window[0] != segment:  # a new segment: its mean and peak start afresh
            self._window = (segment, {})
        windows = self._window[1]
        out = []
        for g in gpus:
            h = self._history.setdefault(g.index, deque(maxlen=HISTORY))
            h.append(g.util)
            w = windows.setdefault(g.index, _Window())
            w.add(g.util, g.power_w)
            out.append(w.onto(replace(g, util_history=tuple(h))))
        return GpuSample(self.source, tuple(out))

    def aggregate_values(self, sample: GpuSample) -> dict[str, float]:
        gpus = sample.gpus
        if not gpus:
            return {}
        util = [g.util for g in gpus if g.util == g.util]
        mem = [g.mem_used_mib for g in gpus if g.mem_used_mib == g.mem_used_mib]
        power = [g.power_w for g in gpus if g.power_w == g.power_w]
        dram = [g.dram_active for g in gpus if g.dram_active == g.dram_active]
        out: dict[str, float] = {}
        if util:
            out["gpu_util"] = sum(util) / len(util)
        if dram:
            out["gpu_dram_active"] = sum(dram) / len(dram)
        if mem:
            out["gpu_mem_used_mib"] = sum(mem)
        if power:
            out["gpu_power_w"] = sum(power)
        return out


class NvmlSampler(GpuSampler):
    """Local NVIDIA GPUs through NVML."""

    source = "NVML"

    def __init__(self, bus: MetricsBus | None = None, writer: TelemetrySink | None = None) -> None:
        super().__init__(bus, writer)
        import pynvml  # raises ImportError when nvidia-ml-py is missing

        self.nvml = pynvml
        pynvml.nvmlInit()  # raises NVMLError without a driver
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self.names = [self._str(pynvml.nvmlDeviceGetName(h)) for h in self.handles]

    @staticmethod
    def _str(v: object) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def _get(self, fn: Callable[..., _T], *args: object) -> _T | None:
        try:
            return fn(*args)
        except self.nvml.NVMLError:
            return None

    def read_gpus(self) -> list[GpuReading]:
        n = self.nvml
        out = []
        for i, h in enumerate(self.handles):
            util = self._get(n.nvmlDeviceGetUtilizationRates, h)
            mem = self._get(n.nvmlDeviceGetMemoryInfo, h)
            power = self._get(n.nvmlDeviceGetPowerUsage, h)
            limit = self._get(n.nvmlDeviceGetEnforcedPowerLimit, h)
            out.append(
                GpuReading(
                    index=i,
                    name=self.names[i],
                    util=na(util.gpu if util is not None else None),
                    mem_util=na(util.memory if util is not None else None),
                    mem_used_mib=na(mem.used / 2**20 if mem is not None else None),
                    mem_total_mib=na(mem.total / 2**20 if mem is not None else None),
                    power_w=na(power / 1000.0 if power is not None else None),
                    power_limit_w=na(limit / 1000.0 if limit is not None else None),
                    temp_c=na(self._get(n.nvmlDeviceGetTemperature, h, n.NVML_TEMPERATURE_GPU)),
                    sm_clock_mhz=na(self._get(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_SM)),
                    mem_clock_mhz=na(self._get(n.nvmlDeviceGetClockInfo, h, n.NVML_CLOCK_MEM)),
                )
            )
        return out

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


class RocmSampler(GpuSampler):
    """Local AMD GPUs through pyrsmi's ``rocml`` (the calls its documentation names; -1 means unavailable)."""

    source = "ROCm SMI"

    def __init__(self, bus: MetricsBus | None = None, writer: TelemetrySink | None = None, rocml: Any = None) -> None:
        super().__init__(bus, writer)
        if rocml is None:
            from pyrsmi import rocml as _rocml  # raises ImportError when pyrsmi is missing

            rocml = _rocml
        self.rocml = rocml
        rocml.smi_initialize()
        self.count = int(rocml.smi_get_device_count())
        self.names = [str(rocml.smi_get_device_name(i)) for i in range(self.count)]

    def read_gpus(self) -> list[GpuReading]:
        r = self.rocml
        out = []
        for i in range(self.count):
            used = na(r.smi_get_device_memory_used(i))
            total = na(r.smi_get_device_memory_total(i))
            out.append(
                GpuReading(
                    index=i,
                    name=self.names[i],
                    util=na(r.smi_get_device_utilization(i)),
                    mem_used_mib=used / 2**20 if used == used else NA,
                    mem_total_mib=total / 2**20 if total == total else NA,
                    power_w=na(r.smi_get_device_average_power(i)),
                )
            )
        return out

    def close(self) -> None:
        try:
            self.rocml.smi_shutdown()
        except Exception:
            pass


DCGM_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "mem_used_mib",
    "DCGM_FI_DEV_FB_FREE": "mem_free_mib",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
    "DCGM_FI_DEV_MEM_CLOCK": "mem_clock_mhz",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": "power_limit_w",
    "DCGM_FI_PROF_DRAM_ACTIVE": "dram_active",
}


def gpus_from_dcgm(families: list[Any]) -> list[GpuReading]:
    """GPU readings from parsed DCGM exporter families (one per ``gpu`` label)."""
    gpus: dict[str, dict[str, Any]] = {}
    for fam in families:
        field = DCGM_FIELDS.get(fam.name)
        if field is None:
            continue
        for s in fam.samples:
            idx = s.labels.get("gpu", "0")
            g = gpus.setdefault(
                idx, {"index": int(idx) if idx.isdigit() else idx, "name": s.labels.get("modelName", "GPU")}
            )
            g[field] = float(s.value)
    out = []
    for g in gpus.values():
        free = g.pop("mem_free_mib", None)
        if "mem_used_mib" in g and free is not None:
            g["mem_total_mib"] = g["mem_used_mib"] + free
        out.append(GpuReading(**g))
    return sorted(out, key=lambda g: str(g.index))


class DcgmSampler(GpuSampler):
    """A GPU on another machine, read from a DCGM exporter's ``/metrics`` (``--gpu-metrics-url``)."""

    source = "DCGM exporter"

    def __init__(
        self, url: str, bus: MetricsBus | None = None, writer: TelemetrySink | None = None, label: str = ""
    ) -> None:
        super().__init__(bus, writer)
        from llmsurge.telemetry.prometheus import MetricsFetcher

        self.fetcher = MetricsFetcher(url)
        self.source = label or f"DCGM exporter {url}"

    def read_gpus(self) -> list[GpuReading]:
        families = self.fetcher.fetch()
        gpus = gpus_from_dcgm(families)
        if not gpus:
            raise LookupError(f"no DCGM_FI_DEV_* metrics at {self.fetcher.url}")
        return gpus

    def close(self) -> None:
        self.fetcher.close()
