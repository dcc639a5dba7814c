"""The benchmark runner: ingest ceiling, timing accuracy, UI cost, memory, start-up.

    python -m bench.run [all|ingest|timing|ui|memory|startup] [--repeats 3] [--seconds 6]

Prints a markdown table per benchmark and writes the raw figures to bench/results/latest.json. Ratios are
measured in the same run; machines here are shared and noisy, so each figure is a median with its spread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from textual import events

from bench import reference_client
from bench.common import cpu_seconds, fast_sim, fmt, paced_sim, percentiles_ms
from bench.replay_server import ReplayServer
from llmsurge.engine.controller import Controller
from llmsurge.engine.pool import WorkerPool
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.lifetime import EVENT_LOOP_ENV
from llmsurge.metrics.bus import MetricsBus, WorkerTick
from llmsurge.net import Target

RESULTS = Path(__file__).parent / "results"
WARM_S = 1.5


class CountingBus(MetricsBus):
    """Counts token events of ticks ingested inside the window."""

    def __init__(self) -> None:
        super().__init__()
        self.window: tuple[float, float] = (0.0, 0.0)
        self.token_events = 0
        self.requests = 0

    def ingest(self, tick: WorkerTick) -> None:
        t = time.monotonic()
        if self.window[0] <= t < self.window[1] + 0.06:
            self.token_events += tick.tokens
            self.requests += sum(1 for r in tick.records if r.ok)
        super().ingest(tick)


def _scenario(streams: int, seconds: float, output_tokens: int = 2048) -> Scenario:
    return Scenario(
        "bench",
        "bench",
        (Stage(Load(concurrency=streams), duration=seconds + 60),),
        RequestShape(endpoint="completions", input_tokens=4, output_tokens=output_tokens, timeout=600),
    )


async def _llmsurge_window(
    url: str,
    streams: int,
    workers: int,
    seconds: float,
    delays: bool,
    sim_pids: list[int],
    backend: Any = None,
    output_tokens: int = 2048,
) -> dict[str, Any]:
    bus = CountingBus()
    pool = WorkerPool(
        Target(url, "llmsurge-sim"), Calibration(), bus, workers, measure_read_delay=delays, backend=backend
    )
    pool.start()
    ctrl = Controller(pool, bus, _scenario(streams, seconds, output_tokens), drain_grace=0)
    task = asyncio.create_task(ctrl.run())
    await pool.wait_ready()
    await asyncio.sleep(WARM_S)
    pids = [p.pid for p in pool.procs] if backend is None else [backend.pid(p) for p in pool.procs]
    _pin(pids, CLIENT_CORE)
    start = time.monotonic()
    bus.window = (start, start + seconds)
    daemons = ray_daemons(exclude=pids) if backend is not None else []
    c0, s0, p0, r0 = cpu_seconds(pids), cpu_seconds(sim_pids), time.process_time(), cpu_seconds(daemons)
    bus.read_delays = [] if delays else None
    await asyncio.sleep(seconds)
    c1, s1, p1, r1 = cpu_seconds(pids), cpu_seconds(sim_pids), time.process_time(), cpu_seconds(daemons)
    d = list(bus.read_delays or [])
    ctrl.stop()
    await task
    return {
        "events": bus.token_events,
        "requests": bus.requests,
        "cpu": c1 - c0,
        "server_cpu": (s1 - s0) / seconds,
        "parent_cpu": p1 - p0,
        "ray_cpu": r1 - r0,
        "seconds": seconds,
        "delays": d,
    }


def ray_daemons(exclude: list[int]) -> list[int]:
    """Ray's own processes on this machine (GCS, raylet, agents, idle workers), not the actors in ``exclude``."""
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or ())
        if proc.info["pid"] in exclude:
            continue
        if proc.info["name"] in ("raylet", "gcs_server") or "site-packages/ray/" in cmd:
            found.append(proc.info["pid"])
    return found


def llmsurge_window(
    url: str,
    streams: int,
    workers: int,
    seconds: float,
    sim_pids: list[int],
    delays: bool = False,
    backend: Any = None,
    output_tokens: int = 2048,
) -> dict[str, Any]:
    """llmsurge's worker pool reading ``streams`` concurrent streams for ``seconds`` (as local processes, or as
    Ray actors with a Ray ``backend``)."""
    return asyncio.run(_llmsurge_window(url, streams, workers, seconds, delays, sim_pids, backend, output_tokens))


