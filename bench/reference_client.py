"""The reference client: a plain aiohttp loop as vLLM's benchmark reads streams.

Raw chunks from ``iter_any()``, messages split on blank lines, ``json.loads`` on each. Runs in its own process;
counts token events (and read delays of stamped chunks) inside a monotonic-clock window given by the parent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp


async def _in_window(
    loops: list[Callable[[aiohttp.ClientSession], Awaitable[None]]], start: float, end: float
) -> float:
    """Run the loops on one unbounded session; returns this process's CPU seconds between ``start`` and ``end``."""
    import aiohttp

    cpu: dict[str, float] = {}

    async def clock() -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        cpu["start"] = time.process_time()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        cpu["end"] = time.process_time()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        c = asyncio.create_task(clock())
        await asyncio.gather(*[loop(session) for loop in loops], return_exceptions=True)
        await c
    return cpu["end"] - cpu["start"]


async def _main(url: str, streams: int, start: float, end: float, measure: bool) -> dict[str, Any]:

    events = 0
    delays: list[float] = []
    payload = {
        "model": "llmsurge-sim",
        "prompt": "a b c d",
        "max_tokens": 2048,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def stream(session: aiohttp.ClientSession) -> None:
        nonlocal events
        while time.monotonic() < end:
            async with session.post(url + "/v1/completions", json=payload) as resp:
                buf = b""
                async for chunk in resp.content.iter_any():
                    t = time.monotonic()
                    buf += chunk
                    *messages, buf = buf.split(b"\n\n")
                    for m in messages:
                        m = m.strip()
                        if not m.startswith(b"data:"):
                            continue
                        data = m[5:].strip()
                        if data == b"[DONE]":
                            continue
                        obj = json.loads(data)
                        if obj.get("choices") and start <= t < end:
                            events += 1
                            if measure and "llmsurge_sent" in obj:
                                delays.append(t - obj["llmsurge_sent"])
                    if t >= end:
                        return

    cpu = await _in_window([stream] * streams, start, end)
    return {"events": events, "cpu": cpu, "delays": delays}


async def _rate(url: str, loops: int, start: float, end: float) -> dict[str, Any]:
    """One-token answers back to back on ``loops`` connections: requests started and finished per CPU-second."""

    done = 0
    payload = {
        "model": "llmsurge-sim",
        "prompt": "a b c d",
        "max_tokens": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def loop(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < end:
            async with session.post(url + "/v1/completions", json=payload) as resp:
                buf = b""
                ok = False
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    *messages, buf = buf.split(b"\n\n")
                    for m in messages:
                        m = m.strip()
                        if not m.startswith(b"data:"):
                            continue
                        data = m[5:].strip()
                        if data == b"[DONE]":
                            continue
                        obj = json.loads(data)
                        if obj.get("choices"):
                            ok = True
            if ok and start <= time.monotonic() < end:
                done += 1

    cpu = await _in_window([loop] * loops, start, end)
    return {"requests": done, "cpu": cpu}


def run_rate(url: str, loops: int, start: float, end: float, out: Any) -> None:
    """Process entry for the request-rate ceiling: put the result on ``out``."""
    out.put(asyncio.run(_rate(url, loops, start, end)))


def run(url: str, streams: int, start: float, end: float, measure: bool, out: Any) -> None:
    """Process entry: put the result on ``out``."""
    out.put(asyncio.run(_main(url, streams, start, end, measure)))


async def _hold(url: str, streams: int, wait_s: float) -> dict[str, Any]:
    import aiohttp
    import psutil

    body = {"model": "llmsurge-sim", "prompt": "a b c d", "max_tokens": 30_000, "stream": True, "ignore_eos": True}
    opened = 0
    all_open = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal opened
        async with session.post(url + "/v1/completions", json=body) as resp:
            opened += 1
            if opened == streams:
                all_open.set()
            async for _chunk in resp.content.iter_any():
                pass

    proc = psutil.Process()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    await asyncio.sleep(1.0)
    idle = proc.memory_info().rss
    tasks = [asyncio.create_task(one(session)) for _ in range(streams)]
    try:
        await asyncio.wait_for(all_open.wait(), wait_s)
    except TimeoutError:
        pass  # counted below: what opened
    await asyncio.sleep(2.0)  # a few tokens into each stream, as for the worker
    held = opened
    busy = proc.memory_info().rss
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    return {"streams": streams, "open": held, "bytes_per_stream": (busy - idle) / max(1, held)}


def run_hold(url: str, streams: int, wait_s: float, out: Any) -> None:
    """Process entry for memory per open stream: a bare aiohttp loop holding ``streams`` streams open."""
    out.put(asyncio.run(_hold(url, streams, wait_s)))
