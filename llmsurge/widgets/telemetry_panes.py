"""GPU, host/client and server-metrics panes. Each shows plainly why it is empty when it has no data."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.bus import Snapshot
from llmsurge.widgets.format import MISSING, bar, ms, num


def _na(sample: Any) -> str | None:
    if sample is None:
        return "waiting for the first sample"
    if isinstance(sample, dict) and sample.get("available") is False:
        return f"not available: {sample.get('reason', 'unknown')}"
    return None


class TelemetryPane(Static):
    """Base: picks its source from ``snap.telemetry`` and renders it or its empty state."""

    source = ""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap``."""
        sample = snap.telemetry.get(self.source)
        key = (id(sample), snap.segment_stats.get("median_ttft_ms"), snap.client)
        if key == getattr(self, "_key", None):
            return  # same sample object as last time: nothing new to draw
        self._key = key
        why = _na(sample)
        if why or not isinstance(sample, dict):
            self.update(Text(why or "no data", style="dim italic"))
        else:
            self.update(self.render_sample(sample, snap))

    def render_sample(self, sample: dict[str, Any], snap: Snapshot) -> RenderableType:
        """Draw one sample (subclasses)."""
        raise NotImplementedError


def _spark(values: list[float], top: float | None = None) -> str:
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

    def render_sample(self, sample: dict[str, Any], snap: Snapshot) -> RenderableType:
        t = Table.grid(padding=(0, 1), expand=True)
        for col in ("gpu", "util", "mem", "power", "temp", "clk", "hist"):
            t.add_column(col, no_wrap=True, justify="left" if col in ("gpu", "hist") else "right")
        for g in sample.get("gpus", []):
            util = g.get("util")
            mem_used, mem_total = g.get("mem_used_mib"), g.get("mem_total_mib")
            power, limit = g.get("power_w"), g.get("power_limit_w")
            t.add_row(
                Text(f"{g.get('index', '?')} {str(g.get('name', ''))[:14]}", style="bold"),
                f"{bar(None if util is None else util / 100, 6)}{num(util, 0):>4}%",
                f"{num(None if mem_used is None else mem_used / 1024, 0)}/"
                f"{num(None if mem_total is None else mem_total / 1024, 0)}G",
                f"{num(power, 0)}/{num(limit, 0)}W" if limit == limit and limit is not None else f"{num(power, 0)}W",
                f"{num(g.get('temp_c'), 0)}°C",
                f"{num(g.get('sm_clock_mhz'), 0)}MHz",
                _spark(g.get("util_history", []), 100.0),
            )
        src = sample.get("backend", "")
        return Group(t, Text(src, style="dim")) if src else t


class HostPane(TelemetryPane):
    """Machine CPU and memory, and our own workers' CPU with a warning near saturation."""

    source = "host"

    def render_sample(self, sample: dict[str, Any], snap: Snapshot) -> RenderableType:
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style="dim", no_wrap=True)
        t.add_column(no_wrap=True)
        cpu = sample.get("cpu_percent")
        mem = sample.get("mem_percent")
        t.add_row(
            "host cpu",
            f"{bar(None if cpu is None else cpu / 100, 12)} {num(cpu, 0)}% of {sample.get('cpu_count', '?')} cores",
        )
        t.add_row("host mem", f"{bar(None if mem is None else mem / 100, 12)} {num(mem, 0)}%")
        wcpu = sample.get("workers_cpu_percent")
        t.add_row("llmsurge cpu", f"workers {num(wcpu, 0)}%  ui {num(sample.get('ui_cpu_percent'), 0)}%")
        c = snap.client
        lag = Text(f"loop lag max {c.max_loop_lag_ms:.0f} ms", style="bold yellow" if c.saturated else "")
        t.add_row("client", lag)
        if c.saturated:
            t.add_row("", Text(f"CLIENT NEAR SATURATION: {c.reason} — add --workers", style="bold yellow"))
        return t


class ServerPane(TelemetryPane):
    """The server's own view: running, waiting, KV cache, prefix-cache hits, its TTFT next to ours."""

    source = "server"

    def render_sample(self, sample: dict[str, Any], snap: Snapshot) -> RenderableType:
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style="dim", no_wrap=True)
        t.add_column(no_wrap=True)
        t.add_row("running", f"{num(sample.get('running'), 0)}")
        t.add_row(
            "waiting",
            Text(num(sample.get("waiting"), 0), style="bold yellow" if (sample.get("waiting") or 0) > 0 else ""),
        )
        kv = sample.get("kv_cache")
        t.add_row("KV cache", f"{bar(kv, 10)} {_percent(kv)}")
        t.add_row("prefix hits", _percent(sample.get("prefix_hit_rate")))
        gen = sample.get("generation_tok_s")
        t.add_row("server tok/s", f"gen {num(gen, 0)}  prompt {num(sample.get('prompt_tok_s'), 0)}")
        ours = snap.segment_stats
        t.add_row(
            "TTFT p50/p99",
            f"server {ms(sample.get('ttft_p50_ms'))}/{ms(sample.get('ttft_p99_ms'))}  "
            f"ours {ms(ours.get('median_ttft_ms'))}/{ms(ours.get('p99_ttft_ms'))}",
        )
        if sample.get("preemptions_per_s"):
            t.add_row("preemptions", Text(f"{num(sample.get('preemptions_per_s'), 2)}/s", style="bold red"))
        kind = sample.get("kind", "")
        return Group(t, Text(f"{kind} /metrics" if kind else MISSING, style="dim"))
