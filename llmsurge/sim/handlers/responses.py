"""The Responses API (``POST /v1/responses``): input items and instructions, typed events
(``response.output_text.delta`` …, ``response.completed`` with the usage; ``response.incomplete`` when
``max_output_tokens`` ran out)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.answers import WORDS, event, prompt_tokens, whole
from llmsurge.sim.model import Sequence

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

ROUTES = ("/v1/responses",)


async def handle(server: SimServer, request: web.Request) -> web.StreamResponse:
    """``/v1/responses``: the OpenAI Responses API, streamed as typed events (``response.output_text.delta``
    …, ``response.completed`` with the usage; ``response.incomplete`` when ``max_output_tokens`` ran out)."""
    body = await server.body(request)
    if isinstance(body, web.Response):
        return body
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        return server.error(400, "input must be a string or a list of input items", "BadRequestError")
    messages = [m for m in items if isinstance(m, dict)]
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    tokens = prompt_tokens({"messages": messages}, chat=True)
    asked = whole(body.get("max_output_tokens"), 0)
    max_tokens = max(1, asked or server.config.default_max_tokens)
    if not body.get("ignore_eos"):
        max_tokens = server.rng.randint(max(1, max_tokens // 2), max_tokens)
    seq = Sequence(len(tokens), max_tokens)
    seq.cached_tokens = server.engine.prefix_cache.admit(tokens)
    limit_hit = max_tokens == asked
    server.engine.submit(seq)
    rid = "resp_" + uuid.uuid4().hex

    async def respond() -> web.StreamResponse:
        if not body.get("stream"):
            await seq.finished()
            text = "".join(WORDS[i % len(WORDS)].decode() for i in range(1, seq.produced + 1))
            out = _response_object(rid, server.config.model, seq, limit_hit)
            out["output"] = [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
            ]
            return web.json_response(out, headers=server.who)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        created: dict[str, object] = {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}
        await resp.write(event(created))
        async for new in seq.produced_since():
            delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
            await resp.write(b"".join(event({**delta, "delta": WORDS[k % len(WORDS)].decode()}) for k in new))
        final = _response_object(rid, server.config.model, seq, limit_hit)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        await resp.write(event({"type": kind, "response": final}))
        await resp.write_eof()
        return resp

    return await server.answering(seq, respond())


def _response_object(rid: str, model: str, seq: Sequence, limit_hit: bool) -> dict[str, object]:
    """The Responses API's response object at its end: status, why it is incomplete, usage."""
    incomplete = limit_hit and seq.produced >= seq.max_tokens
    out: dict[str, object] = {
        "id": rid,
        "object": "response",
        "model": model,
        "status": "incomplete" if incomplete else "completed",
        "usage": {
            "input_tokens": seq.prompt_tokens,
            "input_tokens_details": {"cached_tokens": seq.cached_tokens},
            "output_tokens": seq.produced,
            "total_tokens": seq.prompt_tokens + seq.produced,
        },
    }
    if incomplete:
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    return out
