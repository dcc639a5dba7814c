"""Shared fixtures: the simulated server over real sockets, in its own process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import Faults, SimConfig

FIXTURES = Path(__file__).parent / "fixtures"

LINGER_S = 10.0
"""How long a process a test started may take to exit after the test before it counts as left behind."""
KEEP = ("resource_tracker", "forkserver", "ray", "raylet", "gcs_server", "plasma", "dashboard")
"""Helpers of the interpreter or of a session-wide Ray cluster: not a test's to end."""


def _live_children() -> dict[int, psutil.Process]:
    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE or any(k in " ".join(p.cmdline()) for k in KEEP):
                continue
            out[p.pid] = p
        except psutil.Error:
            pass
    return out


@pytest.fixture(autouse=True)
def no_terminal_size_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command a test runs writes to a pipe, as into a file: sized to its content. A ``COLUMNS``/``LINES`` left in
    the environment (by the shell CI runs in, or anything in this process) would size it to a terminal that is not
    there; a test that wants a width gives it to its command."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every process a test starts ends with it: one still running :data:`LINGER_S` after the test is killed and
    the test fails, so a broken test can never keep pytest (and CI) waiting at exit."""
    before = set(_live_children())
    yield
    left = [p for pid, p in _live_children().items() if pid not in before]
    if not left:
        return
    _gone, alive = psutil.wait_procs(left, timeout=LINGER_S)
    names = []
    for p in alive:
        try:
            names.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    if names:
        pytest.fail(f"the test left {len(names)} process(es) running (killed now): {'; '.join(names)}")


def quick_timing(max_seqs: int = 64) -> EngineTiming:
    """A fast but still batch-shaped engine so tests finish in seconds."""
    return EngineTiming(step_base=0.002, step_per_seq=0.00005, prefill_per_token=0.000002, max_seqs=max_seqs)


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """A healthy simulated server for the whole session."""
    with SimProcess(SimConfig(timing=quick_timing())) as sim:
        yield sim.url


@pytest.fixture(scope="session")
def faulty_sim_url() -> Iterator[str]:
    """A simulated server injecting every kind of fault."""
    faults = Faults.parse("http500=0.05,http429=0.03,http503=0.03,reset=0.04,stall=0.03,malformed=0.04,no_usage=0.05")
    with SimProcess(SimConfig(timing=quick_timing(), faults=faults, stall_seconds=30.0, seed=7)) as sim:
        yield sim.url


def _hostile(*args: str) -> Iterator[str]:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "tests.hostile", *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    yield line.strip().rsplit(" ", 1)[-1]
    p.kill()
    p.wait(5)


@pytest.fixture(scope="session")
def hostile_url() -> Iterator[str]:
    """The hostile server (tests/hostile.py) in its own process: the model id picks how it misbehaves."""
    yield from _hostile()


@pytest.fixture(scope="session")
def closing_url() -> Iterator[str]:
    """The hostile server dropping requests on connections idle for 0.3 s, as llama-server closes them (5 s)."""
    yield from _hostile("--drop-idle", "0.3")
