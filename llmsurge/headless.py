"""Headless runs: progress while the load runs, a summary table at the end, results on disk.

SIGINT, SIGTERM and SIGHUP all stop a run the same way — cancel what is in flight, record it, write the summary —
and the exit status says which signal it was (128 + its number). A second signal leaves at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from llmsurge.api import LiveApi, OnSteer, api_token, parse_address
from llmsurge.engine.session import ConfigError, RunConfig, RunSession
from llmsurge.lifetime import ExitCode, StopSignals, exit_status
from llmsurge.metrics.model import RunSummary
from llmsurge.metrics.results import (
    ResultsFolderError,
    claim_results_folder,
    clean_floats,
    default_results_folder,
    write_json_atomic,
)
from llmsurge.metrics.snapshot import Snapshot, SnapshotBuilder
from llmsurge.metrics.thresholds import Threshold, breaches
from llmsurge.metrics.trials import aggregate
from llmsurge.redaction import SHORT, markup_safe, shown
from llmsurge.render.console import make_console
from llmsurge.render.format import num
from llmsurge.render.tables import (
    breakdown_tables,
    capacity_line,
    result_tables,
    roofline_lines,
    segments_table,
    trials_table,
    turns_table,
)


def progress_line(s: Snapshot, total: int | None) -> str:
    """``done 40/160  25% ETA 0:36  [running]  seg 1 c=32  in flight 32  failed 0  1,234 tok/s  12.3 req/s (last 6
    s)  elapsed 0:12`` (plain text): how far and how long to go first, so a narrow terminal keeps them."""
    done = s.completed + s.failed + s.cancelled
    rate = s.request_rate.value()
    of = f"/{total}" if total else ""
    el = int(s.elapsed)
    parts = [f"done {done}{of}"]
    if s.progress is not None:  # a bounded run: how far, and how long to go
        parts.append(s.progress.describe())
    if s.client.saturated:
        parts.append(f"CLIENT BUSY: {s.client.reason}")
    parts += [
        f"[{s.state}]",
        f"seg {s.segment} {s.load_label}",
        f"in flight {s.inflight}",
        f"failed {s.failed}",
        f"{num(None if rate is None else rate * s.inputs_per_request, 0)} inputs/s"
        if s.inputs_per_request
        else f"{s.output_tok_s:,.0f} tok/s",
        f"{num(rate, 1)} req/s ({s.request_rate.label()})",
        f"elapsed {el // 60}:{el % 60:02d}",
    ]
    return "  ".join(parts)


async def _show_progress(
    session: RunSession, task: asyncio.Task[None], console: Console, interval: float | None
) -> None:
    """Progress while ``task`` runs: a bar on a terminal, a line every few seconds otherwise."""
    total = sum(st.requests or 0 for st in session.scenario.stages) or None
    snapshots = SnapshotBuilder(session.bus)
    told = len(session.bus.events)

    def tell() -> None:  # a capacity search's verdicts as each level is judged; a stall as it is seen
        nonlocal told
        events = session.bus.events[told:]
        told += len(events)
        for e in events:
            if e.message.startswith(("find-max: ", "stall")):
                console.print(e.message, markup=False, highlight=False, soft_wrap=False)

    if session.controller is not None:
        snapshots.progress = session.controller.progress
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
                tell()
                snap = snapshots.snapshot()
                done = snap.completed + snap.failed + snap.cancelled
                progress.update(bar, completed=done if total else snap.elapsed, description=progress_line(snap, total))
                await asyncio.wait({task}, timeout=interval or 0.25)
        return
    last = 0.0
    every = interval or 2.0
    while not task.done():
        await asyncio.wait({task}, timeout=0.25)
        tell()
        if time.monotonic() - last >= every:
            last = time.monotonic()
            console.print(progress_line(snapshots.snapshot(), total), markup=False, highlight=False, soft_wrap=True)


async def run_headless(
    session: RunSession,
    console: Console,
    interval: float | None = None,
    fail_on: list[Threshold] | None = None,
    tables: bool = True,
) -> int:
    """Prepare, run to the end (or a stop signal), save, print (``tables``: the end-of-run tables; else one line);
    returns the exit status."""
    loop = asyncio.get_running_loop()
    signals = StopSignals()
    err = make_console(stderr=True, highlight=False)
    api = await start_api(session)  # before anything is sent: an address that cannot be bound is bad input
    if api is not None:
        err.print(f"api: {api.url}/metrics, /api/snapshot, POST /api/steer", style="dim", markup=False)
    say = sparing(lambda m: err.print(m, style="dim", markup=False, highlight=False, soft_wrap=True))
    prep = asyncio.ensure_future(session.prepare(say))

    def stop() -> None:
        if session.controller is not None:
            session.controller.stop()
        else:
            prep.cancel()

    signals.install(loop, stop)
    try:
        return await _run(session, console, prep, signals, interval, fail_on or [], tables)
    finally:
        signals.remove(loop)
        if api is not None:
            await api.stop()


WAIT_LINE_EVERY_S = 5.0
"""A log gets a waiting line this often (the server is polled twice a second), or at once when its cause changes."""


def sparing(
    say: Callable[[str], None], every: float = WAIT_LINE_EVERY_S, clock: Callable[[], float] = time.monotonic
) -> Callable[[str], None]:
    """``say``, with "waiting for …" lines at most every ``every`` seconds while their cause stays the same (a log
    file is read later: one line per poll fills it); every other line as it comes."""
    last_cause, last_at = "", -math.inf

    def sparingly(message: str) -> None:
        nonlocal last_cause, last_at
        if message.startswith("waiting for "):
            cause, now = message.rsplit("): ", 1)[-1], clock()
            if cause == last_cause and now - last_at < every:
                return
            last_cause, last_at = cause, now
        say(message)

    return sparingly


async def start_api(session: RunSession, on_steer: OnSteer | None = None) -> LiveApi | None:
    """The live API, when ``--api`` asks for it (:class:`ConfigError` naming the address it cannot bind)."""
    cfg = session.config
    if not cfg.api:
        return None
    host, port = parse_address(cfg.api)
    api = LiveApi(session, host, port, api_token(host, cfg.api_token_env), on_steer)
    try:
        await api.start()
    except OSError as exc:
        raise ConfigError(f"--api {cfg.api}: cannot listen there ({exc.strerror or exc}): give another port") from None
    return api


async def _run(
    session: RunSession,
    console: Console,
    prep: asyncio.Future[None],
    signals: StopSignals,
    interval: float | None,
    fail_on: list[Threshold],
    tables: bool = True,
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
    summary = session.summary()  # built once: the tables below and summary.json read the same one
    path: Path | None = None
    try:
        path = session.save(summary)
    except OSError as exc:
        console.print(
            f"[red]summary.json could not be written to {markup_safe(session.output)}"
            f" ({markup_safe(exc.strerror or exc)}); requests.jsonl keeps what was written[/red]"
        )
    if not tables:
        console.print(trial_line(summary, session.output), markup=False, highlight=False)
        return (
            exit_status(signals.signum) if signals.signum is not None else ExitCode.OK if path else ExitCode.NOT_SAVED
        )
    return _report(session, console, summary, path, signals.signum, fail_on)


def trial_line(summary: RunSummary, folder: Path) -> str:
    """One trial of a repeated run, in a line: its counts, rates and latencies, and where it is."""
    run = summary.run
    ttft, e2el = run.value("median_ttft_ms"), run.value("median_e2el_ms")
    return (
        f"  {run.completed:,} ok, {run.failed:,} failed, {num(run.request_throughput, 2)} req/s,"
        f" {num(run.output_throughput, 0)} tok/s, TTFT p50 {num(ttft, 1)} ms, E2EL p50 {num(e2el, 0)} ms"
        f" → {shown(folder, limit=None)}"
    )


async def run_trials(
    config: RunConfig, console: Console, interval: float | None, fail_on: list[Threshold], n: int
) -> int:
    """``--repeat N``: the same workload N times, each trial a run of its own (its folder ``trial-K`` and seed),
    then each figure's mean and 95% interval over the trials in the folder's ``summary.json`` and a table.
    A stop signal ends the trials: the one it cut short keeps its folder, those finished before it are summarized."""
    out = config.output or default_results_folder(config.name or config.scenario.name)
    try:
        out = claim_results_folder(out, unique=config.output is None)
    except ResultsFolderError as exc:
        raise ConfigError(str(exc)) from None
    base = config.seed if config.seed is not None else secrets.randbelow(2**31 - n)
    done: list[RunSummary] = []
    seeds: list[int] = []
    folders: list[str] = []
    status: int = ExitCode.OK
    for k in range(1, n + 1):
        seed = base + k - 1
        console.print(f"trial {k}/{n} (seed {seed})", style="bold", markup=False, highlight=False)
        folder = out / f"trial-{k}"
        status = await run_headless(RunSession(replace(config, output=folder, seed=seed)), console, interval, [], False)
        if status != ExitCode.OK:  # a trial cut short is not a sample of the workload: kept on disk, left out here
            console.print(
                f"trial {k} was stopped (exit status {status}): its folder is kept, the summary is of the trials"
                " before it",
                style="yellow",
                markup=False,
                highlight=False,
            )
            break
        done.append(RunSummary.from_json(json.loads((folder / "summary.json").read_text())))
        seeds.append(seed)
        folders.append(folder.name)
    if not done:
        return status
    summary = aggregate(done, folders, seeds)
    write_json_atomic(out / "summary.json", clean_floats(summary.to_json()))
    console.print(trials_table(summary, console.width))
    for note in summary.notes:
        console.print(f"note: {shown(note, limit=2000)}", style="dim", markup=False, highlight=False, soft_wrap=False)
    console.print(f"results: {shown(out, limit=None)}", markup=False, highlight=False)
    broken = breaches(fail_on, summary)  # on the trials' means
    for line in broken:
        console.print(f"threshold breached: {line}", style="bold red", markup=False, highlight=False, soft_wrap=False)
    if status != ExitCode.OK:
        return status
    return ExitCode.THRESHOLDS if broken else ExitCode.OK


def _report(
    session: RunSession,
    console: Console,
    summary: RunSummary,
    path: Path | None,
    signum: int | None,
    fail_on: list[Threshold],
) -> int:
    """Print the tables, notes and breaches; decide the exit status."""
    if signum is not None:
        name = signal.Signals(signum).name
        console.print(f"[yellow]stopped by {name}: in-flight requests were cancelled; results saved[/yellow]")
    answer = capacity_line(summary)
    if answer:  # a search's answer first, before the tables of the levels it tried
        console.print(answer, style="bold", markup=False, highlight=False, soft_wrap=False)
    for table in result_tables(summary, console.width, console.is_terminal):
        console.print(table)
    if len(summary.segments) > 1:
        console.print(segments_table(summary, console.width))
    if summary.run.turns:
        console.print(turns_table(summary))
    for table in breakdown_tables(summary):
        console.print(table)
    for line in roofline_lines(summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in summary.notes:
        console.print(f"note: {shown(note, limit=2000)}", style="dim", markup=False, highlight=False, soft_wrap=False)
    if summary.client.saturated:
        console.print(
            "[yellow]warning: the client itself was near saturation at times; see summary.json "
            "client.saturation_events (try --workers N)[/yellow]"
        )
    console.print(f"results: {shown(session.output, limit=None)}", markup=False, highlight=False)
    broken = breaches(fail_on, summary)
    for line in broken:
        console.print(f"threshold breached: {line}", style="bold red", markup=False, highlight=False, soft_wrap=False)
    if signum is not None:
        return exit_status(signum)
    writer = session.writer
    if path is None or (writer is not None and writer.error is not None):
        return ExitCode.NOT_SAVED
    return ExitCode.THRESHOLDS if broken else ExitCode.OK
