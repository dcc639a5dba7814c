"""Headless runs: progress while the load runs, a summary table at the end, results on disk."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from llmsurge.engine.session import RunSession
from llmsurge.metrics.bus import Snapshot


def progress_line(s: Snapshot, total: int | None) -> str:
    """``done 40/160  in flight 32  failed 0  1,234 tok/s  12.3 req/s  elapsed 0:12``."""
    done = s.completed + s.failed + s.cancelled
    of = f"/{total}" if total else ""
    el = int(s.elapsed)
    parts = [
        f"[{s.state}]",
        f"seg {s.segment} {s.load_label}",
        f"done {done}{of}",
        f"in flight {s.inflight}",
        f"failed {s.failed}",
        f"{s.output_tok_s:,.0f} tok/s",
        f"{s.request_s:.1f} req/s",
        f"elapsed {el // 60}:{el % 60:02d}",
    ]
    if s.client.saturated:
        parts.append(f"CLIENT BUSY: {s.client.reason}")
    return "  ".join(parts)


def summary_table(summary: dict[str, Any]) -> Table:
    """The end-of-run table, in the order ``vllm bench serve`` prints."""
    t = Table(title="llmsurge result", show_header=False, title_style="bold", min_width=50)
    t.add_column("metric")
    t.add_column("value", justify="right")

    def row(label: str, key: str, fmt: str = "{:.2f}") -> None:
        v = summary.get(key)
        t.add_row(label, "n/a" if v is None else fmt.format(v))

    row("Successful requests", "completed", "{:d}")
    row("Failed requests", "failed", "{:d}")
    if summary.get("cancelled"):
        row("Cancelled requests", "cancelled", "{:d}")
    if summary.get("errors"):
        t.add_row("Errors", ", ".join(f"{k}: {v}" for k, v in sorted(summary["errors"].items())))
    row("Benchmark duration (s)", "duration")
    row("Total input tokens", "total_input_tokens", "{:d}")
    row("Total generated tokens", "total_output_tokens", "{:d}")
    row("Request throughput (req/s)", "request_throughput")
    row("Output token throughput (tok/s)", "output_throughput")
    row("Total token throughput (tok/s)", "total_token_throughput")
    for name, label in (
        ("ttft", "Time to First Token"),
        ("tpot", "Time per Output Token (excl. 1st)"),
        ("itl", "Inter-token Latency"),
        ("e2el", "End-to-end Latency"),
    ):
        t.add_section()
        t.add_row(Text(label, style="bold"), "")
        row(f"Mean {name.upper()} (ms)", f"mean_{name}_ms")
        row(f"Median {name.upper()} (ms)", f"median_{name}_ms")
        row(f"P90 {name.upper()} (ms)", f"p90_{name}_ms")
        row(f"P99 {name.upper()} (ms)", f"p99_{name}_ms")
    return t


def segments_table(summary: dict[str, Any]) -> Table:
    """One row per segment: the saturation table."""
    t = Table(title="segments")
    for col in ("#", "load", "done", "failed", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50"):
        t.add_column(col, justify="right" if col not in ("load",) else "left")
    for s in summary.get("segments", []):
        t.add_row(
            str(s["segment"]),
            s["load"],
            str(s["completed"]),
            str(s["failed"]),
            f"{s['request_throughput']:.2f}",
            f"{s['output_throughput']:.1f}",
            f"{s['median_ttft_ms']:.1f}",
            f"{s['p99_ttft_ms']:.1f}",
            f"{s['median_tpot_ms']:.2f}",
        )
    return t


async def run_headless(session: RunSession, console: Console, interval: float | None = None) -> dict[str, Any]:
    """Prepare, run to the end (or Ctrl-C), save; returns the summary."""
    tty = console.is_terminal
    err = Console(stderr=True) if not tty else console
    await session.prepare(lambda m: err.print(f"[dim]{m}[/dim]") if tty else print(m, file=sys.stderr))
    ctrl = session.start()
    total = sum(st.requests or 0 for st in session.config.scenario.stages) or None
    loop = asyncio.get_running_loop()
    interrupted = {"n": 0}

    def on_sigint() -> None:
        interrupted["n"] += 1
        if interrupted["n"] > 1:
            raise SystemExit(130)
        ctrl.stop()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
        pass
    target = session.target
    console.print(
        f"[bold]llmsurge[/bold] {session.config.scenario.name} → {target.base_url if target else '?'}"
        f" model [bold]{session.config.model}[/bold] ({session.server_kind}), {session.config.n_workers} worker(s),"
        f" results in {session.output}"
    )
    task = asyncio.create_task(ctrl.run())
    try:
        if tty:
            # A bar over the request budget (or the planned duration), with the live figures beside it.
            seconds = sum(st.duration or 0 for st in session.config.scenario.stages) or None
            with Progress(
                SpinnerColumn(),
                BarColumn(bar_width=30),
                TextColumn("{task.description}"),
                console=console,
                transient=True,
                refresh_per_second=4,
            ) as progress:
                bar = progress.add_task("", total=total or seconds)
                while not task.done():
                    snap = session.bus.snapshot()
                    done = snap.completed + snap.failed + snap.cancelled
                    progress.update(
                        bar, completed=done if total else snap.elapsed, description=escape(progress_line(snap, total))
                    )
                    await asyncio.wait({task}, timeout=interval or 0.25)
        else:
            last = 0.0
            every = interval or 2.0
            while not task.done():
                await asyncio.wait({task}, timeout=0.25)
                if time.monotonic() - last >= every:
                    last = time.monotonic()
                    print(progress_line(session.bus.snapshot(), total), flush=True)
        await task
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
        if not task.done():
            ctrl.stop()
            await asyncio.gather(task, return_exceptions=True)
        summary = session.summary()
        path = session.save()
        await asyncio.to_thread(session.close)
    if interrupted["n"]:
        console.print("[yellow]interrupted: in-flight requests were cancelled; results saved[/yellow]")
    console.print(summary_table(summary))
    if len(summary.get("segments", [])) > 1:
        console.print(segments_table(summary))
    for note in session.notes:
        console.print(f"[dim]note: {note}[/dim]")
    if summary["client"]["saturated"]:
        console.print(
            "[yellow]warning: the client itself was near saturation at times; see summary.json "
            "client.saturation_events (try --workers N)[/yellow]"
        )
    console.print(f"results: {path.parent}")
    return summary
