"""A replay server for the ingest benchmark: canned completion streams, each token in its own write, at a few
microseconds of server CPU per token — so on a small machine the client, not the server, is what saturates.

It answers every ``POST`` with ``max_tokens`` chunks of an OpenAI completions stream (chunked transfer encoding,
one SSE event per chunk and per socket write, the usage and ``[DONE]`` after the last), keep-alive. Nothing is
modelled: it exists to measure what a client spends per token event when the server is not the limit (the 16-core
host's condition, on two cores).

Two ways to send: as fast as it can (each stream in turn, one event per write), which measures a client's ceiling
but lets a slower client read several events per read (the server wrote more while it was busy), so the figure
favours the slower client; or **paced** (``rate``: events per second in all), one event to every open stream per
step, the step stretched with the streams so the total stays the rate — every client then gets the same events in
the same reads (one each, as from a real server's decode steps), and CPU per event compares the clients alone.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import re
from typing import Any


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(obj: dict[str, Any]) -> bytes:
    return _chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def _token(text: str, finish: str | None) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish}
    return _event({"id": "cmpl-replay", "object": "text_completion", "choices": [choice]})


TOKEN = _token(" tok", None)
LAST = _token(" end", "length")
MAX_TOKENS = re.compile(rb'"max_tokens":\s*(\d+)')


def _tail(n: int) -> bytes:
    usage = {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": n + 4}
    return (
        _event({"id": "cmpl-replay", "object": "text_completion", "choices": [], "usage": usage})
        + _chunk(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )


class _Pacer:
    """One event to every open stream each step, the step ``streams / rate`` seconds: ``rate`` events a second in
    all, however many streams."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.streams: dict[asyncio.StreamWriter, list[Any]] = {}  # each: [events left, the future its handler awaits]
        self.task: asyncio.Task[None] | None = None

    async def send(self, writer: asyncio.StreamWriter, n: int) -> bool:
        """Send ``n - 1`` token events on ``writer``, paced; False when the client left."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._steps())
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.streams[writer] = [n - 1, done]
        return await done

    async def _steps(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            step = max(1e-3, len(self.streams) / self.rate)
            next_at = max(next_at + step, loop.time() - step)  # behind: no burst to catch up
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            for writer, state in list(self.streams.items()):
                transport = writer.transport
                if transport.is_closing() or state[0] <= 0:
                    del self.streams[writer]
                    state[1].set_result(state[0] <= 0)
                    continue
                if transport.get_write_buffer_size() < 1 << 16:  # a client that does not keep up skips a step
                    writer.write(TOKEN)
                    state[0] -= 1


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pacer: _Pacer | None) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            m = MAX_TOKENS.search(body)
            n = max(1, int(m.group(1))) if m else 16
            writer.write(HEAD)
            transport = writer.transport
            if pacer is not None and not await pacer.send(writer, n):
                return
            for _ in range(n - 1 if pacer is None else 0):
                if transport.is_closing():  # the client left: stop, or the next client's window pays for it
                    return
                writer.write(TOKEN)
                await asyncio.sleep(0)  # the streams take turns: one event per write, interleaved
                if transport.get_write_buffer_size() > 1 << 16:
                    await writer.drain()
            if transport.is_closing():
                return
            writer.write(LAST + _tail(n))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _main(out: Any, rate: float | None) -> None:
    async def run() -> None:
        pacer = _Pacer(rate) if rate else None
        server = await asyncio.start_server(lambda r, w: _serve(r, w, pacer), "127.0.0.1", 0, backlog=4096)
        out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(run())


class ReplayServer:
    """The replay server in a process of its own (a context manager: ``url``, ``pids``); ``rate``: paced, events
    per second in all (None: as fast as it can)."""

    def __init__(self, rate: float | None = None) -> None:
        self.rate = rate
        self._proc: mp.process.BaseProcess | None = None
        self.url = ""

    def __enter__(self) -> ReplayServer:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        self._proc = ctx.Process(target=_main, args=(out, self.rate), daemon=True)
        self._proc.start()
        self.url = f"http://127.0.0.1:{out.get(timeout=30)}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(5)

    @property
    def pids(self) -> list[int]:
        return [self._proc.pid] if self._proc is not None and self._proc.pid is not None else []
