"""Helpers the tests share: the CLI as a subprocess, waiting on a condition, reading a run's files.

One copy of each, so a fix (a timeout, an environment variable) reaches every test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

CLI = [sys.executable, "-m", "llmsurge"]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sim_cli(*flags: str) -> Iterator[str]:
    """``llmsurge sim FLAGS`` in its own process, as a user starts it (on a free port); its URL, then it ends."""
    proc = subprocess.Popen([*CLI, "sim", "--port", "0", *flags], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http" in line, line
        yield line.split(" on ")[1].split(" ")[0]
    finally:
        proc.terminate()
        proc.wait(10)


def run_cli(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None, **kw: Any
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


async def pilot_until(pilot: Any, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """:func:`until` on a Pilot (the app runs between checks), pilot first."""
    await until(cond, timeout, pilot)


async def palette(pilot: Any, text: str, timeout: float = 20.0) -> None:
    """Open the command palette, type ``text``, wait until its search has finished and a hit is highlighted, then
    press enter: no fixed pause that a busy machine can outrun."""
    from textual.command import CommandInput, CommandList, CommandPalette

    app = pilot.app
    await pilot.press("ctrl+p")
    await until(lambda: isinstance(app.screen, CommandPalette), timeout, pilot)
    screen = app.screen
    if len(text) <= 20:
        await pilot.press(*text)
    else:  # a path: each key press waits for a busy screen to settle, so sixty of them can take a minute on CI
        await pilot.press(*text[:8])
        await until(lambda: screen.query_one(CommandInput).value == text[:8], timeout, pilot)
        screen.query_one(CommandInput).value = text

    def searched() -> bool:
        hits = screen.query_one(CommandList)
        busy = any(w.node is screen and w.is_running for w in app.workers)
        return screen.query_one(CommandInput).value == text and not busy and hits.highlighted is not None

    await until(searched, timeout, pilot)
    await pilot.press("enter")
    await until(lambda: app.screen is not screen, timeout, pilot)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def chromium() -> str:
    """Debian's chromium for the browser tests. Where it is not installed they skip, saying why — except under CI
    (``CI`` set), where a missing browser is a failure: CI installs it."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    why = "Debian's chromium is not installed (apt-get install chromium): the browser tests need it"
    if os.environ.get("CI"):
        raise AssertionError(why)
    import pytest

    pytest.skip(why)


async def run_prepared(session: Any, timeout: float = 120.0) -> Path:
    """Start a prepared :class:`~llmsurge.engine.session.RunSession`, run its scenario to the end, close and save
    it; returns its results folder."""
    ctrl = await asyncio.to_thread(session.start)
    try:
        await asyncio.wait_for(ctrl.run(), timeout)
    finally:
        await asyncio.to_thread(session.close)
    session.save()
    return Path(session.output)


@contextlib.asynccontextmanager
async def serving(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """An aiohttp app served on 127.0.0.1 for the ``async with`` block; yields its port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
