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
- ``gzip``: a normal stream, gzip-encoded (as gateways and proxies send it), whatever the client accepts
- ``redirect``: 307 to another origin
- ``json-answer``: a whole JSON completion where a stream was asked
- ``busy``: every other request (the first included) refused with 429 and ``Retry-After: 1``; the others
  answered normally, with prompt tokens that follow the prompt's length (so calibration can be measured)
- ``counted``: a normal stream (its arrivals, in ``/stats``, tell whether a run sent anything)
- ``escapes``: streams text and answers errors that carry terminal controls (see :data:`EVIL`)

``/v1/models`` lists every id; a bearer token containing ``bad-key`` gets 401 there. ``GET /hang`` never answers;
``GET /stats`` counts the generation requests received, by model, with their arrival times.

    python -m tests.hostile [--port 0] [--profile P]   prints "hostile server on http://127.0.0.1:PORT"

``--profile`` changes the whole server: ``trickle`` (every path sends its headers, then a byte a second forever),
``big-metrics`` (a 50 MB ``/metrics``), ``many-models`` (20,000 models, the first a 10 KB id) and ``escapes``
(the model id, error bodies, streamed text and ``/metrics`` labels carry terminal controls: :data:`EVIL`).

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
    "gzip",
    "redirect",
    "json-answer",
    "busy",
    "counted",
    "bunched",
    "peers",
)
MARKUP = "[bold red]PWNED[/] [link=http://x]click[/link] [/bold]"
EVIL = "esc\x1b[2JPWNED\x1b]0;PWNED-TITLE\x07\x1b]52;c;UFdORUQ=\x07\u009b31mPWNED\u202eDENWP\x07end"
"""Erase the screen, set the window title, write the clipboard (OSC 52), a C1 CSI, a bidi override, a bell."""
EVIL_RAW = (b"\x1b[2JPWNED", b"\x1b]0;PWNED", b"\x1b]52;c;", "\u009b31m".encode(), "\u202e".encode())
"""The bytes none of which may reach a terminal."""
STARTED = time.monotonic()
ARRIVALS: dict[str, list[float]] = {}
PEERS: dict[str, set[str]] = {}
"""Per model: the client addresses requests came from."""


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
    ARRIVALS.setdefault(model, []).append(round(time.monotonic() - STARTED, 3))
    PEERS.setdefault(model, set()).add(str(request.remote))
    if model == EVIL:
        if len(ARRIVALS[model]) % 3 == 1:  # the first request, and every third: refused with controls in the body
            return web.json_response({"error": {"message": f"bad request {EVIL}"}}, status=400)
        resp = await _stream(request)
        await resp.write(_chunk(f"answer {EVIL}\nline two", "stop"))
        await resp.write(
            b"data: "
            + json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}).encode()
            + b"\n\n"
        )
        await resp.write(b"data: [DONE]\n\n")
        return resp
    if model == "gzip":
        import gzip

        raw = (
            _chunk(" a")
            + _chunk(" b", "stop")
            + b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n'
        )
        payload = gzip.compress(raw + b"data: [DONE]\n\n")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"})
        await resp.prepare(request)
        for i in range(0, len(payload), 16):
            await resp.write(payload[i : i + 16])
        await resp.write_eof()
        return resp
    if model == "bunched":  # 16 tokens written four chunks at a time, 20 ms apart (a server batching its sends)
        resp = await _stream(request)
        for group in range(4):
            await asyncio.sleep(0.02)
            last = group == 3
            await resp.write(
                b"".join(_chunk(f" w{group}.{i}", "length" if last and i == 3 else None) for i in range(4))
            )
        usage = {"prompt_tokens": 7, "completion_tokens": 16, "total_tokens": 23}
        await resp.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp
    if model == "redirect":
        return web.Response(status=307, headers={"Location": "http://127.0.0.2:9/v1/chat/completions"})
    if model == "json-answer":
        choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        return web.json_response({"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    if model == "busy":
        if len(ARRIVALS[model]) % 2 == 1:
            ARRIVALS[model][-1] = -ARRIVALS[model][-1] - 1e-3  # refused ones are stored negative
            return web.json_response({"error": {"message": "busy"}}, status=429, headers={"Retry-After": "1"})
        words = len(str(body.get("messages", body.get("prompt", ""))).split())
        return await _normal(request, usage={"prompt_tokens": words + 5, "completion_tokens": 4})
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


def _trickle(_request: web.Request) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        while True:  # headers at once, then a byte a second: every per-read timeout is met, the answer never ends
            await resp.write(b":" if request.method == "POST" else b" ")
            await asyncio.sleep(1.0)

    return handler


async def _big_metrics(_request: web.Request) -> web.Response:
    line = b"vllm:num_requests_running" + b'{model_name="m",x="' + b"y" * 100 + b'"} 1\n'
    return web.Response(body=line * (50 * (1 << 20) // len(line)), content_type="text/plain")


async def _evil_metrics(_request: web.Request) -> web.Response:
    label = EVIL.replace("\\", "\\\\").replace('"', '\\"')
    text = f'vllm:num_requests_running{{model_name="{label}"}} 1\nvllm:num_requests_waiting{{model_name="{label}"}} 0\n'
    return web.Response(text=text, content_type="text/plain")


def _model_list(ids: list[str]) -> Any:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in ids]})

    return handler


async def _stats(_request: web.Request) -> web.Response:
    return web.json_response(ARRIVALS)


async def _peers(_request: web.Request) -> web.Response:
    return web.json_response({k: sorted(v) for k, v in PEERS.items()})


def make_app(drop_idle: float = 0.0, profile: str = "") -> web.Application:
    """The hostile application. ``drop_idle``: a request arriving on a connection idle that long is dropped
    (the connection aborted, no response byte) — what a client meets when it reuses a kept-alive connection just
    as llama-server closes it for idleness. ``profile``: a server-wide misbehaviour (see the module's text)."""
    last_used: dict[tuple[int, Any], float] = {}

    @web.middleware
    async def dropper(request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        # One connection, not one Python id: an id is reused once a closed connection's transport is freed, and
        # a fresh connection must never look idle (the client's re-send goes on one).
        key = (id(transport), transport.get_extra_info("peername") if transport is not None else None)
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
    if profile == "trickle":
        app.add_routes([web.route("*", "/{tail:.*}", _trickle(None))])
        return app
    models: Any = _models
    metrics: list[web.RouteDef] = []
    if profile == "many-models":
        models = _model_list(["m" * 10_240, *(f"model-{i:05d}" for i in range(1, 20_000))])
    elif profile == "escapes":
        models = _model_list([EVIL, *MODELS])
        metrics = [web.get("/metrics", _evil_metrics)]
    elif profile == "big-metrics":
        metrics = [web.get("/metrics", _big_metrics)]
    app.add_routes(
        [
            web.get("/v1/models", models),
            web.get("/health", _health),
            web.get("/hang", _hang),
            web.get("/stats", _stats),
            web.get("/peers", _peers),
            web.post("/v1/chat/completions", _generate),
            web.post("/v1/completions", _generate),
            *metrics,
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
    p.add_argument("--profile", default="", choices=("", "trickle", "big-metrics", "many-models", "escapes"))
    args = p.parse_args()

    async def run() -> None:
        runner = web.AppRunner(make_app(args.drop_idle, args.profile), access_log=None)
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
