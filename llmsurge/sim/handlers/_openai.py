"""OpenAI's chat completions and completions as the simulated server answers them: faults, the context limit, a
quality answer or filler words, tool calls, reasoning tokens, a stream of ``choices`` chunks (each chunk's bytes
made once: ``_framing``) or a whole answer, and the usage with llama.cpp's ``timings`` and vLLM's per-request
``metrics`` where asked."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.quality import BY_PROMPT
from llmsurge.sim.answers import WORDS, prompt_tokens, usage_json, vllm_metrics, whole
from llmsurge.sim.answers import usage as usage_of
from llmsurge.sim.model import Sequence

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer


async def generate(server: SimServer, request: web.Request, chat: bool) -> web.StreamResponse:
    body = await server.body(request)
    if isinstance(body, web.Response):
        return body
    model = str(body.get("model") or server.config.model)
    fault = server.config.faults.pick(server.rng)
    if fault == "http500":
        return server.error(500, "simulated internal server error", "InternalServerError")
    if fault == "http429":
        return server.error(429, "simulated rate limit", "RateLimitError")
    if fault == "http503":
        return server.error(503, "simulated overload", "ServiceUnavailableError")
    max_tokens = max(
        1, whole(body.get("max_tokens") or body.get("max_completion_tokens"), server.config.default_max_tokens)
    )
    tokens = prompt_tokens(body, chat)
    limit = server.config.max_model_len
    if len(tokens) + max_tokens > limit:
        where = "messages" if chat else "prompt"
        return server.error(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested"
            f" {len(tokens) + max_tokens} tokens ({len(tokens)} in the {where}, {max_tokens} in the completion)."
            f" Please reduce the length of the {where} or completion.",
            "BadRequestError",
        )
    words = _answer(server, body, chat)
    if words is not None and server.config.answers != "degenerate":
        max_tokens = min(max_tokens, len(words))  # the answer, then EOS
    elif not body.get("ignore_eos"):
        max_tokens = server.rng.randint(max(1, max_tokens // 2), max_tokens)  # an "EOS" comes early
    seq = Sequence(len(tokens), max_tokens)
    seq.cached_tokens = server.engine.prefix_cache.admit(tokens)
    server.engine.submit(seq)
    tools = body.get("tools") if chat else None
    if tools is not None and not _tools_ok(tools):
        return server.error(400, "tools must be a list of function definitions with names", "BadRequestError")
    try:
        name = _first_tool(tools)
        if name is not None:
            return await _tool_call(server, request, seq, model, name, bool(body.get("stream")))
        if body.get("stream"):
            opts = body.get("stream_options")
            usage = isinstance(opts, dict) and bool(opts.get("include_usage")) and fault != "no_usage"
            return await _stream(server, request, seq, chat, model, usage, fault, words)
        return await _plain(server, seq, chat, model, fault, words)
    finally:
        server.engine.finish(seq)
        if chat and seq.produced and not seq.cancelled and words is None:  # the answer's blocks stay cached
            nwords = len(WORDS)
            answer = [WORDS[k % nwords].decode().strip() for k in range(1, seq.produced + 1)]
            server.engine.prefix_cache.insert(tokens + answer)


async def _tool_call(
    server: SimServer, request: web.Request, seq: Sequence, model: str, name: str, stream: bool
) -> web.StreamResponse:
    """A call of the first tool: its arguments one token at a time (``{"query": "``, words, ``"}``), then
    ``finish_reason: tool_calls`` and the usage."""
    call_id = "call_" + uuid.uuid4().hex[:24]
    pieces = _tool_pieces(seq.max_tokens)
    rid = "chatcmpl-" + uuid.uuid4().hex
    if not stream:
        await seq.finished()
        whole = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": "".join(pieces[: seq.produced])},
        }
        choice = {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [whole]},
        }
        out = {"id": rid, "object": "chat.completion", "model": model, "choices": [choice], "usage": usage_of(seq)}
        return web.json_response(out, headers=server.who)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        c = {
            "id": rid,
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"

    sent = 0
    try:
        while sent < seq.max_tokens and not seq.cancelled:
            await seq.ready.wait()
            seq.ready.clear()
            parts = []
            while sent < seq.produced:
                fn: dict[str, object] = {"arguments": pieces[sent]}
                call: dict[str, object] = {"index": 0, "function": fn}
                if sent == 0:
                    call.update(id=call_id, type="function")
                    fn["name"] = name
                sent += 1
                parts.append(chunk({"tool_calls": [call]}, "tool_calls" if sent == seq.max_tokens else None))
            if parts:
                await resp.write(b"".join(parts))
        usage = {"id": rid, "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage_of(seq)}
        await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
    except ConnectionError:
        seq.cancelled = True
    return resp


def _answer(server: SimServer, body: dict[str, object], chat: bool) -> list[bytes] | None:
    """The answer's tokens (JSON-escaped, each with its leading space) in a quality mode, else None."""
    mode = server.config.answers
    if not mode:
        return None
    if mode == "degenerate":
        return [b" the"] * 4
    if chat:
        msgs = body.get("messages") or []
        last = msgs[-1] if isinstance(msgs, list) and msgs else {}
        text = last.get("content") if isinstance(last, dict) else None
    else:
        text = body.get("prompt")
    item = BY_PROMPT.get(str(text)) if text else None
    if item is None:
        return None
    answer = item.answer() if mode == "correct" else item.wrong_answer()
    return [json.dumps(p)[1:-1].encode() for p in re.findall(r"\s*\S+", answer)]


