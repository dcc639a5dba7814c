"""Shared fixtures: the simulated server over real sockets, in its own process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import Faults, SimConfig

FIXTURES = Path(__file__).parent / "fixtures"


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
