"""GPU, host/client and server-metrics panes. Each shows plainly why it is empty when it has no data."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.snapshot import Snapshot
from llmsurge.telemetry.samples import GpuSample, HostSample, ServerSample, Unavailable
from llmsurge.widgets.format import bar, ms, num
from llmsurge.widgets.roles import RoleStyles

NOT_EXPORTED = "not exported by the server"


class TelemetryPane(RoleStyles, Static):
    """Base: picks its source from ``snap.telemetry`` and renders it or its empty state."""

    source = ""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        sample = snap.telemetry.get(self.source)
        key = (id(sample), snap.stats_version, snap.client)
        if key == getattr(self, "_key", None):
            return  # nothing new to draw
        self._key = key
        if sample is None:
            self.update(Text("waiting for the first sample", style=self.role("muted")))
        elif isinstance(sample, Unavailable):
            self.update(Text(f"not available: {sample.reason}", style=self.role("muted")))
        else:
            self.update(self.render_sample(sample, snap))

    def render_sample(self, sample: Any, snap: Snapshot) -> RenderableType:
        """Draw one sample (subclasses)."""
        raise NotImplementedError

    def grid(self) -> Table:
        """A two-column grid: a muted label, then the value."""
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style=self.role("muted"), no_wrap=True)
        t.add_column(no_wrap=True)
        return t


def _spark(values: tuple[float, ...], top: float | None = None) -> str:
    ticks = "▁▂▃▄▅▆▇█"
    vals = [v for v in values if v == v]
    if not vals:
        return ""
    hi = top if top else max(vals) or 1.0
    return "".join(ticks[min(7, max(0, int(v / hi * 7.999)))] if v == v else " " for v in values)


def _percent(fraction: float | None) -> str:
    """``31.0%`` from 0.31; ``N/A`` when the server does not export it (NA stays NA)."""
    if fraction is None or fraction != fraction:
        return num(fraction)
    return f"{fraction * 100:.1f}%"


class GpuPane(TelemetryPane):
    """One row per GPU: utilization, memory and power bars, temperature, clocks, and a short history."""

    source = "gpu"

    def render_sample(self, sample: GpuSample, snap: Snapshot) -> RenderableType:
        t = Table.grid(padding=(0, 1), expand=True)
        for col in ("gpu", "util", "mem", "power", "temp", "clk", "hist"):
            t.add_column(col, no_wrap=True, justify="left" if col in ("gpu", "hist") else "right")
        for g in sample.gpus:
            util, limit = g.util, g.power_limit_w
            t.add_row(
                Text(f"{g.index} {g.name[:14]}", style=self.role("strong")),
                f"{bar(util / 100, 6)}{num(util, 0):>4}%",
                f"{num(g.mem_used_mib / 1024, 0)}/{num(g.mem_total_mib / 1024, 0)}G",
                f"{num(g.power_w, 0)}/{num(limit, 0)}W" if limit == limit else f"{num(g.power_w, 0)}W",
                f"{num(g.temp_c, 0)}°C",
                f"{num(g.sm_clock_mhz, 0)}MHz",
                _spark(g.util_history, 100.0),
            )
        return Group(t, Text(sample.backend, style=self.role("muted")))


class HostPane(TelemetryPane):
    """Machine CPU and memory, and our own workers' CPU, with the client diagnosis when it matters."""

    source = "host"

    def render_sample(self, sample: HostSample, snap: Snapshot) -> RenderableType:
        t = self.grid()
        cpu, mem = sample.cpu_percent, sample.mem_percent
        t.add_row("host cpu", f"{bar(cpu / 100, 12)} {num(cpu, 0)}% of {sample.cpu_count} cores")
        t.add_row("host mem", f"{bar(mem / 100, 12)} {num(mem, 0)}%")
        t.add_row("llmsurge cpu", f"workers {num(sample.workers_cpu_percent, 0)}%  ui {num(sample.ui_cpu_percent, 0)}%")
        c = snap.client
        warn = self.role("warn") if c.saturated else ""
        t.add_row("client", Text(f"loop lag max {c.max_loop_lag_ms:,.0f} ms", style=warn))
        if c.saturated:
            return Group(t, Text(c.reason, style=warn))
        return t


class ServerPane(TelemetryPane):
    """The server's own view: running, waiting, KV cache, prefix-cache hits, its TTFT next to ours."""

    source = "server"

    def render_sample(self, sample: ServerSample, snap: Snapshot) -> RenderableType:
        t = self.grid()
        t.add_row("running", num(sample.running, 0))
        waiting = sample.waiting
        t.add_row("waiting", Text(num(waiting, 0), style=self.role("warn") if (waiting or 0) > 0 else ""))
        t.add_row("KV cache", f"{bar(sample.kv_cache, 10)} {_percent(sample.kv_cache)}")
        t.add_row("prefix hits", _percent(sample.prefix_hit_rate))
        rates = Text(f"gen {num(sample.generation_tok_s, 0)}  prompt {num(sample.prompt_tok_s, 0)}")
        if sample.rate_source:
            rates.append(f"  {sample.rate_source}", style=self.role("muted"))
        t.add_row("server tok/s", rates)
        ours = snap.segment_stats
        server = (
            f"server {ms(sample.ttft_p50_ms)}/{ms(sample.ttft_p99_ms)}"
            if sample.ttft_p50_ms == sample.ttft_p50_ms
            else f"server: {NOT_EXPORTED}"
        )
        t.add_row("TTFT p50/p99", f"{server}  ours {ms(ours.get('median_ttft_ms'))}/{ms(ours.get('p99_ttft_ms'))}")
        if sample.preemptions_per_s:
            t.add_row("preemptions", Text(f"{num(sample.preemptions_per_s, 2)}/s", style=self.role("bad")))
        return Group(t, Text(f"{sample.kind} /metrics", style=self.role("muted")))