def reference_window(
    url: str, streams: int, seconds: float, sim_pids: list[int], delays: bool = False
) -> dict[str, Any]:
    """The reference aiohttp client over the same window length (its CPU read from outside, as for ours)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.monotonic() + WARM_S + 1.0
    end = start + seconds
    p = ctx.Process(target=reference_client.run, args=(url, streams, start, end, delays, out))
    p.start()
    assert p.pid is not None
    _pin([p.pid], CLIENT_CORE)
    time.sleep(max(0.0, start - time.monotonic()))
    s0, c0 = cpu_seconds(sim_pids), cpu_seconds([p.pid])
    time.sleep(max(0.0, end - time.monotonic()))
    s1, c1 = cpu_seconds(sim_pids), cpu_seconds([p.pid])
    r = out.get(timeout=120)
    p.join(10)
    r.update({"seconds": seconds, "server_cpu": (s1 - s0) / seconds, "cpu": c1 - c0})
    return r


CLIENT_CORE: int | None = None  # --pin: clients on one core, the server on the others


def _pin(pids: list[int], core: int | None, others: bool = False) -> None:
    if core is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = set(range(os.cpu_count() or 1))
    want = (cores - {core}) if others else {core}
    for pid in pids:
        os.sched_setaffinity(pid, want)


# ---- 1. ingest ceiling ------------------------------------------------------------------------


STREAMS = (32, 256, 1024)


ASYNCIO = "-asyncio"
"""A client variant's suffix: its workers on the standard library's event loop where uvloop is installed."""


@contextlib.contextmanager
def event_loop_of(client: str) -> Iterator[None]:
    """The workers of ``client`` (spawned inside) on the event loop its name says."""
    if not client.endswith(ASYNCIO):
        yield
        return
    os.environ[EVENT_LOOP_ENV] = "asyncio"
    try:
        yield
    finally:
        del os.environ[EVENT_LOOP_ENV]


def llmsurge_clients(names: tuple[str, ...], loops: bool) -> tuple[str, ...]:
    """``names``, each followed by its standard-library-loop variant when ``loops`` (uvloop must be installed)."""
    return tuple(v for n in names for v in ((n, n + ASYNCIO) if loops else (n,)))


def bench_ingest(
    repeats: int,
    seconds: float,
    sim_processes: int = 1,
    streams_list: tuple[int, ...] = STREAMS,
    server: str = "sim",
    event_rate: float | None = None,
    loops: bool = False,
) -> dict[str, Any]:
    """Token events per client CPU-second against the bare loop, from the fast simulated server or (``server=
    "replay"``) the replay server, whose few microseconds per token leave the client as the limit on two cores;
    ``event_rate``: the replay server paced to this many events a second in all (every client reads the same
    events, one a read); ``loops``: each llmsurge client also on the standard library's loop."""
    rows: dict[str, Any] = {}
    with ReplayServer(event_rate) if server == "replay" else fast_sim(processes=sim_processes) as sim:
        pids = sim.pids
        _pin(pids, CLIENT_CORE, others=True)
        for streams in streams_list:
            for client in ("reference", *llmsurge_clients(("llmsurge-1w", "llmsurge-2w"), loops)):
                runs = []
                for _ in range(repeats):
                    if client == "reference":
                        r = reference_window(sim.url, streams, seconds, pids)
                    else:
                        with event_loop_of(client):
                            workers = 2 if "-2w" in client else 1
                            r = llmsurge_window(sim.url, streams, workers, seconds, pids)
                    r.pop("delays", None)
                    runs.append(r)
                    print(
                        f"  ingest {streams:>5} {client:<12} {r['events'] / r['seconds']:>9,.0f} ev/s "
                        f"{r['events'] / max(r['cpu'], 1e-9):>9,.0f} ev/cpu-s  server cpu {r['server_cpu']:.0%}",
                        flush=True,
                    )
                rows[f"{streams}/{client}"] = runs
    return rows


def _all_cpu(r: dict[str, Any]) -> float:
    """A client's CPU with its parent's (llmsurge's main process: the bus and the controller; none for the bare
    loop, which is one process)."""
    return float(r["cpu"] + r.get("parent_cpu", 0.0))


