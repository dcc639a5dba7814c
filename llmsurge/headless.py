"""Headless runs: progress while the load runs, a summary table at the end, results on disk.

SIGINT, SIGTERM and SIGHUP all stop a run the same way — cancel what is in flight, record it, write the summary —
and the exit status says which signal it was (128 + its number). A second signal leaves at once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from llmsurge.engine.session import RunSession
from llmsurge.lifetime import ExitCode, StopSignals, exit_status
from llmsurge.metrics.snapshot import Snapshot, SnapshotBuilder
from llmsurge.metrics.stats import min_samples
from llmsurge.metrics.thresholds import Threshold, breaches
from llmsurge.redaction import SHORT, markup_safe, shown
from llmsurge.render.console import make_console

NOT_AVAILABLE = "n/a"


def progress_line(s: Snapshot, total: int | None) -> str:
    """``done 40/160  in flight 32  failed 0  1,234 tok/s  12.3 req/s  elapsed 0:12`` (plain text)."""
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


def _cell(value: Any, fmt: str, weak: bool = False) -> str:
    if value is None:
        return NOT_AVAILABLE
    return fmt.format(value) + ("*" if weak else "")


def summary_table(summary: dict[str, Any], title: str = "llmsurge result") -> Table:
    """The end-of-run table, in the order ``vllm bench serve`` prints, with how many values each latency rests
    on. Latencies read ``n/a`` when no request succeeded (summary.json keeps vLLM's 0.0 there); a percentile
    resting on fewer values than it needs (p99: about 100) is starred."""
    t = Table(title=title, show_header=False, title_style="bold", min_width=50)
    t.add_column("metric")
    t.add_column("value", justify="right")

    def row(label: str, key: str, fmt: str = "{:.2f}") -> None:
        t.add_row(label, _cell(summary.get(key), fmt))

    row("Successful requests", "completed", "{:d}")
    row("Failed requests", "failed", "{:d}")
    if summary.get("cancelled"):
        row("Cancelled requests", "cancelled", "{:d}")
    if summary.get("errors"):
        t.add_row("Errors", Text(", ".join(f"{k}: {v}" for k, v in sorted(summary["errors"].items()))))
    row("Benchmark duration (s)", "duration")
    row("Total input tokens", "total_input_tokens", "{:d}")
    row("Total generated tokens", "total_output_tokens", "{:d}")
    if summary.get("prefix_cache_hit_rate") is not None:
        row("Prompt tokens from the server's cache", "prefix_cache_hit_rate", "{:.1%}")
    if summary.get("completed"):
        t.add_row(
            "Input / output tokens, mean (p90)",
            f"{summary.get('mean_input_tokens', 0):,.0f} ({summary.get('p90_input_tokens', 0):,.0f}) / "
            f"{summary.get('mean_output_tokens', 0):,.0f} ({summary.get('p90_output_tokens', 0):,.0f})",
        )
    row("Request throughput (req/s)", "request_throughput")
    row("Output token throughput (tok/s)", "output_throughput")
    row("Total token throughput (tok/s)", "total_token_throughput")
    if summary.get("slo"):
        t.add_section()
        slo = ", ".join(f"{k.upper()}≤{v:g}ms" for k, v in summary["slo"].items())
        t.add_row(Text("SLO", style="bold"), Text(slo))
        row("Good requests", "good_requests", "{:d}")
        row("Good share of ended requests", "good_share", "{:.1%}")
        row("Request goodput (req/s)", "request_goodput")
        row("Good output throughput (tok/s)", "good_output_throughput")
    starred = False
    for name, label in (
        ("ttft", "Time to First Token"),
        ("tpot", "Time per Output Token (excl. 1st)"),
        ("itl", "Inter-token Latency"),
        ("e2el", "End-to-end Latency"),
    ):
        n = int(summary.get(f"n_{name}") or 0)
        t.add_section()
        t.add_row(Text(label, style="bold"), Text(f"n={n:,}", style="dim") if n else "")
        for stat, key, q in (
            ("Mean", "mean", 0.0),
            ("Median", "median", 50.0),
            ("P90", "p90", 90.0),
            ("P99", "p99", 99.0),
        ):
            weak = bool(q) and 0 < n < min_samples(q)
            starred |= weak
            value = summary.get(f"{key}_{name}_ms") if n or "n_ttft" not in summary else None
            t.add_row(f"{stat} {name.upper()} (ms)", _cell(value, "{:.2f}", weak))
    reasoning = summary.get("reasoning")
    if reasoning:
        t.add_section()
        t.add_row(Text("Reasoning", style="bold"), Text(f"n={reasoning['completed']:,}", style="dim"))
        t.add_row("Mean reasoning tokens", _cell(reasoning.get("mean_reasoning_tokens"), "{:.1f}"))
        t.add_row("Median time to first reasoning token (ms)", _cell(reasoning.get("median_ttfr_ms"), "{:.2f}"))
        t.add_row("Median time to first answer token (ms)", _cell(reasoning.get("median_answer_ttfc_ms"), "{:.2f}"))
    if starred:
        t.caption = "* fewer values than the percentile needs (p90 about 10, p99 about 100): read it as the maximum"
    return t


def segments_table(summary: dict[str, Any]) -> Table:
    """One row per segment: the saturation table (throughputs as delivered while each segment was open)."""
    t = Table(title="segments")
    segs = summary.get("segments", [])
    slo = any("good_share" in s for s in segs)
    columns = (
        "#", "load", "done", "failed", "req/s", "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "cache",
        "in mean/p90", "out mean/p90",
    )  # fmt: skip
    for col in (*columns, "good") if slo else columns:
        t.add_column(col, justify="right" if col not in ("load",) else "left")
    for s in segs:
        n = int(s.get("n_ttft") or 0)
        hit = s.get("prefix_cache_hit_rate")
        load = Text(str(s.get("load", "")))
        if s.get("starved"):
            load.append(" (CPU starved)", style="yellow")
        t.add_row(
            str(s["segment"]),
            load,
            str(s["completed"]),
            str(s["failed"]),
            _cell(s.get("request_throughput"), "{:.2f}"),
            _cell(s.get("output_throughput"), "{:.1f}"),
            _cell(s.get("median_ttft_ms") if n else None, "{:.1f}"),
            _cell(s.get("p99_ttft_ms") if n else None, "{:.1f}", 0 < n < min_samples(99.0)),
            _cell(s.get("median_tpot_ms") if s.get("n_tpot") else None, "{:.2f}"),
            _cell(hit, "{:.0%}"),
            f"{s.get('mean_input_tokens', 0):,.0f}/{s.get('p90_input_tokens', 0):,.0f}" if s["completed"] else "—",
            f"{s.get('mean_output_tokens', 0):,.0f}/{s.get('p90_output_tokens', 0):,.0f}" if s["completed"] else "—",
            *([_cell(s.get("good_share") if s["completed"] else None, "{:.0%}")] if slo else []),
        )
    return t


def roofline_lines(summary: dict[str, Any]) -> list[str]:
    """One line per segment: decode per stream against its ceiling, and the inputs' sources once."""
    block = summary.get("roofline")
    if not block:
        return []
    if block.get("missing"):
        if not any(block["inputs"].values()):
            return []  # nothing known: not worth a line on every run
        return [f"roofline: needs {' and '.join(block['missing'])} (the server and the GPU did not say)"]
    lines = []
    for seg in summary.get("segments", []):
        r = seg.get("roofline")
        if r and r.get("fraction") is not None:
            lines.append(
                f"roofline segment {seg['segment']} ({seg['load']}): decode {r['measured_per_stream_tok_s']:,.1f}"
                f" tok/s per stream = {r['fraction']:.0%} of the {r['ceiling_per_stream_tok_s']:,.1f} tok/s"
                f" {r['bound']} ceiling at batch {r['batch']:.1f}"
            )
    used = {k: v["source"] for k, v in block["inputs"].items() if v}
    if lines:
        lines.append("roofline inputs: " + ", ".join(f"{k} from {v}" for k, v in used.items()))
    if block.get("note"):
        lines.append(f"roofline: {block['note']}")
    return lines


def turns_table(summary: dict[str, Any]) -> Table:
    """Multi-turn chats: TTFT and prefix-cache hits per turn (turn 1 is cold; later turns carry the history)."""
    t = Table(title="turns")
    for col in ("turn", "done", "prompt tokens", "TTFT p50", "TTFT p90", "cache"):
        t.add_column(col, justify="right")
    for r in summary.get("turns", []):
        n = r["completed"]
        t.add_row(
            str(r["turn"]),
            str(n),
            _cell(r.get("mean_prompt_tokens"), "{:,.0f}"),
            _cell(r.get("median_ttft_ms"), "{:.1f}"),
            _cell(r.get("p90_ttft_ms"), "{:.1f}", 0 < n < min_samples(90.0)),
            _cell(r.get("prefix_cache_hit_rate"), "{:.0%}"),
        )
    return t


async def _show_progress(
    session: RunSession, task: asyncio.Task[None], console: Console, interval: float | None
) -> None:
    """Progress while ``task`` runs: a bar on a terminal, a line every few seconds otherwise."""
    total = sum(st.requests or 0 for st in session.scenario.stages) or None
    snapshots = SnapshotBuilder(session.bus)
    if console.is_terminal:
        # A bar over the request budget (or the planned duration), with the live figures beside it.
        seconds = sum(st.duration or 0 for st in session.scenario.stages) or None
        with Progress(
            SpinnerColumn(),
            BarColumn(bar_width=30),
            TextColumn("{task.description}", markup=False),
            console=console,
            transient=True,
            refresh_per_second=4,
        ) as progress:
            bar = progress.add_task("", total=total or seconds)
            while not task.done():
                snap = snapshots.snapshot()
                done = snap.completed + snap.failed + snap.cancelled
                progress.update(bar, completed=done if total else snap.elapsed, description=progress_line(snap, total))
                await asyncio.wait({task}, timeout=interval or 0.25)
        return
    last = 0.0
    every = interval or 2.0
    while not task.done():
        await asyncio.wait({task}, timeout=0.25)
        if time.monotonic() - last >= every:
            last = time.monotonic()
            console.print(progress_line(snapshots.snapshot(), total), markup=False, highlight=False, soft_wrap=True)


async def run_headless(
    session: RunSession, console: Console, interval: float | None = None, fail_on: list[Threshold] | None = None
) -> int:
    """Prepare, run to the end (or a stop signal), save, print; returns the exit status."""
    loop = asyncio.get_running_loop()
    signals = StopSignals()
    err = make_console(stderr=True, highlight=False)
    prep = asyncio.ensure_future(session.prepare(lambda m: err.print(m, style="dim", markup=False)))

    def stop() -> None:
        if session.controller is not None:
            session.controller.stop()
        else:
            prep.cancel()

    signals.install(loop, stop)
    try:
        return await _run(session, console, prep, signals, interval, fail_on or [])
    finally:
        signals.remove(loop)


async def _run(
    session: RunSession,
    console: Console,
    prep: asyncio.Future[None],
    signals: StopSignals,
    interval: float | None,
    fail_on: list[Threshold],
) -> int:
    try:
        await prep
    except asyncio.CancelledError:
        if signals.signum is None:
            raise
        await asyncio.to_thread(session.close)
        console.print(f"stopped by {signal.Signals(signals.signum).name} before the run began", markup=False)
        return exit_status(signals.signum)
    except BaseException:
        await asyncio.to_thread(session.close)
        raise
    ctrl = await asyncio.to_thread(session.start)
    target = session.target
    console.print(
        f"[bold]llmsurge[/bold] {markup_safe(session.scenario.name)} →"
        f" {markup_safe(target.base_url if target else '?')}"
        f" model [bold]{markup_safe(session.model, limit=SHORT)}[/bold]"
        f" ({markup_safe(session.server_kind)}), {session.workers_used} worker(s)"
        f"{' on Ray' if session.config.ray else ''}, results in"
        f" {markup_safe(session.output)}"
    )
    task = asyncio.create_task(ctrl.run())
    try:
        await _show_progress(session, task, console, interval)
        await task
    finally:
        if not task.done():
            ctrl.stop()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(session.close)
    summary = session.summary()
    path: Path | None = None
    try:
        path = session.save()
    except OSError as exc:
        console.print(
            f"[red]summary.json could not be written to {markup_safe(session.output)}"
            f" ({markup_safe(exc.strerror or exc)}); requests.jsonl keeps what was written[/red]"
        )
    return _report(session, console, summary, path, signals.signum, fail_on)


def _report(
    session: RunSession,
    console: Console,
    summary: dict[str, Any],
    path: Path | None,
    signum: int | None,
    fail_on: list[Threshold],
) -> int:
    """Print the tables, notes and breaches; decide the exit status."""
    if signum is not None:
        name = signal.Signals(signum).name
        console.print(f"[yellow]stopped by {name}: in-flight requests were cancelled; results saved[/yellow]")
    console.print(summary_table(summary))
    if len(summary.get("segments", [])) > 1:
        console.print(segments_table(summary))
    if summary.get("turns"):
        console.print(turns_table(summary))
    for line in roofline_lines(summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in summary.get("notes", []):
        console.print(f"note: {shown(note, limit=2000)}", style="dim", markup=False, highlight=False, soft_wrap=True)
    if summary["client"]["saturated"]:
        console.print(
            "[yellow]warning: the client itself was near saturation at times; see summary.json "
            "client.saturation_events (try --workers N)[/yellow]"
        )
    console.print(f"results: {shown(session.output, limit=None)}", markup=False, highlight=False)
    broken = breaches(fail_on, summary)
    for line in broken:
        console.print(f"threshold breached: {line}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    if signum is not None:
        return exit_status(signum)
    writer = session.writer
    if path is None or (writer is not None and writer.error is not None):
        return ExitCode.NOT_SAVED
    return ExitCode.THRESHOLDS if broken else ExitCode.OK
