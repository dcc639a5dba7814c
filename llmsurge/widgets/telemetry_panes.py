"""GPU, host/client and server-metrics panes. Each shows plainly why it is empty when it has no data."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from llmsurge.metrics.kv import forecast
from llmsurge.metrics.reconcile import Reconciliation
from llmsurge.metrics.snapshot import Snapshot
from llmsurge.redaction import shown
from llmsurge.render.format import bar, ms, num
from llmsurge.telemetry.samples import GpuSample, HostSample, ServerSample, Unavailable
from llmsurge.widgets.pane import update_static
from llmsurge.widgets.roles import RoleStyles

NOT_EXPORTED = "not exported by the server"


class TelemetryPane(RoleStyles, Static, can_focus=True):
    """Base: picks its source from ``snap.telemetry`` and renders it or its empty state."""

    source = ""

    def show(self, snap: Snapshot) -> None:
        """Render ``snap`` (again when the pane's size changed: which columns and rows fit depends on it)."""
        sample = snap.telemetry.get(self.source)
        key = (id(sample), snap.stats_version, snap.client, snap.client_hosts, self.content_size, self.style_generation)
        self._last = snap
        if key == getattr(self, "_key", None):
            return  # nothing new to draw
        self._key = key
        if sample is None:
            update_static(self, Text("waiting for the first sample", style=self.role("muted")))
        elif isinstance(sample, Unavailable):
            update_static(self, Text(f"not available: {shown(sample.reason, limit=300)}", style=self.role("muted")))
        else:
            update_static(self, self.render_sample(sample, snap))

    def on_resize(self) -> None:
        last = getattr(self, "_last", None)
        if last is not None:
            self.show(last)

    def notify_style_update(self) -> None:
        """New styles (a theme change reached this pane): draw the last snapshot again in their colours."""
        super().notify_style_update()
        last = getattr(self, "_last", None)
        if last is not None and self.is_attached:
            self.call_after_refresh(self.show, last)

    def render_sample(self, sample: Any, snap: Snapshot) -> RenderableType:
        """Draw one sample (subclasses)."""
        raise NotImplementedError

    def grid(self, rows: list[tuple[int, str, RenderableType]], reserve: int = 0) -> Table:
        """A two-column grid (a muted label, then the value) of the rows that fit the pane's height, the most
        important first (``rows``: priority, lower stays longer; label; value), shown in their given order."""
        fixed = self.styles.height is not None and not self.styles.height.is_auto
        room = max(1, self.content_size.height - reserve) if fixed and self.content_size.height else len(rows)
        keep = sorted(range(len(rows)), key=lambda i: rows[i][0])[:room]
        t = Table.grid(padding=(0, 1), expand=True)
        t.add_column(style=self.role("muted"), no_wrap=True, width=max(len(r[1]) for r in rows))
        t.add_column(no_wrap=True, ratio=1)
        for i in sorted(keep):
            t.add_row(rows[i][1], rows[i][2])
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

    COLUMNS = (
        ("gpu", 17),
        ("util", 12),
        ("mem", 9),
        ("power", 10),
        ("util_seg", 17),
        ("power_seg", 19),
        ("temp", 6),
        ("clk", 9),
        ("hist", 16),
    )
    """Column and the width it needs: those that do not fit the pane are dropped whole (from the right). The
    segment's mean and peak come right after the current values they qualify."""

    def render_sample(self, sample: GpuSample, snap: Snapshot) -> RenderableType:
        room = max(20, self.size.width - 2)
        columns, used = [], 0
        for name, width in self.COLUMNS:  # dropped from the right: the first that does not fit ends the row
            if used + width > room:
                break
            columns.append(name)
            used += width
        t = Table.grid(padding=(0, 1), expand=True)
        for col in columns:
            t.add_column(col, no_wrap=True, justify="left" if col in ("gpu", "hist") else "right")
        muted = self.role("muted")
        for g in sample.gpus:
            util, limit = g.util, g.power_limit_w
            cells: dict[str, Text | str] = {
                "gpu": Text(f"{shown(g.index)} {shown(g.name)[:14]}", style=self.role("strong")),
                "util": f"{bar(util / 100, 6)}{num(util, 0):>4}%",
                "mem": f"{num(g.mem_used_mib / 1024, 0)}/{num(g.mem_total_mib / 1024, 0)}G",
                "power": f"{num(g.power_w, 0)}/{num(limit, 0)}W" if limit == limit else f"{num(g.power_w, 0)}W",
                "temp": f"{num(g.temp_c, 0)}°C",
                "clk": f"{num(g.sm_clock_mhz, 0)}MHz",
                "hist": _spark(g.util_history[-14:], 100.0),
                "util_seg": Text(f"seg avg {num(g.util_mean, 0)} pk {num(g.util_peak, 0)}%", style=muted),
                "power_seg": Text(f"avg {num(g.power_mean, 0)} pk {num(g.power_peak, 0)}W", style=muted),
            }
            t.add_row(*(cells[c] for c in columns))
        return Group(t, Text(sample.backend, style=self.role("muted"), overflow="ellipsis", no_wrap=True))


class HostPane(TelemetryPane):
    """Machine CPU and memory, and our own workers' CPU, with the client diagnosis when it matters."""

    source = "host"

    def render_sample(self, sample: HostSample, snap: Snapshot) -> RenderableType:
        cpu, mem = sample.cpu_percent, sample.mem_percent
        c = snap.client
        warn = self.role("warn") if c.saturated else ""
        rows: list[tuple[int, str, RenderableType]] = [
            (0, "host cpu", f"{bar(cpu / 100, 8)} {num(cpu, 0)}% of {sample.cpu_count} cores"),
            (3, "host mem", f"{bar(mem / 100, 8)} {num(mem, 0)}%"),
            (2, "llmsurge cpu", f"workers {num(sample.workers_cpu_percent, 0)}%  ui {num(sample.ui_cpu_percent, 0)}%"),
            (1, "client", Text(f"loop lag max {c.max_loop_lag_ms:,.0f} ms", style=warn)),
        ]
        if len(snap.client_hosts) > 1:  # a Ray run: each client host's own health
            for i, (host, (n, lag, hcpu)) in enumerate(sorted(snap.client_hosts.items())):
                rows.append((4 + i, host[-18:], f"{n}w  cpu {hcpu:.0%}  lag {lag:,.0f} ms"))
        parts: list[RenderableType] = []
        reserve = 2 if c.saturated else 0
        room = self.content_size.height - len(rows) - reserve
        if snap.workers and room >= len(snap.workers) + 2:  # room (zoomed, a tall pane): each worker's own row
            parts.append(Text(""))
            parts.append(self._workers(snap))
            reserve += len(snap.workers) + 2
        if c.saturated:
            parts.append(Text(shown(c.reason, limit=300), style=warn))
        return Group(self.grid(rows, reserve=reserve), *parts) if parts else self.grid(rows)

    WORKER_COLUMNS = (  # (name, justify, priority: higher is dropped sooner when the pane is narrow)
        ("worker", "left", 0), ("host", "left", 5), ("state", "left", 1), ("in flight", "right", 0),
        ("done", "right", 2), ("failed", "right", 0), ("cpu", "right", 3), ("loop lag", "right", 4),
    )  # fmt: skip

    def _workers(self, snap: Snapshot) -> Table:
        """The per-worker table: state, in flight, done, failed, CPU, loop lag (and host, in a Ray run); narrower
        than its content, it drops whole columns, least needed first, never cutting a value."""
        bad = self.role("bad")
        hosts = any(w.host for w in snap.workers)
        columns = [c for c in self.WORKER_COLUMNS if hosts or c[0] != "host"]
        rows: list[list[Text]] = []
        for w in snap.workers:
            cells = {
                "worker": Text(f"w{w.worker}"),
                "host": Text(w.host[-18:]),
                "state": Text(w.state, style=bad if w.state != "running" else ""),
                "in flight": Text(f"{w.inflight:,}"),
                "done": Text(f"{w.done:,}"),
                "failed": Text(f"{w.failed:,}", style=bad if w.failed else ""),
                "cpu": Text(f"{w.cpu:.0%}"),
                "loop lag": Text(f"{w.loop_lag_ms:,.0f} ms"),
            }
            rows.append([cells[name] for name, _j, _p in columns])
        need = [max([len(name), *(r[i].cell_len for r in rows)]) for i, (name, _j, _p) in enumerate(columns)]
        keep = list(range(len(columns)))
        width = self.content_size.width or 4096
        while sum(need[i] for i in keep) + 2 * (len(keep) - 1) > width and any(columns[i][2] for i in keep):
            keep.remove(max((i for i in keep if columns[i][2]), key=lambda i: columns[i][2]))
        t = Table(box=None, padding=(0, 1), header_style=self.role("muted"), expand=False, pad_edge=False)
        for i in keep:
            name, justify, _p = columns[i]
            t.add_column(name, justify=justify, no_wrap=True, min_width=need[i])  # type: ignore[arg-type]
        for r in rows:
            t.add_row(*(r[i] for i in keep))
        return t


class ServerPane(TelemetryPane):
    """The server's own view: running, waiting, KV cache, prefix-cache hits, its TTFT next to ours, and where our
    TTFT went by its clock."""

    source = "server"
    WENT_BAR = 10

    def _ttft_went(self, rec: Reconciliation) -> Text:
        """One line: a bar of our mean TTFT split by the server's clock — queue, prefill, the server's front end,
        then outside it (the front end before arrival and the network, then our own loop lag) — and the figures."""
        parts = [
            ("q", rec.server_queue_ms_mean, "warn", "█"),
            ("pre", rec.server_prefill_ms_mean, "strong", "█"),
            ("srv", rec.server_front_ms_mean, "muted", "▓"),
        ]
        if rec.server_queue_ms_mean is None or rec.server_prefill_ms_mean is None:  # only the server's TTFT
            parts = [("srv", rec.server_ttft_ms_mean, "strong", "█")]
        parts += [("out", rec.rest_ms, "muted", "░"), ("ours", rec.client_side_ms_mean, "bad", "█")]
        total = max(rec.client_ttft_ms_mean, sum(v or 0.0 for _n, v, _r, _g in parts), 1e-9)
        out = Text()
        used = 0
        for _name, value, role, glyph in parts:
            cells = max(0, min(round((value or 0.0) / total * self.WENT_BAR), self.WENT_BAR - used))
            out.append(glyph * cells, style=self.role(role))
            used += cells
        figures = " ".join(f"{n} {v:.0f}" for n, v, _r, _g in parts if v is not None and v >= 0.5)
        out.append(f" {figures} ms", style=self.role("muted") if rec.where == "agree" else "")
        return out

    def _kv_full(self, sample: ServerSample, snap: Snapshot) -> list[tuple[int, str, RenderableType]]:
        """ "KV full at ≈ c=N, now c=M": where the cache fills for the running workload (:mod:`metrics.kv`), in
        the warning colour once the load is within a fifth of it."""
        kv, seg = sample.kv, snap.segment_figures
        if kv is None:
            return []
        found = forecast(
            running=kv.segment_running,
            usage=kv.segment_usage,
            input_tokens=seg.input_mean or None,
            output_tokens=seg.output_mean or None,
            capacity_tokens=kv.capacity_tokens,
            block_size=kv.block_size,
            slots=kv.slots,
            slot_context=kv.slot_context,
        )
        if found is None:
            return []
        near = found.headroom <= 1.25
        text = Text(f"≈ c={found.full_at:,.0f}", style=self.role("warn") if near else "")
        text.append(f"  now c={found.now:,.1f}", style=self.role("muted"))
        return [(2, "KV full at", text)]

    def render_sample(self, sample: ServerSample, snap: Snapshot) -> RenderableType:
        waiting = sample.waiting
        rates = Text(f"gen {num(sample.generation_tok_s, 0)}  prompt {num(sample.prompt_tok_s, 0)}")
        if sample.rate_source and rates.cell_len + len(sample.rate_source) + 16 <= self.content_size.width:
            rates.append(f"  {sample.rate_source}", style=self.role("muted"))  # what the figure is, if room
        ours = snap.segment_figures["ttft"]
        server: RenderableType = Text(NOT_EXPORTED, style=self.role("muted"))
        if sample.ttft_p50_ms == sample.ttft_p50_ms:  # from the server's histogram buckets: an estimate, said so
            server = Text(f"≈{ms(sample.ttft_p50_ms)}/≈{ms(sample.ttft_p99_ms)} ms")
            bound = sample.ttft_p99_bound_ms
            if bound == bound and bound != float("inf"):
                server.append(f"  p99 in bucket ≤{ms(bound)}", style=self.role("muted"))
        rows: list[tuple[int, str, RenderableType]] = [
            (0, "running", num(sample.running, 0)),
            (1, "waiting", Text(num(waiting, 0), style=self.role("warn") if (waiting or 0) > 0 else "")),
            (2, "KV cache", f"{bar(sample.kv_cache, 10)} {_percent(sample.kv_cache)}"),
            *self._kv_full(sample, snap),
            (7, "prefix hits", _percent(sample.prefix_hit_rate)),
            (3, "server tok/s", rates),
            (4, "TTFT p50/p99", server),
            (
                5,
                "  ours",
                f"{ms(ours.at(50.0))}/{ms(ours.at(99.0))} ms" if ours.n else "—",
            ),
        ]
        if snap.reconciliation is not None:
            rows.append((6, "TTFT went", self._ttft_went(snap.reconciliation)))
        if sample.preemptions_per_s:
            rows.insert(3, (1, "preemptions", Text(f"{num(sample.preemptions_per_s, 2)}/s", style=self.role("bad"))))
        fixed = self.styles.height is not None and not self.styles.height.is_auto
        if fixed and self.content_size.height and self.content_size.height <= len(rows):
            return self.grid(rows)
        return Group(self.grid(rows, reserve=1), Text(f"{sample.kind} /metrics", style=self.role("muted")))
