"""Choosing telemetry sources for a run, and saying which exist (``llmsurge check``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from llmsurge.metrics.bus import MetricsBus
from llmsurge.net import METRICS_CAP, Target, fetch, fetch_sync, tls_context
from llmsurge.telemetry.base import Sampler, TelemetrySink
from llmsurge.telemetry.gpu import GpuSampler
from llmsurge.telemetry.samples import TelemetrySample, Unavailable


class UnavailableSource(Sampler):
    """A source that could not start: it keeps saying why, so the pane shows it."""

    def __init__(
        self, name: str, reason: str, bus: MetricsBus | None = None, writer: TelemetrySink | None = None
    ) -> None:
        super().__init__(bus, writer)
        self.name = name
        self.reason = reason
        self.interval = 5.0

    def sample(self) -> TelemetrySample:
        return Unavailable(self.reason)


@dataclass(frozen=True)
class TelemetryPlan:
    """What the run's samplers need to know."""

    target: Target
    simulated: bool
    gpu_metrics_url: str | None
    worker_pids: Callable[[], list[int]]


def local_gpu_sampler(bus: MetricsBus | None = None, writer: TelemetrySink | None = None) -> GpuSampler | str:
    """NVML, else pyrsmi; or the reason neither works here."""
    reasons = []
    try:
        from llmsurge.telemetry.gpu import NvmlSampler

        s = NvmlSampler(bus, writer)
        if s.handles:
            return s
        reasons.append("NVML sees no NVIDIA GPU")
    except ImportError:
        reasons.append("nvidia-ml-py not installed (pip install 'llmsurge[nvidia]')")
    except Exception as exc:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded …
        reasons.append(f"no NVIDIA driver ({type(exc).__name__})")
    try:
        from llmsurge.telemetry.gpu import RocmSampler

        r = RocmSampler(bus, writer)
        if r.count:
            return r
        reasons.append("ROCm SMI sees no AMD GPU")
    except ImportError:
        reasons.append("pyrsmi not installed (pip install 'llmsurge[amd]')")
    except Exception as exc:
        reasons.append(f"no AMD ROCm ({type(exc).__name__})")
    return "; ".join(reasons)


def _serves_dcgm(url: str, headers: dict[str, str]) -> bool:
    """Whether ``url`` carries DCGM exporter GPU metrics (the simulated server does); bounded like every probe."""
    import httpx

    with httpx.Client(headers=headers, verify=tls_context([url])) as client:
        ans = fetch_sync(client, url, deadline=2.0, cap=METRICS_CAP)
    return ans.ok and "DCGM_FI_DEV_GPU_UTIL" in ans.text


def make_samplers(plan: TelemetryPlan, bus: MetricsBus, writer: TelemetrySink | None) -> list[Sampler]:
    """The run's samplers: GPU (simulated/remote DCGM or local), server /metrics, host/client. Blocking (NVML
    start-up, one HTTP request): call it off the UI's loop."""
    from llmsurge.telemetry.gpu import DcgmSampler
    from llmsurge.telemetry.host import HostSampler
    from llmsurge.telemetry.prometheus import ServerMetricsSampler

    target = plan.target
    samplers: list[Sampler] = []
    if plan.gpu_metrics_url:
        samplers.append(DcgmSampler(plan.gpu_metrics_url, bus, writer))
    elif plan.simulated:
        samplers.append(
            DcgmSampler(
                target.base_url + "/metrics", bus, writer, label="simulated GPU (DCGM names, from the simulated server)"
            )
        )
    else:
        local = local_gpu_sampler(bus, writer)
        if isinstance(local, Sampler):
            samplers.append(local)
        elif _serves_dcgm(target.base_url + "/metrics", target.headers()):
            samplers.append(
                DcgmSampler(target.base_url + "/metrics", bus, writer, label="DCGM metrics on the server's /metrics")
            )
        else:
            samplers.append(
                UnavailableSource("gpu", f"{local}; for a GPU on another machine use --gpu-metrics-url", bus, writer)
            )
    samplers.append(ServerMetricsSampler(target.base_url, bus, writer, headers=target.headers()))
    samplers.append(HostSampler(plan.worker_pids, bus, writer))
    return samplers


async def probe_sources(client: httpx.AsyncClient, target: Target) -> dict[str, str]:
    """source → 'available: …' or 'not available: why'."""
    from llmsurge.telemetry.prometheus import parse_metrics, server_kind

    out: dict[str, str] = {}
    ans = await fetch(client, target.base_url + "/metrics", target.headers(), cap=METRICS_CAP)
    if not ans.ok:
        out["server /metrics"] = f"not available: {ans.why()}"
    else:
        try:
            fams = parse_metrics(ans.text)
        except ValueError as exc:
            fams = {}
            out["server /metrics"] = f"not available: not Prometheus text ({exc})"
        kind = server_kind(fams)
        if "server /metrics" not in out:
            out["server /metrics"] = (
                f"available ({kind}, {len(fams)} metrics)"
                if kind != "unknown"
                else "not available: no known server metrics in /metrics"
            )
        if "DCGM_FI_DEV_GPU_UTIL" in fams:
            out["gpu"] = "available (DCGM metrics on the server's /metrics)"
    if "gpu" not in out:
        local = local_gpu_sampler()
        if isinstance(local, GpuSampler):
            out["gpu"] = f"available ({local.source}, {len(local.read_gpus())} GPU)"
            local.close()
        else:
            out["gpu"] = f"not available: {local}"
    try:
        import psutil

        out["host"] = f"available (psutil, {psutil.cpu_count()} CPUs)"
    except ImportError:
        out["host"] = "not available: psutil not installed"
    return out
