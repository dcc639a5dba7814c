"""Helpers the tests share: the CLI as a subprocess, waiting on a condition, reading a run's files.

One copy of each, so a fix (a timeout, an environment variable) reaches every test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "llmsurge"]


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``llmsurge ARGS`` in a child process, its output captured; ``env`` adds to this process's environment."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, **kw
    )


async def until(cond: Callable[[], bool], timeout: float = 20.0, pilot: Any = None, why: Any = None) -> None:
    """Wait until ``cond()`` holds (on a Pilot: letting the app run between checks); fail after ``timeout``."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"condition not reached in {timeout:g}s {why() if why else ''}"
        if pilot is not None:
            await pilot.pause(0.05)
        else:
            await asyncio.sleep(0.02)


def summary(folder: Path) -> dict[str, Any]:
    """A run's ``summary.json``."""
    return json.loads((folder / "summary.json").read_text())


def rows(folder: Path, warmup: bool = True) -> list[dict[str, Any]]:
    """A run's ``requests.jsonl`` (without warm-up requests when ``warmup`` is False)."""
    out = [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines() if line]
    return out if warmup else [q for q in out if not q.get("warmup")]
