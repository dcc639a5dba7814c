"""A replay server for the ingest benchmark: canned completion streams, each token in its own write, at a few
microseconds of server CPU per token — so on a small machine the client, not the server, is what saturates.

It answers every ``POST`` with ``max_tokens`` chunks of an OpenAI completions stream (chunked transfer encoding,
one SSE event per chunk and per socket write, the usage and ``[DONE]`` after the last), keep-alive. Nothing is
modelled: it exists to measure what a client spends per token event when the server is not the limit (the 16-core
host's condition, on two cores).
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


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
            for _ in range(n - 1):
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


def _main(out: Any) -> None:
    async def run() -> None:
        server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=4096)
        out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(run())


class ReplayServer:
    """The replay server in a process of its own (a context manager: ``url``, ``pids``)."""

    def __init__(self) -> None:
        self._proc: mp.process.BaseProcess | None = None
        self.url = ""

    def __enter__(self) -> ReplayServer:
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        self._proc = ctx.Process(target=_main, args=(out,), daemon=True)
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
