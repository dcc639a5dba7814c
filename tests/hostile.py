"""A hostile OpenAI-compatible server for the reliability tests: it misbehaves in the ways real servers and
proxies do. The model id picks the misbehaviour, so one server serves every case:

- ``forever``: streams content chunks as fast as it can and never ends (ignores ``max_tokens``)
- ``no-headers``: accepts the request and never answers, not even with headers
- ``echo-headers``: answers 401 with the request's headers in the body (``Authorization`` included)
- ``markup``: answers 500 with Rich markup in the error message
- ``evil[/model]``: a model id that is Rich markup; streams a normal short answer
- ``absurd-usage``: a normal stream whose usage says 10**12 completion tokens and -5 prompt tokens
- ``bad-choices``: ``choices: [5]`` and ``usage: 5``
- ``huge-line``: one SSE line of 50 MB without a newline
- ``slow``: a normal 8-token stream, 0.4 s per token
- ``cached``: a normal stream whose usage reports cached prompt tokens (vLLM's and llama.cpp's forms)

``/v1/models`` lists every id; a bearer token containing ``bad-key`` gets 401 there. ``GET /hang`` never answers.

    python -m tests.hostile [--port 0] [--keepalive S]   prints "hostile server on http://127.0.0.1:PORT"

``--drop-idle S`` drops a request that comes on a connection idle for S seconds, as a client meets llama-server
closing kept-alive connections (after 5 s there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aiohttp import web

MODELS = (
    "normal",
    "forever",
    "no-headers",
    "echo-headers",
    "markup",
    "evil[/model]",
    "absurd-usage",
    "bad-choices",
    "huge-line",
    "slow",
    "cached",
)
MARKUP = "[bold red]PWNED[/] [link=http://x]click[/link] [/bold]"


def _chunk(text: str, finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice], **extra}).encode() + b"\n\n"


async def _models(request: web.Request) -> web.Response:
    if "bad-key" in request.headers.get("Authorization", ""):
        return web.json_response({"error": {"message": "invalid api key"}}, status=401)
    return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})


async def _stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    return resp


async def _normal(request: web.Request, tokens: int = 4, delay: float = 0.0, usage: dict | None = None) -> Any:
    resp = await _stream(request)
    for i in range(tokens):
        if delay:
            await asyncio.sleep(delay)
        await resp.write(_chunk(f" w{i}", "length" if i == tokens - 1 else None))
    u = usage if usage is not None else {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": tokens + 7}
    await resp.write(b"data: " + json.dumps({"choices": [], "usage": u}).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _generate(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model = body.get("model", "")
    if model == "no-headers":
        await asyncio.sleep(3600)
    if model == "echo-headers":
        echoed = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.json_response({"error": {"message": f"unauthorized; you sent:\n{echoed}"}}, status=401)
    if model == "markup":
        return web.json_response({"error": {"message": MARKUP}}, status=500)
    if model == "forever":
        resp = await _stream(request)
        block = _chunk(" x") * 64
        while True:
            await resp.write(block)
    if model == "absurd-usage":
        return await _normal(request, usage={"prompt_tokens": -5, "completion_tokens": 10**12})
    if model == "bad-choices":
        resp = await _stream(request)
        await resp.write(b'data: {"choices": [5], "usage": 5}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    if model == "huge-line":
        resp = await _stream(request)
        await resp.write(b'data: {"choices": [{"index": 0, "delta": {"content": "')
        piece = b"y" * (1 << 20)
        for _ in range(50):
            await resp.write(piece)
        await asyncio.sleep(3600)
    if model == "slow":
        return await _normal(request, tokens=8, delay=0.4)
    if model == "cached":
        usage = {
            "prompt_tokens": 100,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 64},
        }
        return await _normal(request, usage=usage)
    return await _normal(request)


def make_app(drop_idle: float = 0.0) -> web.Application:
    """The hostile application. ``drop_idle``: a request arriving on a connection idle that long is dropped
    (the connection aborted, no response byte) — what a client meets when it reuses a kept-alive connection just
    as llama-server closes it for idleness."""
    last_used: dict[int, float] = {}

    @web.middleware
    async def dropper(request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        key = id(transport)
        now = time.monotonic()
        idle = now - last_used.get(key, now)
        if drop_idle and idle >= drop_idle and transport is not None:
            transport.abort()
            return web.Response()
        try:
            return await handler(request)
        finally:
            last_used[key] = time.monotonic()

    app = web.Application(middlewares=[dropper])
    app.add_routes(
        [
            web.get("/v1/models", _models),
            web.get("/health", _health),
            web.get("/hang", _hang),
            web.post("/v1/chat/completions", _generate),
            web.post("/v1/completions", _generate),
        ]
    )
    return app


async def _hang(_request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    return web.Response()


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument(
        "--drop-idle",
        type=float,
        default=0.0,
        help="drop a request that arrives on a connection idle this long, before any response byte",
    )
    args = p.parse_args()

    async def run() -> None:
        runner = web.AppRunner(make_app(args.drop_idle), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"hostile server on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
