"""Host and client telemetry through psutil: the machine's CPU and memory, and our own processes' CPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psutil

from llmsurge.metrics.bus import MetricsBus
from llmsurge.telemetry.base import NA, Sampler, TelemetrySink
from llmsurge.telemetry.samples import HostSample, TelemetrySample, Unavailable


class HostSampler(Sampler):
    """CPU and memory of the machine; CPU of the worker processes (per core) and of the UI process."""

    name = "host"

    def __init__(
        self,
        worker_pids: Callable[[], list[int]],
        bus: MetricsBus | None = None,
        writer: TelemetrySink | None = None,
    ) -> None:
        super().__init__(bus, writer)
        import psutil

        self.psutil = psutil
        self.worker_pids = worker_pids
        self._procs: dict[int, Any] = {}
        self.me = psutil.Process(os.getpid())
        self.me.cpu_percent(None)
        psutil.cpu_percent(None)

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = self.psutil.Process(pid)
            p.cpu_percent(None)  # the first call only sets the baseline
            self._procs[pid] = p
        return p

    def sample(self) -> TelemetrySample:
        ps = self.psutil
        try:
            cpu = ps.cpu_percent(None)
            mem = ps.virtual_memory()
        except (OSError, RuntimeError) as exc:
            return Unavailable(f"psutil could not read this machine: {exc}")
        per_worker = []
        for pid in self.worker_pids():
            try:
                per_worker.append(self._proc(pid).cpu_percent(None))
            except (ps.NoSuchProcess, ps.AccessDenied):
                continue
        return HostSample(
            cpu_percent=float(cpu),
            cpu_count=ps.cpu_count() or 0,
            mem_percent=float(mem.percent),
            mem_used_gib=(mem.total - mem.available) / 2**30,
            workers_cpu_percent=sum(per_worker) if per_worker else NA,
            busiest_worker_cpu_percent=max(per_worker) if per_worker else NA,
            ui_cpu_percent=self.me.cpu_percent(None),
        )

    def aggregate_values(self, sample: HostSample) -> dict[str, float]:
        return {
            "cpu_percent": sample.cpu_percent,
            "mem_percent": sample.mem_percent,
            "workers_cpu_percent": sample.workers_cpu_percent,
        }
