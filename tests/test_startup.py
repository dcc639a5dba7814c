"""Start-up: the simulated server and the workers start before the target is known (`llmsurge demo` launches them
before its heavy imports), discovery runs on its own thread, and whatever a run never used is ended."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import psutil
import pytest

from llmsurge.engine.backend import LocalBackend
from llmsurge.engine.controller import Controller
from llmsurge.engine.launch import launch
from llmsurge.engine.pool import WorkerPool
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.engine.session import RunConfig, RunSession
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.summary import summarize_run
from llmsurge.net import Target
from tests.helpers import run_cli, run_prepared, summary, until


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.05)
    return False


def _scenario(requests: int = 12) -> Scenario:
    shape = RequestShape(input_tokens=16, output_tokens=8)
    return Scenario("startup", "", (Stage(Load(concurrency=2), requests=requests),), shape=shape)


async def test_warm_workers_take_their_target_when_it_is_known(sim_url: str) -> None:
    backend = LocalBackend()
    backend.warm(2)  # before any target exists
    warm = [p.pid for p, _q in backend._warm]
    bus = MetricsBus()
    pool = WorkerPool(Target(sim_url, "llmsurge-sim"), Calibration(), bus, workers=2, backend=backend)
    pool.start()
    assert sorted(s.proc.pid for s in pool.slots) == sorted(warm), "the pool started new processes"
    ctrl = Controller(pool, bus, _scenario(), keep_alive=False)
    await asyncio.wait_for(ctrl.run(), 60)
    s = summarize_run(bus.view(with_stats=True))
    assert s.run.completed == 12 and s.run.failed == 0
    assert _gone(warm)


def test_what_a_run_never_took_is_ended() -> None:
    launched = launch(None, 2)  # what `llmsurge demo` starts before its imports
    assert launched.sim is not None and launched.local is not None
    pids = [p.pid for p, _q in launched.local._warm] + [launched.sim._proc.pid]  # type: ignore[union-attr]
    # A session asking for other processes (a URL, another worker count) ends these and launches its own
    session = RunSession(RunConfig(scenario=_scenario(), url="http://127.0.0.1:9", workers=1), launched)
    session.launch()
    assert _gone(pids), "the early processes the session did not adopt are still running"
    assert session.sim is None and session._local is not None
    own = [p.pid for p, _q in session._local._warm]
    session.close()  # the run never started: its warm worker is ended too
    assert _gone(own)


async def test_a_quit_while_the_server_is_awaited_ends_the_wait(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = RunConfig(scenario=_scenario(), url=f"http://127.0.0.1:{port}", wait_timeout=600, output=tmp_path / "r")
    session = RunSession(cfg)
    preparing = session.prepare_early()
    await until(lambda: "waiting for" in preparing.status, 30)
    t = time.monotonic()
    await asyncio.to_thread(session.close)  # what q does before the run has begun
    assert time.monotonic() - t < 10
    assert not preparing._thread.is_alive()
    with pytest.raises(asyncio.CancelledError):
        await preparing.wait()


async def test_prepared_early_then_run(tmp_path: Path) -> None:
    """The demo's order: processes launched, discovery begun on its thread, then the run — same figures."""
    launched = launch(None, 1)
    session = RunSession(RunConfig(scenario=_scenario(), workers=1, output=tmp_path / "r"), launched)
    preparing = session.prepare_early()
    await preparing.wait()
    assert session.target is not None and session.server is not None and session.server.kind == "simulated"
    assert session.calibration.measured
    s = summary(await run_prepared(session, 60))
    assert s["completed"] == 12 and s["failed"] == 0


def test_a_bad_flag_after_the_early_launch_is_one_line() -> None:
    """`llmsurge demo` starts the server before it reads its flags into a config: a bad one is still one line,
    with no traceback from the processes it had started."""
    r = run_cli("demo", "--faults", "bogus=1", timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "bad fault 'bogus=1'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


LIGHTENED = """
import json, sys
from llmsurge.engine.launch import lighten_start
lighten_start(sys.argv[1] if len(sys.argv) > 1 else None)
import aiohttp.connector, httpx
from llmsurge.net import tls_context
cas = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]
print(json.dumps({"cli": "httpx._main" in sys.modules and sys.modules["httpx._main"] is not None, "aiohttp_cas": cas,
                  "plain": tls_context(["http://127.0.0.1:1"]).cert_store_stats()["x509_ca"]}))
"""


@pytest.mark.parametrize("url", [None, "https://vllm.example.com"])
def test_the_command_line_skips_what_its_run_never_uses(url: str | None) -> None:
    """Before its imports, the command line drops httpx's own command line and — with no URL, so only the simulated
    server over plain HTTP — the CA bundle aiohttp loads at import (~0.1 s a process). With a URL nothing about TLS
    changes: the default contexts still carry the system's certificates."""
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", LIGHTENED, *([url] if url else [])], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["cli"] is False and seen["plain"] == 0
    assert (seen["aiohttp_cas"] == 0) == (url is None), seen


def test_a_worker_process_loads_neither_httpx_nor_aiohttp() -> None:
    """Workers post on the load's own client (engine/http1.py): httpx and aiohttp (~0.3 s and ~15 MB a process,
    and a CA bundle) stay out of them, however they were imported."""
    import subprocess
    import sys

    code = (
        "import sys; import llmsurge.engine.backend, llmsurge.engine.worker, llmsurge.engine.ray_pool; "
        "print(sorted(m for m in ('httpx', 'aiohttp', 'httpx_aiohttp') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