async def _plain(
    server: SimServer, seq: Sequence, chat: bool, model: str, fault: str, words: list[bytes] | None = None
) -> web.Response:
    await seq.finished()
    if words is not None:
        text = json.loads(b'"' + b"".join(_cycle(words, k) for k in range(1, seq.produced + 1)) + b'"')
    else:
        text = b"".join(WORDS[i % len(WORDS)] for i in range(seq.produced)).decode()
    rid = uuid.uuid4().hex
    finish = "stop" if words is not None and server.config.answers != "degenerate" else "length"
    choice: dict[str, object] = {"index": 0, "finish_reason": finish}
    if chat:
        thinking = min(server.config.reasoning_tokens, max(0, seq.produced - 1))
        choice["message"] = {"role": "assistant", "content": text}
        if thinking:
            split = text.split(" ")
            choice["message"] = {
                "role": "assistant",
                "reasoning_content": " ".join(split[: thinking + 1]),
                "content": " " + " ".join(split[thinking + 1 :]),
            }
    else:
        choice["text"] = text
    out: dict[str, object] = {
        "id": ("chatcmpl-" if chat else "cmpl-") + rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if fault != "no_usage":
        out["usage"] = usage_of(seq)
        if server.config.timings:
            out["timings"] = seq.timings()
        if server.config.request_metrics:
            out["metrics"] = vllm_metrics(seq)
    return web.json_response(out)


async def _stream(
    server: SimServer,
    request: web.Request,
    seq: Sequence,
    chat: bool,
    model: str,
    usage: bool,
    fault: str,
    words: list[bytes] | None = None,
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    head, role, mid, usage_head, think_head = _framing(chat, model)
    thinking = min(server.config.reasoning_tokens, seq.max_tokens - 1) if chat else 0
    stamp = server.config.stamp
    nwords = len(WORDS)
    # Where a mid-stream fault strikes: somewhere in the first half of the output.
    strike = server.rng.randint(1, max(1, seq.max_tokens // 2)) if fault in ("reset", "stall", "malformed") else -1
    sent = 0
    transport = request.transport
    try:
        while sent < seq.max_tokens:
            await seq.ready.wait()
            seq.ready.clear()
            upto = seq.produced
            if seq.cancelled or upto <= sent:
                continue
            parts: list[bytes] = []
            if sent == 0 and role:
                parts.append(role)
            while sent < upto:
                sent += 1
                if sent == strike:
                    if fault == "malformed":
                        parts.append(b'data: {"choices": [{"index": 0, "delta": {"content": "x"\n\n')
                    else:
                        if parts:
                            await resp.write(b"".join(parts))
                        if fault == "reset":
                            if transport is not None:
                                transport.abort()
                            return resp
                        await _stall(server, request)
                        return resp
                last = sent == seq.max_tokens
                stop = words is not None and server.config.answers != "degenerate"
                tail = (b'"stop"}]' if stop else b'"length"}]') if last else b"null}]"
                if stamp:
                    tail += b',"llmsurge_sent":' + repr(time.monotonic()).encode()
                word = _cycle(words, sent) if words is not None else WORDS[sent % nwords]
                parts.append((think_head if sent <= thinking else head) + word + mid + tail + b"}\n\n")
            await resp.write(b"".join(parts))
        timings = b',"timings":' + json.dumps(seq.timings()).encode() if server.config.timings else b""
        if server.config.request_metrics:
            timings += b',"metrics":' + json.dumps(vllm_metrics(seq)).encode()
        end = usage_head + usage_json(seq) + timings + b"}\n\n" if usage else b""
        await resp.write(end + b"data: [DONE]\n\n")
        await resp.write_eof()
    except ConnectionError:  # the client went away (or gave up): nothing more to send
        seq.cancelled = True
    except asyncio.CancelledError:
        seq.cancelled = True
        raise
    return resp


async def _stall(server: SimServer, request: web.Request) -> None:
    """Stop sending without closing, until the client gives up or ``stall_seconds`` pass."""
    deadline = time.monotonic() + server.config.stall_seconds
    while time.monotonic() < deadline:
        t = request.transport
        if t is None or t.is_closing():
            return
        await asyncio.sleep(0.2)


def _cycle(words: list[bytes], k: int) -> bytes:
    """Token ``k`` (from 1) of an answer, round again past its end."""
    return words[(k - 1) % len(words)]


def _framing(chat: bool, model: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """The fixed bytes around each token of one stream: (before the text, a role-only first chunk for chat,
    after the text up to the finish reason, the usage chunk up to its usage object, before a reasoning token)."""
    rid = uuid.uuid4().hex
    created = int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"
    prefix = f'data: {{"id":"{"chatcmpl" if chat else "cmpl"}-{rid}","object":"{kind}","created":{created},'
    prefix += f'"model":"{model}","choices":['
    usage_head = (prefix + '],"usage":').encode()
    if chat:
        head = (prefix + '{"index":0,"delta":{"content":"').encode()
        role = (prefix + '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n').encode()
        think = (prefix + '{"index":0,"delta":{"reasoning_content":"').encode()
        return head, role, b'"},"finish_reason":', usage_head, think
    text_head = (prefix + '{"index":0,"text":"').encode()
    return text_head, b"", b'","finish_reason":', usage_head, text_head


def _first_tool(tools: object) -> str | None:
    """The first tool's name (None: no tools; :func:`_tools_ok` has held their shape)."""
    first = tools[0] if isinstance(tools, list) and tools else None
    fn = first.get("function") if isinstance(first, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


def _tools_ok(tools: object) -> bool:
    """A list of ``{"type": "function", "function": {"name": …}}``."""
    return isinstance(tools, list) and all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)
        for t in tools
    )


def _tool_pieces(n: int) -> list[str]:
    """``n`` argument fragments that join into one JSON object: ``{"query": "``, words, ``"}``."""
    if n <= 1:
        return ["{}"]
    words = [WORDS[k % len(WORDS)].decode() for k in range(1, n - 1)]
    return ['{"query": "', *words, '"}']
