"""The simulated server's Anthropic Messages API (``POST /v1/messages``), as vLLM and llama.cpp serve it: a system
prompt beside the messages, ``max_tokens`` required, and a stream of typed events — ``message_start`` (with the
input usage), ``content_block_start``, ``content_block_delta`` (``thinking_delta`` for a reasoning model's first
tokens, then ``text_delta``), ``content_block_stop``, ``message_delta`` (the stop reason and output tokens) and
``message_stop``. No ``[DONE]``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.answers import WORDS, event, prompt_tokens
from llmsurge.sim.model import Sequence

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer


def _usage(seq: Sequence) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` are those computed, the cache's reads counted apart."""
    return {
        "input_tokens": seq.prompt_tokens - seq.cached_tokens,
        "cache_read_input_tokens": seq.cached_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": seq.produced,
    }


def _system_text(system: object) -> str:
    if isinstance(system, list):  # text blocks
        return " ".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return str(system or "")


ROUTES = ("/v1/messages",)


async def handle(server: SimServer, request: web.Request) -> web.StreamResponse:
    """``/v1/messages``: the answer as the Messages API streams it (or whole, without ``stream``)."""
    body = await server.body(request)
    if isinstance(body, web.Response):
        return body
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        return server.error(400, "messages: a non-empty list is required", "invalid_request_error")
    limit = body.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return server.error(400, "max_tokens: a whole number ≥ 1 is required", "invalid_request_error")
    system = [{"role": "system", "content": _system_text(body.get("system"))}] if body.get("system") else []
    tokens = prompt_tokens({"messages": [*system, *(m for m in turns if isinstance(m, dict))]}, chat=True)
    max_tokens = limit if body.get("ignore_eos") else server.rng.randint(max(1, limit // 2), limit)
    seq = Sequence(len(tokens), max_tokens)
    seq.cached_tokens = server.engine.prefix_cache.admit(tokens)
    server.engine.submit(seq)
    mid = "msg_" + uuid.uuid4().hex
    model = str(body.get("model") or server.config.model)

    async def respond() -> web.StreamResponse:
        if not body.get("stream"):
            await seq.finished()
            text = "".join(WORDS[i % len(WORDS)].decode() for i in range(1, seq.produced + 1))
            return web.json_response(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "max_tokens" if seq.produced >= limit else "end_turn",
                    "usage": _usage(seq),
                },
                headers=server.who,
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        start: dict[str, object] = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": []}
        start.update(stop_reason=None, usage={**_usage(seq), "output_tokens": 1})
        await resp.write(event({"type": "message_start", "message": start}) + event({"type": "ping"}))
        thinking = min(server.config.reasoning_tokens, seq.max_tokens - 1)
        block = -1
        async for new in seq.produced_since():
            parts = []
            for k in new:
                kind = "thinking" if k <= thinking else "text"
                if block < 0 or (kind == "text" and k == thinking + 1):  # a new content block
                    if block >= 0:
                        parts.append(event({"type": "content_block_stop", "index": block}))
                    block += 1
                    opened = {"type": "content_block_start", "index": block, "content_block": {"type": kind, kind: ""}}
                    parts.append(event(opened))
                delta = {"type": f"{kind}_delta", kind: WORDS[k % len(WORDS)].decode()}
                parts.append(event({"type": "content_block_delta", "index": block, "delta": delta}))
            await resp.write(b"".join(parts))
        end = [event({"type": "content_block_stop", "index": max(block, 0)})]
        stop = "max_tokens" if seq.produced >= limit else "end_turn"
        end.append(
            event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": seq.produced},
                }
            )
        )
        end.append(event({"type": "message_stop"}))
        await resp.write(b"".join(end))
        await resp.write_eof()
        return resp

    return await server.answering(seq, respond())
