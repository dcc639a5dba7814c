"""What the endpoints' tests share: a headless run against the simulated server, and a server whose answers do not
match what was asked (two vectors for three inputs, a rerank result without a score, a Responses stream that fails,
a tool call whose arguments are not JSON)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import rows, run_cli, summary


def run_endpoint(tmp_path: Path, *flags: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """``llmsurge run`` of 24 short requests with ``flags``: its summary, its requests, what it printed."""
    out = tmp_path / "r"
    r = run_cli("run", "-c", "4", "-n", "24", "--output-tokens", "12", "--input-tokens", "32", *flags, "-o", str(out))
    assert r.returncode == 0, r.stderr
    return summary(out), rows(out, warmup=False), r.stdout


def sse(data: dict[str, Any]) -> bytes:
    """One typed event (the Responses and Messages APIs name each)."""
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    async def embeddings(_r: web.Request) -> web.Response:
        return web.json_response({"data": [{"embedding": [0.1]}, {"embedding": [0.2]}], "usage": {"prompt_tokens": 3}})

    async def rerank(_r: web.Request) -> web.Response:
        return web.json_response({"results": [{"index": 0}]})

    async def responses(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        delta = {"type": "response.output_text.delta", "delta": " hi"}
        failed = {"type": "response.failed", "response": {"error": {"message": "engine died"}}}
        await resp.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
        await resp.write(b"data: " + json.dumps(failed).encode() + b"\n\n")
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:  # a tool call whose arguments are not JSON
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, piece in enumerate(('{"query": ', "oops")):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
            if i == 0:
                call.update(id="call_1", type="function", function={"name": "lookup_0", "arguments": piece})
            choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls" if i else None}
            await resp.write(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.post("/v1/embeddings", embeddings),
            web.post("/v1/rerank", rerank),
            web.post("/v1/responses", responses),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