def table_ingest(rows: dict[str, Any]) -> str:
    lines = [
        "| streams | client | events/s (total) | events per client CPU-s | per-core vs reference | client CPU "
        "| server CPU | vs reference, with the main process |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, runs in rows.items():
        streams, client = key.split("/")
        ev = [r["events"] / r["seconds"] for r in runs]
        per = [r["events"] / max(r["cpu"], 1e-9) for r in runs]
        ref = rows.get(f"{streams}/reference")
        ratio = ratio_all = ""
        if ref and client != "reference":
            ref_per = statistics.median(x["events"] / max(x["cpu"], 1e-9) for x in ref)
            ratio = f"{statistics.median(per) / ref_per:.2f}x"
            every = statistics.median(r["events"] / max(_all_cpu(r), 1e-9) for r in runs)
            ratio_all = f"{every / statistics.median(x['events'] / max(_all_cpu(x), 1e-9) for x in ref):.2f}x"
        srv = [r["server_cpu"] for r in runs]
        own = [r["cpu"] / r["seconds"] for r in runs]
        lines.append(
            f"| {streams} | {client} | {fmt(ev)} | {fmt(per)} | {ratio} | {fmt(own, 2)} cores | {fmt(srv, 2)} cores "
            f"| {ratio_all} |"
        )
    return "\n".join(lines)


# ---- 1b. request-rate ceiling ------------------------------------------------------------------


def reference_rate_window(url: str, loops: int, seconds: float) -> dict[str, Any]:
    """The bare aiohttp loop sending one-token requests back to back on ``loops`` connections."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.monotonic() + WARM_S + 1.0
    end = start + seconds
    p = ctx.Process(target=reference_client.run_rate, args=(url, loops, start, end, out))
    p.start()
    assert p.pid is not None
    _pin([p.pid], CLIENT_CORE)
    r = out.get(timeout=120)
    p.join(10)
    r["seconds"] = seconds
    return r


def bench_rate(
    repeats: int, seconds: float, sim_processes: int = 1, loops: int = 64, event_loops: bool = False
) -> dict[str, Any]:
    """One-token answers as fast as one worker core starts and finishes them, against the bare loop; the clients
    take turns within each repeat."""
    rows: dict[str, Any] = {c: [] for c in ("reference", *llmsurge_clients(("llmsurge-1w",), event_loops))}
    with fast_sim(processes=sim_processes) as sim:
        _pin(sim.pids, CLIENT_CORE, others=True)
        for _ in range(repeats):
            for client in rows:
                if client == "reference":
                    r = reference_rate_window(sim.url, loops, seconds)
                else:
                    with event_loop_of(client):
                        r = llmsurge_window(sim.url, loops, 1, seconds, sim.pids, output_tokens=1)
                    r.pop("delays", None)
                rows[client].append(r)
                print(
                    f"  rate {client:<12} {r['requests'] / seconds:>8,.0f} req/s "
                    f"{r['requests'] / max(r['cpu'], 1e-9):>8,.0f} req/cpu-s",
                    flush=True,
                )
    return rows


def table_rate(rows: dict[str, Any]) -> str:
    lines = [
        "| client (64 loops, 1-token answers) | requests/s | requests per client CPU-s | vs reference "
        "| vs reference, with the main process |",
        "|---|---:|---:|---:|---:|",
    ]
    ref = [r["requests"] / max(r["cpu"], 1e-9) for r in rows["reference"]]
    ref_all = [r["requests"] / max(_all_cpu(r), 1e-9) for r in rows["reference"]]
    for client, runs in rows.items():
        per = [r["requests"] / max(r["cpu"], 1e-9) for r in runs]
        every = [r["requests"] / max(_all_cpu(r), 1e-9) for r in runs]
        ratio = ratio_all = ""
        if client != "reference":
            ratio = f"{statistics.median(per) / statistics.median(ref):.2f}x"
            ratio_all = f"{statistics.median(every) / statistics.median(ref_all):.2f}x"
        lines.append(
            f"| {client} | {fmt([r['requests'] / r['seconds'] for r in runs])} | {fmt(per)} | {ratio} | {ratio_all} |"
        )
    return "\n".join(lines)


# ---- 1c. many open streams: memory per stream, file limits, ports ---------------------------------


async def _open_streams(url: str, streams: int, workers: int, wait_s: float) -> dict[str, Any]:
    """Hold ``streams`` slow streams open on ``workers`` workers; worker memory before and with them open."""
    bus = CountingBus()
    pool = WorkerPool(Target(url, "llmsurge-sim"), Calibration(), bus, workers)
    pool.start()
    await pool.wait_ready()
    await asyncio.sleep(1.0)
    pids = [p.pid for p in pool.procs]
    idle = sum(psutil.Process(p).memory_info().rss for p in pids)
    scenario = Scenario(
        "bench",
        "bench",
        (Stage(Load(concurrency=streams), duration=120),),
        RequestShape(endpoint="completions", input_tokens=4, output_tokens=30_000, timeout=600),
    )
    ctrl = Controller(pool, bus, scenario, drain_grace=0)
    task = asyncio.create_task(ctrl.run())
    t0 = time.monotonic()
    opened = 0
    while time.monotonic() - t0 < wait_s:
        await asyncio.sleep(0.5)
        opened = bus.view().inflight
        if opened >= streams:
            break
    reached = time.monotonic() - t0
    await asyncio.sleep(2.0)  # a few tokens into each stream
    view = bus.view()
    busy = sum(psutil.Process(p).memory_info().rss for p in pids)
    failed = sum(s.failed for s in view.segments)
    ctrl.stop()
    await task
    return {
        "streams": streams,
        "open": view.inflight,
        "failed": failed,
        "errors": dict(view.errors),
        "seconds_to_open": reached,
        "worker_rss_idle_mib": idle / 2**20,
        "worker_rss_open_mib": busy / 2**20,
        "bytes_per_stream": (busy - idle) / max(1, view.inflight),
    }


def bench_streams(counts: tuple[int, ...], workers: int, sim_processes: int) -> list[dict[str, Any]]:
    """Memory per open stream (goal <= 16 KB) at each count, against a slow paced server (two tokens a second)."""
    out = []
    with paced_sim(0.5, max_seqs=1 << 20, stamp=False, processes=sim_processes) as sim:
        for n in counts:
            r = asyncio.run(_open_streams(sim.url, n, workers, 90.0))
            if n <= 8192:  # the same streams held by a bare aiohttp loop in one process: the library's own floor
                r["reference_bytes_per_stream"] = _reference_hold(sim.url, n)
            print(f"  streams {r}", flush=True)
            out.append(r)
    return out


def _reference_hold(url: str, streams: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=reference_client.run_hold, args=(url, streams, 90.0, q))
    p.start()
    r = q.get(timeout=150)
    p.join(10)
    return float(r["bytes_per_stream"])


def table_streams(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| streams asked | open | failed | seconds to open | worker RSS idle → open | per open stream |"
        " bare aiohttp loop, per stream |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r['streams']:,} | {r['open']:,} | {r['failed']:,} | {r['seconds_to_open']:.1f} | "
        f"{r['worker_rss_idle_mib']:.0f} → {r['worker_rss_open_mib']:.0f} MiB | "
        f"{r['bytes_per_stream'] / 1024:.1f} KB | "
        + (f"{r['reference_bytes_per_stream'] / 1024:.1f} KB |" if "reference_bytes_per_stream" in r else "— |")
        for r in rows
    )
    return "\n".join(lines)


# ---- 2. timing accuracy -----------------------------------------------------------------------


async def _session_window(url: str, streams: int, seconds: float, tui: bool) -> dict[str, Any]:
    """A whole llmsurge run as a user starts it (telemetry samplers on), headless or with the TUI drawing."""
    from llmsurge.engine.session import RunConfig, RunSession
    from llmsurge.tui.app import make_app

    cfg = RunConfig(
        scenario=_scenario(streams, seconds),
        url=url,
        workers=1,
        keep_alive=True,
        calibrate=False,
        measure_read_delay=True,
        output=Path(tempfile.mkdtemp()) / "r",
        telemetry=True,
    )
    if not tui:
        session = RunSession(cfg)
        await session.prepare()
        ctrl = session.start()
        task = asyncio.create_task(ctrl.run())
        await asyncio.sleep(WARM_S + 1.0)
        session.bus.read_delays = []
        await asyncio.sleep(seconds)
        d = list(session.bus.read_delays)
        ctrl.stop()
        await task
        session.close()
        return {"delays": d}
    app = make_app(cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        while app.session.controller is None:
            await pilot.pause(0.1)
        await pilot.pause(WARM_S + 1.0)
        app.session.bus.read_delays = []
        await pilot.pause(seconds)
        d = list(app.session.bus.read_delays)
        await pilot.press("q")
        await pilot.pause(2)
    return {"delays": d}


def bench_timing(repeats: int, seconds: float, streams: int = 256) -> dict[str, Any]:
    out: dict[str, Any] = {"headless": [], "tui": [], "reference": []}
    with paced_sim(0.02) as sim:
        pids = sim.pids
        for _ in range(repeats):
            out["headless"].append(
                percentiles_ms(asyncio.run(_session_window(sim.url, streams, seconds, False))["delays"])
            )
            out["tui"].append(percentiles_ms(asyncio.run(_session_window(sim.url, streams, seconds, True))["delays"]))
            out["reference"].append(percentiles_ms(reference_window(sim.url, streams, seconds, pids, True)["delays"]))
            print(
                "  timing",
                {k: {q: round(v[-1][q], 3) for q in ("p50", "p99", "max")} for k, v in out.items()},
                flush=True,
            )
    return out


def table_timing(rows: dict[str, Any]) -> str:
    lines = ["| client (256 streams, 20 ms steps) | p50 ms | p99 ms | max ms | chunks |", "|---|---:|---:|---:|---:|"]
    for k, runs in rows.items():
        lines.append(
            f"| {k} | {fmt([r['p50'] for r in runs], 3)} | {fmt([r['p99'] for r in runs], 3)} | "
            f"{fmt([r['max'] for r in runs], 2)} | {fmt([r['n'] for r in runs])} |"
        )
    return "\n".join(lines)


# ---- 3. UI cost -------------------------------------------------------------------------------


async def _ui_cost(url: str, inflight: int, seconds: float, workers: int = 1) -> dict[str, Any]:
    from llmsurge.engine.session import RunConfig
    from llmsurge.tui.app import make_app
    from llmsurge.widgets.load_panel import LoadPanel

    sc = Scenario(
        "bench",
        "bench",
        (Stage(Load(concurrency=inflight), duration=3600),),
        RequestShape(endpoint="chat", input_tokens=8, output_tokens=4096, timeout=600),
    )
    cfg = RunConfig(
        scenario=sc, url=url, workers=workers, keep_alive=True, calibrate=False, output=Path(tempfile.mkdtemp()) / "r"
    )
    app = make_app(cfg)
    async with app.run_test(size=(160, 48)) as pilot:
        bus = app.session.bus
        while bus.inflight_total < inflight * 0.98:
            await pilot.pause(0.2)
        me = psutil.Process()
        f0, c0, t0 = app.frames, me.cpu_times(), time.monotonic()
        await pilot.pause(seconds)
        f1, c1, t1 = app.frames, me.cpu_times(), time.monotonic()
        fps = (f1 - f0) / (t1 - t0)
        cpu = ((c1.user + c1.system) - (c0.user + c0.system)) / (t1 - t0)
        latencies, shown = [], []
        for _ in range(5):
            ctrl = app.session.controller
            assert ctrl is not None
            before = ctrl.load.concurrency
            t = time.monotonic()
            app.post_message(events.Key("plus", "+"))  # as the terminal driver delivers a key
            while ctrl.load.concurrency == before:  # noqa: ASYNC110 - polling is the measurement
                await asyncio.sleep(0.001)
            latencies.append((time.monotonic() - t) * 1000)
            target = f"c={ctrl.load.concurrency}"
            panel = app.screen.query_one(LoadPanel)
            while target not in _text(panel):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            shown.append((time.monotonic() - t) * 1000)
            await pilot.pause(0.3)
        await pilot.press("q")
        await pilot.pause(2)
    return {"fps": fps, "ui_cpu": cpu, "key_ms": latencies, "key_shown_ms": shown, "inflight": inflight}


def _text(widget: Any) -> str:
    from rich.console import Console

    c = Console(width=100, file=open(os.devnull, "w"))  # noqa: SIM115
    with c.capture() as cap:
        c.print(widget.content)
    return cap.get()


def bench_ui(
    repeats: int, seconds: float, inflight: int = 1000, step: float = 0.05, workers: int = 1, sim_processes: int = 1
) -> list[dict[str, Any]]:
    """The TUI's frames per second, CPU and key latency with ``inflight`` streams open (one token per ``step``)."""
    out = []
    for _ in range(repeats):  # a fresh server each time: one still closing the last run's streams is a load of its own
        with paced_sim(step, max_seqs=max(2048, inflight), stamp=False, processes=sim_processes) as sim:
            r = asyncio.run(_ui_cost(sim.url, inflight, seconds, workers))
            print(
                f"  ui fps {r['fps']:.1f} cpu {r['ui_cpu']:.0%} key {max(r['key_ms']):.0f} ms "
                f"shown {max(r['key_shown_ms']):.0f} ms",
                flush=True,
            )
            out.append(r)
    return out


def table_ui(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        [
            f"| {rows[0]['inflight']:,} requests in flight | median (min–max) |",
            "|---|---:|",
            f"| frames per second (snapshots drawn) | {fmt([r['fps'] for r in rows], 1)} |",
            f"| UI process CPU (% of one core) | {fmt([r['ui_cpu'] * 100 for r in rows])} |",
            f"| key press → controller changed (ms, worst of 5) | {fmt([max(r['key_ms']) for r in rows], 1)} |",
            f"| key press → load pane shows it (ms, worst of 5) | {fmt([max(r['key_shown_ms']) for r in rows], 1)} |",
        ]
    )


# ---- 4. memory --------------------------------------------------------------------------------


def bench_memory(total: int = 1_000_000, tokens: int = 256) -> dict[str, Any]:
    """Resident growth while ``total`` requests of ``tokens`` output tokens flow through the bus and the writer."""
    from llmsurge.metrics.records import RequestRecord
    from llmsurge.metrics.results import ResultWriter
    from llmsurge.metrics.snapshot import SnapshotBuilder

    bus = MetricsBus()
    snapshots = SnapshotBuilder(bus)
    rng = random.Random(1)
    itls = [[0.010 + rng.random() * 0.005 for _ in range(tokens - 1)] for _ in range(64)]
    folder = Path(tempfile.mkdtemp())
    writer = ResultWriter(folder)
    bus.on_records = writer.add_requests
    bus.open_segment("c=64", "bench")
    me = psutil.Process()
    rss0 = me.memory_info().rss
    marks: dict[str, float] = {}
    batch = 500
    t0 = time.monotonic()
    now = time.monotonic()
    for i in range(0, total, batch):
        recs = []
        for j in range(batch):
            r = RequestRecord(
                f"0-{i + j}",
                1,
                0,
                now,
                0.0,
                ttft=0.01,
                ttfc=0.01,
                e2el=0.01 + sum(itls[j % 64]),
                itl=list(itls[j % 64]),
                output_tokens=tokens,
                prompt_tokens=8,
                finish_reason="length",
                end=now + 0.013,
            )
            recs.append(r)
        bus.ingest(
            WorkerTick(
                worker=0, records=recs, tokens=tokens * batch, started=i + batch, inflight=0, loop_lag_ms=0.0, cpu=0.0
            )
        )
        if (i // batch) % 200 == 0:
            snapshots.snapshot()  # as the UI would, now and then
        done = i + batch
        if done in (100_000, total):
            marks[f"{done}"] = (me.memory_info().rss - rss0) / 2**20
            print(
                f"  memory after {done:,} requests: +{marks[f'{done}']:.1f} MiB ({time.monotonic() - t0:.0f}s)",
                flush=True,
            )
    writer.close()
    size = (folder / "requests.jsonl").stat().st_size / 2**20
    shutil.rmtree(folder, ignore_errors=True)
    return {"rss_growth_mib": marks, "requests_jsonl_mib": size, "tokens": tokens}


def table_memory(r: dict[str, Any]) -> str:
    lines = [f"| requests ingested ({r.get('tokens', 4)} tokens each) | resident memory growth |", "|---:|---:|"]
    for k, v in r["rss_growth_mib"].items():
        lines.append(f"| {int(k):,} | {v:.1f} MiB |")
    lines.append(f"| (requests.jsonl on disk) | {r['requests_jsonl_mib']:.0f} MiB |")
    return "\n".join(lines)


# ---- 5. start-up ------------------------------------------------------------------------------

FIRST_FRAME = r"""
import os, time, asyncio
t_proc = float(os.environ["T_LAUNCH"])  # stamped by the parent just before it started this process
from llmsurge.engine.launch import launch, lighten_start
lighten_start(None)  # as `llmsurge demo` does (cli/commands/live.py), first
from llmsurge.engine.backend import auto_workers
early = launch(None, auto_workers())  # as `llmsurge demo` does: before the heavy imports
from llmsurge.engine.session import RunConfig, RunSession
from llmsurge.presets import find_preset
session = RunSession(RunConfig(scenario=find_preset("demo"), keep_alive=True), early)
session.prepare_early()  # as cli/commands/live.py does: discovery goes on while Textual is imported and draws
from llmsurge.tui.app import make_app
async def main():
    app = make_app(session.config, session=session)
    first = tokens = data = None
    async with app.run_test(size=(160, 48)) as pilot:
        while data is None:
            await asyncio.sleep(0.01)
            if first is None and app.frames >= 1:
                first = time.time() - t_proc
            snap = app.snapshots.snapshot()
            if tokens is None and snap.output_tok_s > 0 and app.frames >= 1:
                tokens = time.time() - t_proc
            if snap.completed > 0 and app.frames >= 1:
                data = time.time() - t_proc
        await pilot.press("q")
        await pilot.pause(2)
    print(first, tokens, data)
asyncio.run(main())
"""


def bench_startup(repeats: int) -> dict[str, Any]:
    """Start-up as a user gets it — the package byte-compiled, as ``pip install .`` leaves it — and from this source
    tree without bytecode (where ``PYTHONDONTWRITEBYTECODE`` is set, as on this machine, every process of the run
    compiles our ~100 modules from source at each start: a developer's checkout, not a user's install)."""
    out: dict[str, Any] = {}
    package = Path(__file__).resolve().parent.parent / "llmsurge"

    def drop_bytecode() -> None:
        for folder in package.rglob("__pycache__"):
            shutil.rmtree(folder, ignore_errors=True)

    drop_bytecode()
    out["source"] = _startup_once(repeats, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    try:
        out["installed"] = _startup_once(repeats, dict(os.environ))
    finally:
        drop_bytecode()  # generated here, for this measurement only
    for mode, r in out.items():
        print(
            f"  startup ({mode}) --version {fmt(r['version_ms'])} ms, first frame {fmt(r['first_frame_ms'])} ms,"
            f" first tok/s {fmt(r['first_tokens_ms'])} ms, first completed {fmt(r['first_data_ms'])} ms",
            flush=True,
        )
    return out


def _startup_once(repeats: int, base_env: dict[str, str]) -> dict[str, Any]:
    version, first, tokens, data = [], [], [], []
    for _ in range(max(repeats, 5)):
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "llmsurge", "--version"], check=True, capture_output=True, env=base_env)
        version.append((time.monotonic() - t) * 1000)
    for _ in range(repeats):
        # psutil's create_time() is no clock for this: /proc/stat's boot time is whole seconds (it read 1 s late)
        env = {**base_env, "T_LAUNCH": repr(time.time())}
        r = subprocess.run(
            [sys.executable, "-c", FIRST_FRAME], check=True, capture_output=True, text=True, timeout=120, env=env
        )
        a, b, c = (float(x) for x in r.stdout.split()[-3:])
        first.append(a * 1000)
        tokens.append(b * 1000)
        data.append(c * 1000)
    return {"version_ms": version, "first_frame_ms": first, "first_tokens_ms": tokens, "first_data_ms": data}


def table_startup(r: dict[str, Any]) -> str:
    rows = [
        ("`llmsurge --version` (whole process)", "version_ms"),
        ("demo: process start → first frame drawn", "first_frame_ms"),
        ("demo: process start → first non-zero tok/s on screen", "first_tokens_ms"),
        ("demo: process start → first completed request on screen", "first_data_ms"),
    ]
    lines = [
        "| start-up (ms, median (min–max)) | installed (byte-compiled) | source tree, no bytecode |",
        "|---|---:|---:|",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {fmt(r['installed'][key])} | {fmt(r['source'][key])} |")
    return "\n".join(lines)


# ---- 6. Ray actors against local processes ----------------------------------------------------------


def bench_ray(repeats: int, seconds: float, counts: tuple[int, ...] = (256, 1024)) -> dict[str, Any]:
    """The same window read by one local worker process and by one Ray actor on a local Ray instance: the cost
    of the Ray path (its collector drains actors over Ray calls instead of a pipe)."""
    import ray

    from llmsurge.engine.ray_pool import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows: dict[str, Any] = {}
    try:
        with fast_sim() as sim:
            pids = sim.pids
            for streams in counts:
                for client in ("local-1w", "ray-1w"):
                    runs = []
                    for _ in range(repeats):
                        backend = RayBackend("auto") if client.startswith("ray") else None
                        r = llmsurge_window(sim.url, streams, 1, seconds, pids, backend=backend)
                        r.pop("delays", None)
                        runs.append(r)
                        print(
                            f"  ray {streams:>5} {client:<9} {r['events'] / r['seconds']:>9,.0f} ev/s "
                            f"{r['events'] / max(r['cpu'], 1e-9):>9,.0f} ev/cpu-s  server cpu {r['server_cpu']:.0%}",
                            flush=True,
                        )
                    rows[f"{streams}/{client}"] = runs
    finally:
        ray.shutdown()
    return rows


def table_ray(rows: dict[str, Any]) -> str:
    lines = [
        "| streams | workers as | events/s (total) | events per worker CPU-s | vs local | Ray's daemons, cores "
        "| the pool's process, cores | events per CPU-s, all counted | vs local |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for streams in sorted({int(key.split("/")[0]) for key in rows}):
        base = base_all = None
        for client in ("local-1w", "ray-1w"):
            runs = rows.get(f"{streams}/{client}")
            if not runs:
                continue
            rate = [r["events"] / r["seconds"] for r in runs]
            per_cpu = [r["events"] / max(r["cpu"], 1e-9) for r in runs]
            every = [r["events"] / max(r["cpu"] + r.get("parent_cpu", 0.0) + r.get("ray_cpu", 0.0), 1e-9) for r in runs]
            daemons = [r.get("ray_cpu", 0.0) / r["seconds"] for r in runs]
            parent = [r.get("parent_cpu", 0.0) / r["seconds"] for r in runs]
            med, med_all = statistics.median(per_cpu), statistics.median(every)
            base, base_all = base or med, base_all or med_all
            ratio = "" if client == "local-1w" else f"{med / base:.2f}x"
            ratio_all = "" if client == "local-1w" else f"{med_all / base_all:.2f}x"
            lines.append(
                f"| {streams} | {client} | {fmt(rate)} | {fmt(per_cpu)} | {ratio} | {fmt(daemons, 2)} "
                f"| {fmt(parent, 2)} | {fmt(every)} | {ratio_all} |"
            )
    return "\n".join(lines)


DECODERS = ("stdlib", "orjson", "msgspec")


def _decoder(name: str) -> Any:
    """An event payload's JSON decoder, as the client would call it (bytes in)."""
    if name == "stdlib":
        decode = json.JSONDecoder().decode
        return lambda b: decode(b.decode())
    if name == "orjson":
        import orjson

        return orjson.loads
    import msgspec

    return msgspec.json.Decoder().decode


def bench_decode(repeats: int, events: int = 20_000) -> dict[str, Any]:
    """CPU per streamed event in the client's own per-event path (the SSE parser, the JSON decode, the record's
    bookkeeping: ``client._parse_stream``), with each JSON decoder; and the decode alone. No network: the bytes are
    a real vLLM chat stream's events, one per read, as a server writes them."""
    from llmsurge.engine import client as client_mod
    from llmsurge.engine.client import ChunkCounter
    from llmsurge.metrics.records import RequestRecord

    event = (
        b'data: {"id":"chatcmpl-9b1c","object":"chat.completion.chunk","created":1733500000,'
        b'"model":"Qwen/Qwen2.5-0.5B-Instruct","choices":[{"index":0,"delta":{"content":" word"},'
        b'"logprobs":null,"finish_reason":null}]}\n\n'
    )
    last = (
        b'data: {"id":"chatcmpl-9b1c","object":"chat.completion.chunk","created":1733500000,'
        b'"model":"Qwen/Qwen2.5-0.5B-Instruct","choices":[{"index":0,"delta":{"content":""},'
        b'"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":10,"completion_tokens":%d}}\n\n'
        b"data: [DONE]\n\n" % events
    )
    payload = event[6:-2]
    chunks = [event] * (events - 1) + [last]

    async def feed() -> Any:
        for c in chunks:
            yield c

    samples: dict[str, dict[str, list[float]]] = {n: {"event_us": [], "decode_us": []} for n in DECODERS}
    original = client_mod._fast_json
    try:
        for i in range(repeats):  # the decoders interleaved, each repeat in another order: no one gets a quiet turn
            for name in DECODERS[i % 3 :] + DECODERS[: i % 3]:
                decode = client_mod._fast_json = _decoder(name)  # the client hands it the payload's bytes
                rec = RequestRecord("b", 1, 0, time.monotonic(), time.time())
                t0 = time.process_time()
                ended = asyncio.run(client_mod._parse_stream(feed(), rec, ChunkCounter()))
                samples[name]["event_us"].append((time.process_time() - t0) / events * 1e6)
                assert ended and rec.ok and rec.chunks == events - 1, rec.error
                t0 = time.process_time()
                for _ in range(events):
                    decode(payload)
                samples[name]["decode_us"].append((time.process_time() - t0) / events * 1e6)
    finally:
        client_mod._fast_json = original
    return {n: {k: statistics.median(v) for k, v in d.items()} for n, d in samples.items()}


def table_decode(rows: dict[str, Any]) -> str:
    base = rows["stdlib"]["event_us"]
    lines = [
        "| decoder | µs per event, the client's per-event path | µs per decode alone | per event vs stdlib |",
        "|---|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['event_us']:.2f} | {r['decode_us']:.2f} | {r['event_us'] / base:.2f}x |")
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "which",
        nargs="*",
        default=["all"],
        choices=["all", "ingest", "rate", "streams", "timing", "ui", "memory", "startup", "ray", "decode"],
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--memory-requests", type=int, default=1_000_000)
    p.add_argument("--memory-tokens", type=int, default=256, help="output tokens per request in the memory test")
    p.add_argument("--sim-processes", type=int, default=1, help="fast-mode server processes for the ingest test")
    p.add_argument("--streams", default="32,256,1024", help="ingest, ray: concurrent streams, comma-separated")
    p.add_argument("--open-streams", default="1024,4096", help="streams: how many to hold open, comma-separated")
    p.add_argument("--workers", type=int, default=1, help="streams, ui: worker processes")
    p.add_argument("--ui-inflight", type=int, default=1000, help="ui: requests held in flight")
    p.add_argument("--ui-step", type=float, default=0.05, help="ui: seconds between each stream's tokens")
    p.add_argument(
        "--server",
        choices=["sim", "replay"],
        default="sim",
        help="ingest: the fast simulated server, or canned streams at a few µs per token (the client saturates)",
    )
    p.add_argument(
        "--event-rate",
        type=float,
        default=None,
        help="ingest with --server replay: pace it to this many events a second in all (every client then reads "
        "the same events, one a read); unset: as fast as it can",
    )
    p.add_argument(
        "--loops",
        action="store_true",
        help="ingest, rate: each llmsurge client also on the standard library's event loop (uvloop installed)",
    )
    p.add_argument("--pin", action="store_true", help="ingest: clients on the last core, servers on the rest")
    args = p.parse_args()
    which = set(args.which)
    global CLIENT_CORE
    if args.pin:
        CLIENT_CORE = (os.cpu_count() or 1) - 1
    if "all" in which:
        which = {"ingest", "rate", "timing", "ui", "memory", "startup"}
    RESULTS.mkdir(exist_ok=True)
    raw: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    tables = []
    if "ingest" in which:
        streams = tuple(int(x) for x in args.streams.split(","))
        raw["ingest"] = bench_ingest(
            args.repeats, args.seconds, args.sim_processes, streams, args.server, args.event_rate, args.loops
        )
        tables.append("### 1. Ingest ceiling\n\n" + table_ingest(raw["ingest"]))
    if "streams" in which:
        counts = tuple(int(x) for x in args.open_streams.split(","))
        raw["streams"] = bench_streams(counts, args.workers, args.sim_processes)
        tables.append("### 1c. Open streams\n\n" + table_streams(raw["streams"]))
    if "rate" in which:
        raw["rate"] = bench_rate(args.repeats, args.seconds, args.sim_processes, event_loops=args.loops)
        tables.append("### 1b. Request-rate ceiling\n\n" + table_rate(raw["rate"]))
    if "timing" in which:
        raw["timing"] = bench_timing(args.repeats, args.seconds)
        tables.append("### 2. Timing accuracy\n\n" + table_timing(raw["timing"]))
    if "ui" in which:
        raw["ui"] = bench_ui(
            args.repeats, args.seconds, args.ui_inflight, args.ui_step, args.workers, args.sim_processes
        )
        tables.append("### 3. UI cost\n\n" + table_ui(raw["ui"]))
    if "memory" in which:
        raw["memory"] = bench_memory(args.memory_requests, args.memory_tokens)
        tables.append("### 4. Memory\n\n" + table_memory(raw["memory"]))
    if "startup" in which:
        raw["startup"] = bench_startup(args.repeats)
        tables.append("### 5. Start-up\n\n" + table_startup(raw["startup"]))
    if "decode" in which:
        raw["decode"] = bench_decode(max(args.repeats, 5))
        tables.append("### 7. JSON decoders on the client's events\n\n" + table_decode(raw["decode"]))
    if "ray" in which:
        raw["ray"] = bench_ray(args.repeats, args.seconds, tuple(int(x) for x in args.streams.split(",")))
        tables.append("### 6. Ray actors against local processes\n\n" + table_ray(raw["ray"]))
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"\nmachine: {raw['machine']}\n")
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
