"""HTTP side of the simulated server: OpenAI-compatible endpoints, faults, and ``/metrics``.

Serves ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``, ``/v1/responses``, ``/v1/messages``
(``sim/messages.py``), ``/v1/embeddings``, ``/v1/rerank``, ``/health`` and ``/metrics`` (vLLM's metric names, plus
DCGM-exporter GPU gauges derived from the load so the demo's GPU pane moves).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from llmsurge.images import png_size
from llmsurge.quality import BY_PROMPT
from llmsurge.sim.model import Engine, EngineTiming, Sequence
from llmsurge.sim.prefix_cache import BLOCK_TOKENS

FAULT_NAMES = ("http500", "http429", "http503", "reset", "stall", "malformed", "no_usage")


@dataclass(frozen=True)
class Faults:
    """Per-request probabilities of each injected fault."""

    http500: float = 0.0
    http429: float = 0.0
    http503: float = 0.0
    reset: float = 0.0
    stall: float = 0.0
    malformed: float = 0.0
    no_usage: float = 0.0

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """``"http500=0.05,reset=0.02"`` → Faults. Raises ValueError naming the bad part."""
        if not spec:
            return cls()
        values: dict[str, float] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if name not in FAULT_NAMES or not sep:
                raise ValueError(f"bad fault {part!r}: use NAME=PROBABILITY with NAME one of {', '.join(FAULT_NAMES)}")
            try:
                p = float(raw)
            except ValueError:
                raise ValueError(f"bad fault {part!r}: the probability must be a number in [0, 1]") from None
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"bad fault {part!r}: the probability must be in [0, 1]")
            values[name] = p
        if sum(values.values()) > 1.0:
            raise ValueError("fault probabilities add up to more than 1")
        return cls(**values)

    def pick(self, rng: random.Random) -> str:
        """Draw the fault for one request ('' for none)."""
        x = rng.random()
        for f in fields(self):
            p = getattr(self, f.name)
            if x < p:
                return f.name
            x -= p
        return ""

    def describe(self) -> str:
        """``http500=0.05,reset=0.02`` (empty when no faults)."""
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name))


@dataclass
class SimConfig:
    """How the simulated server behaves."""

    model: str = "llmsurge-sim"
    timing: EngineTiming = field(default_factory=EngineTiming)
    faults: Faults = field(default_factory=Faults)
    stamp: bool = False  # put each chunk's send time (time.monotonic()) in it as "llmsurge_sent"
    stall_seconds: float = 120.0
    seed: int = 0
    default_max_tokens: int = 256
    gpu_name: str = "Simulated GPU 80GB"
    max_model_len: int = 32768
    """Prompt + max_tokens beyond this are refused with HTTP 400, as vLLM refuses them."""
    timings: bool = False
    """Put llama.cpp's ``timings`` (the engine's own prompt and decode times) beside the usage."""
    request_metrics: bool = False
    """Put vLLM's per-request ``metrics`` (``--enable-per-request-metrics``: queue, TTFT from scheduling,
    generation time) beside the usage."""
    reasoning_tokens: int = 0
    """A reasoning model: the first N output tokens of a chat stream come as ``delta.reasoning_content``."""
    answers: str = "correct"
    """How it answers the quality set (llmsurge.quality): "correct" (a healthy model), "wrong" (fluent but wrong:
    a broken quantization), "degenerate" (every answer one word repeated), or "" (filler words, as for any
    other prompt)."""
    adapters: tuple[str, ...] = ()
    """More model ids served by the same engine (LoRA adapters on vLLM): listed, and answered like ``model``."""

    def serves(self, model: str) -> bool:
        """Whether ``model`` is one this server answers for."""
        return model == self.model or model in self.adapters


_WORDS = [
    f" {w}".encode()
    for w in [
        "the",
        "river",
        "of",
        "a",
        "model",
        "and",
        "in",
        "to",
        "is",
        "that",
        "it",
        "for",
        "on",
        "with",
        "as",
        "was",
        "at",
        "by",
        "an",
        "be",
        "this",
        "from",
        "or",
    ]
]
CHAT_OVERHEAD = 8
COMPLETION_OVERHEAD = 1


def prompt_tokens(body: dict[str, object], chat: bool) -> list[str]:
    """The prompt as the simulated tokenizer sees it: a template's fixed tokens, then one token per word (so
    calibration can find both), role by role for chat."""
    if not chat:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(map(str, prompt))
        return ["<bos>"] * COMPLETION_OVERHEAD + str(prompt or "").split()
    tokens = ["<chat>"] * CHAT_OVERHEAD
    for m in body.get("messages") or []:  # type: ignore[attr-defined]
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            tokens += content.split()
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    tokens += str(part.get("text", "")).split()
                    tokens += ["<image>"] * image_tokens(part)
    return tokens


IMAGE_PATCH = 28
"""Pixels per side of one image token (Qwen2-VL's 14-pixel patches merged 2×2)."""


def image_tokens(part: dict[str, Any]) -> int:
    """An ``image_url`` part's tokens: one per 28×28 patch of a PNG data URL (0 for anything else)."""
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if part.get("type") != "image_url" or not isinstance(url, str) or not url.startswith("data:image/png;base64,"):
        return 0
    try:
        head = base64.b64decode(url[22 : 22 + 44])  # the signature and the IHDR chunk
    except ValueError:
        return 0
    size = png_size(head)
    if size is None:
        return 0
    return -(-size[0] // IMAGE_PATCH) * -(-size[1] // IMAGE_PATCH)


def count_prompt_tokens(body: dict[str, object], chat: bool) -> int:
    """How many prompt tokens the simulated server counts for ``body``."""
    return len(prompt_tokens(body, chat))


class SimServer:
    """The aiohttp application and its engine."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = Engine(config.timing)
        self.rng = random.Random(config.seed)
        self.created = int(time.time())
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/v1/models", self.models),
                web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.post("/v1/responses", self.responses),
                web.post("/v1/messages", self.messages),
                web.post("/v1/embeddings", self.embeddings),
                web.post("/v1/rerank", self.rerank),
                web.post("/rerank", self.rerank),
                web.post("/reset_prefix_cache", self.reset_prefix_cache),
                web.post("/start_profile", self.profiler),
                web.post("/stop_profile", self.profiler),
                web.get("/health", self.health),
                web.get("/metrics", self.metrics),
            ]
        )
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)
        self._who = {"x-llmsurge-sim-pid": str(os.getpid())}  # which process answered (several share a port)
        self.profiling = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_SimCollector(self))

    async def _on_startup(self, _app: web.Application) -> None:
        self.engine.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.engine.stop()

    async def reset_prefix_cache(self, _request: web.Request) -> web.Response:
        """vLLM's dev-mode route: empty the prefix cache (``llmsurge run --reset-cache``)."""
        self.engine.prefix_cache.clear()
        return web.Response(text="", headers=self._who)

    async def profiler(self, request: web.Request) -> web.Response:
        """vLLM's ``/start_profile`` and ``/stop_profile``: the simulated server has nothing to trace, and says so
        by answering as vLLM does (an empty 200)."""
        self.profiling = request.path == "/start_profile"
        return web.Response(text="", headers=self._who)

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(text="", headers=self._who)

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            headers=self._who,
            data={
                "object": "list",
                "data": [
                    {
                        "id": name,
                        "object": "model",
                        "created": self.created,
                        "owned_by": "llmsurge-sim",
                        "max_model_len": self.config.max_model_len,
                        **({"parent": self.config.model} if name != self.config.model else {}),
                    }
                    for name in (self.config.model, *self.config.adapters)
                ],
            },
        )

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain", charset="utf-8")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``/v1/messages``: the Anthropic Messages API (``sim/messages.py``)."""
        from llmsurge.sim.messages import messages

        return await messages(self, request)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The request's JSON object for this model, or the error answer to send instead."""
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "request body is not JSON", "BadRequestError")
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model") or self.config.model
        if not self.config.serves(model):
            return self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
        return body

    async def _pool(self, tokens: int) -> Sequence:
        """An embeddings or rerank pass through the engine: batched with the rest, its prompt computed, no
        token generated."""
        seq = Sequence(tokens, 1)
        seq.pooling = True
        self.engine.submit(seq)
        try:
            await seq.finished()
        finally:
            self.engine.finish(seq)
        return seq

    async def embeddings(self, request: web.Request) -> web.Response:
        """``/v1/embeddings``: one vector per input (a string or a list of strings), usage in prompt tokens."""
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
            return self._error(400, "input must be a string or a non-empty list of strings", "BadRequestError")
        counts = [COMPLETION_OVERHEAD + len(x.split()) for x in inputs]
        seq = await self._pool(sum(counts))
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(x, EMBEDDING_DIM)} for i, x in enumerate(inputs)
        ]
        usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
        out: dict[str, Any] = {"object": "list", "data": data, "model": self.config.model, "usage": usage}
        if self.config.timings:
            out["timings"] = seq.timings()
        return web.json_response(out, headers=self._who)

    async def rerank(self, request: web.Request) -> web.Response:
        """``/v1/rerank`` (vLLM, Jina, llama.cpp; ``/rerank`` too): the documents scored against the query, best
        first, ``top_n`` of them."""
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        query, docs = body.get("query"), body.get("documents", body.get("texts"))
        if isinstance(docs, list):
            docs = [d.get("text") if isinstance(d, dict) else d for d in docs]
        if (
            not isinstance(query, str)
            or not isinstance(docs, list)
            or not docs
            or not all(isinstance(d, str) for d in docs)
        ):
            return self._error(
                400, "query must be a string and documents a non-empty list of strings", "BadRequestError"
            )
        q = len(query.split())
        counts = [COMPLETION_OVERHEAD + q + len(str(d).split()) for d in docs]
        await self._pool(sum(counts))
        scores = [_vector(query + "\x00" + str(d), 1)[0] * 0.5 + 0.5 for d in docs]
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        top = body.get("top_n")
        n = top if isinstance(top, int) and 0 < top <= len(docs) else len(docs)
        results = [{"index": i, "relevance_score": scores[i], "document": {"text": docs[i]}} for i in order[:n]]
        usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
        return web.json_response(
            {"id": "rerank-" + uuid.uuid4().hex, "model": self.config.model, "usage": usage, "results": results},
            headers=self._who,
        )

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """``/v1/responses``: the OpenAI Responses API, streamed as typed events (``response.output_text.delta``
        …, ``response.completed`` with the usage; ``response.incomplete`` when ``max_output_tokens`` ran out)."""
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        if not isinstance(items, list) or not items:
            return self._error(400, "input must be a string or a list of input items", "BadRequestError")
        messages = [m for m in items if isinstance(m, dict)]
        if isinstance(body.get("instructions"), str):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        tokens = prompt_tokens({"messages": messages}, chat=True)
        max_tokens = max(1, int(body.get("max_output_tokens") or self.config.default_max_tokens))
        if not body.get("ignore_eos"):
            max_tokens = self.rng.randint(max(1, max_tokens // 2), max_tokens)
        seq = Sequence(len(tokens), max_tokens)
        seq.cached_tokens = self.engine.prefix_cache.admit(tokens)
        limit_hit = max_tokens == int(body.get("max_output_tokens") or 0)
        self.engine.submit(seq)
        rid = "resp_" + uuid.uuid4().hex
        try:
            if not body.get("stream"):
                await seq.finished()
                text = "".join(_WORDS[i % len(_WORDS)].decode() for i in range(1, seq.produced + 1))
                out = _response_object(rid, self.config.model, seq, limit_hit)
                out["output"] = [
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
                ]
                return web.json_response(out, headers=self._who)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            created = {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}
            await resp.write(_event(created))
            async for new in seq.produced_since():
                delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
                await resp.write(b"".join(_event({**delta, "delta": _WORDS[k % len(_WORDS)].decode()}) for k in new))
            final = _response_object(rid, self.config.model, seq, limit_hit)
            kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
            await resp.write(_event({"type": kind, "response": final}))
            await resp.write_eof()
            return resp
        except ConnectionError:
            seq.cancelled = True
            return web.Response()
        finally:
            self.engine.finish(seq)

    def _error(self, status: int, message: str, kind: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model") or self.config.model
        fault = self.config.faults.pick(self.rng)
        if fault == "http500":
            return self._error(500, "simulated internal server error", "InternalServerError")
        if fault == "http429":
            return self._error(429, "simulated rate limit", "RateLimitError")
        if fault == "http503":
            return self._error(503, "simulated overload", "ServiceUnavailableError")
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or self.config.default_max_tokens)
        max_tokens = max(1, max_tokens)
        tokens = prompt_tokens(body, chat)
        limit = self.config.max_model_len
        if len(tokens) + max_tokens > limit:
            where = "messages" if chat else "prompt"
            return self._error(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested"
                f" {len(tokens) + max_tokens} tokens ({len(tokens)} in the {where}, {max_tokens} in the completion)."
                f" Please reduce the length of the {where} or completion.",
                "BadRequestError",
            )
        words = self._answer(body, chat)
        if words is not None and self.config.answers != "degenerate":
            max_tokens = min(max_tokens, len(words))  # the answer, then EOS
        elif not body.get("ignore_eos"):
            max_tokens = self.rng.randint(max(1, max_tokens // 2), max_tokens)  # an "EOS" comes early
        seq = Sequence(len(tokens), max_tokens)
        seq.cached_tokens = self.engine.prefix_cache.admit(tokens)
        self.engine.submit(seq)
        tools = body.get("tools") if chat else None
        if tools is not None and not _tools_ok(tools):
            return self._error(400, "tools must be a list of function definitions with names", "BadRequestError")
        try:
            if tools:
                return await self._tool_call(
                    request, seq, model, str(tools[0]["function"]["name"]), bool(body.get("stream"))
                )
            if body.get("stream"):
                opts = body.get("stream_options")
                usage = isinstance(opts, dict) and bool(opts.get("include_usage")) and fault != "no_usage"
                return await self._stream(request, seq, chat, model, usage, fault, words)
            return await self._plain(seq, chat, model, fault, words)
        finally:
            self.engine.finish(seq)
            if chat and seq.produced and not seq.cancelled and words is None:  # the answer's blocks stay cached
                nwords = len(_WORDS)
                answer = [_WORDS[k % nwords].decode().strip() for k in range(1, seq.produced + 1)]
                self.engine.prefix_cache.insert(tokens + answer)

    async def _tool_call(
        self, request: web.Request, seq: Sequence, model: str, name: str, stream: bool
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
            out = {"id": rid, "object": "chat.completion", "model": model, "choices": [choice], "usage": _usage(seq)}
            return web.json_response(out, headers=self._who)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
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
                    fn: dict[str, Any] = {"arguments": pieces[sent]}
                    call: dict[str, Any] = {"index": 0, "function": fn}
                    if sent == 0:
                        call.update(id=call_id, type="function")
                        fn["name"] = name
                    sent += 1
                    parts.append(chunk({"tool_calls": [call]}, "tool_calls" if sent == seq.max_tokens else None))
                if parts:
                    await resp.write(b"".join(parts))
            usage = {"id": rid, "object": "chat.completion.chunk", "model": model, "choices": [], "usage": _usage(seq)}
            await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            seq.cancelled = True
        return resp

    def _answer(self, body: dict[str, Any], chat: bool) -> list[bytes] | None:
        """The answer's tokens (JSON-escaped, each with its leading space) in a quality mode, else None."""
        mode = self.config.answers
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
        self, seq: Sequence, chat: bool, model: str, fault: str, words: list[bytes] | None = None
    ) -> web.Response:
        await seq.finished()
        if words is not None:
            text = json.loads(b'"' + b"".join(_cycle(words, k) for k in range(1, seq.produced + 1)) + b'"')
        else:
            text = b"".join(_WORDS[i % len(_WORDS)] for i in range(seq.produced)).decode()
        rid = uuid.uuid4().hex
        finish = "stop" if words is not None and self.config.answers != "degenerate" else "length"
        choice: dict[str, object] = {"index": 0, "finish_reason": finish}
        if chat:
            thinking = min(self.config.reasoning_tokens, max(0, seq.produced - 1))
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
            out["usage"] = _usage(seq)
            if self.config.timings:
                out["timings"] = seq.timings()
            if self.config.request_metrics:
                out["metrics"] = vllm_metrics(seq)
        return web.json_response(out)

    async def _stream(
        self,
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
        thinking = min(self.config.reasoning_tokens, seq.max_tokens - 1) if chat else 0
        stamp = self.config.stamp
        nwords = len(_WORDS)
        # Where a mid-stream fault strikes: somewhere in the first half of the output.
        strike = self.rng.randint(1, max(1, seq.max_tokens // 2)) if fault in ("reset", "stall", "malformed") else -1
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
                            await self._stall(request)
                            return resp
                    last = sent == seq.max_tokens
                    stop = words is not None and self.config.answers != "degenerate"
                    tail = (b'"stop"}]' if stop else b'"length"}]') if last else b"null}]"
                    if stamp:
                        tail += b',"llmsurge_sent":' + repr(time.monotonic()).encode()
                    word = _cycle(words, sent) if words is not None else _WORDS[sent % nwords]
                    parts.append((think_head if sent <= thinking else head) + word + mid + tail + b"}\n\n")
                await resp.write(b"".join(parts))
            timings = b',"timings":' + json.dumps(seq.timings()).encode() if self.config.timings else b""
            if self.config.request_metrics:
                timings += b',"metrics":' + json.dumps(vllm_metrics(seq)).encode()
            end = usage_head + _usage_json(seq) + timings + b"}\n\n" if usage else b""
            await resp.write(end + b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:  # the client went away (or gave up): nothing more to send
            seq.cancelled = True
        except asyncio.CancelledError:
            seq.cancelled = True
            raise
        return resp

    async def _stall(self, request: web.Request) -> None:
        """Stop sending without closing, until the client gives up or ``stall_seconds`` pass."""
        deadline = time.monotonic() + self.config.stall_seconds
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
    words = [_WORDS[k % len(_WORDS)].decode() for k in range(1, n - 1)]
    return ['{"query": "', *words, '"}']


EMBEDDING_DIM = 32


def _vector(text: str, dim: int) -> list[float]:
    """A deterministic unit-ish vector for ``text`` (the same text, the same vector)."""
    rng = random.Random(text)
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dim)]


def _event(data: dict[str, Any]) -> bytes:
    """One Responses API server-sent event."""
    return f"event: {data['type']}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _response_object(rid: str, model: str, seq: Sequence, limit_hit: bool) -> dict[str, Any]:
    """The Responses API's response object at its end: status, why it is incomplete, usage."""
    incomplete = limit_hit and seq.produced >= seq.max_tokens
    out: dict[str, Any] = {
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


def vllm_metrics(seq: Sequence) -> dict[str, float]:
    """vLLM's per-request ``metrics`` (its shape in 0.32, recorded: realservers/samples) from the engine's clock:
    ``time_to_first_token_ms`` counts from scheduling (the prefill), ``generation_time_ms`` the decode."""
    t = seq.timings()
    gaps = max(1, seq.produced - 1)
    decode = float(t["predicted_ms"])
    return {
        "time_to_first_token_ms": float(t["prompt_ms"]),
        "generation_time_ms": decode,
        "queue_time_ms": float(t["queue_ms"]),
        "mean_itl_ms": decode / gaps,
        "tokens_per_second": seq.produced / (decode / 1000.0) if decode else 0.0,
    }


def _usage_json(seq: Sequence) -> bytes:
    return json.dumps(_usage(seq), separators=(",", ":")).encode()


def _usage(seq: Sequence) -> dict[str, object]:
    return {
        "prompt_tokens": seq.prompt_tokens,
        "completion_tokens": seq.produced,
        "total_tokens": seq.prompt_tokens + seq.produced,
        "prompt_tokens_details": {"cached_tokens": seq.cached_tokens},
    }


class _SimCollector(Collector):
    """Exports the engine's counters with vLLM's names, and GPU gauges with DCGM exporter's names."""

    def __init__(self, server: SimServer) -> None:
        self.server = server

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        s = self.server
        e = s.engine
        labels = ["engine", "model_name"]
        lv = ["0", s.config.model]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(lv, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(lv, value)
            return c

        def hist(name: str, doc: str, h: object) -> HistogramMetricFamily:
            from llmsurge.sim.model import Histogram

            assert isinstance(h, Histogram)
            m = HistogramMetricFamily(name, doc, labels=labels)
            m.add_metric(lv, h.cumulative(), h.total)
            return m

        yield gauge("vllm:num_requests_running", "Number of requests in model execution batches.", len(e.running))
        yield gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", len(e.waiting))
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv_usage)
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=["engine", "block_size", "num_gpu_blocks", "kv_cache_size_tokens", "enable_prefix_caching"],
        )
        cap = e.timing.kv_capacity_tokens
        info.add_metric(["0", str(BLOCK_TOKENS), str(cap // BLOCK_TOKENS), str(cap), "True"], 1.0)
        yield info
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", e.prompt_tokens_total)
        yield counter("vllm:generation_tokens", "Number of generation tokens processed.", e.generation_tokens_total)
        yield counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            e.prefix_cache.queries,
        )
        yield counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", e.prefix_cache.hits
        )
        yield counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", e.preemptions_total)
        yield hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", e.ttft)
        yield hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", e.itl)
        yield hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", e.e2e)
        yield hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", e.queue)
        yield hist(
            "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", e.prefill
        )
        yield hist("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", e.decode)
        # A pretend GPU whose load follows the batch.
        t = e.timing
        busy = min(1.0, len(e.running) / max(1, min(t.max_seqs, 256)) * 1.6) if e.running else 0.0
        glabels = ["gpu", "UUID", "device", "modelName", "Hostname"]
        gv = ["0", "GPU-00000000-sim", "nvidia0", s.config.gpu_name, "llmsurge-sim"]
        fb_total = 81559.0
        fb_used = 2400.0 + 60000.0 * e.kv_usage + (18000.0 if e.requests_total else 0.0)
        for name, doc, value in (
            ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", round(100.0 * busy)),
            ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", round(fb_used)),
            ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", round(fb_total - fb_used)),
            ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", round(70.0 + 550.0 * busy, 1)),
            ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", round(34.0 + 40.0 * busy)),
            ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", 1980 if busy else 345),
            ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", 2619 if busy else 1593),
            (
                "DCGM_FI_PROF_DRAM_ACTIVE",
                "Ratio of cycles the device memory interface is active.",
                round(0.8 * busy, 3),
            ),
        ):
            g = GaugeMetricFamily(name, doc, labels=glabels)
            g.add_metric(gv, value)
            yield g


async def start(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, reuse_port: bool = False
) -> tuple[web.AppRunner, int]:
    """Start the server on the running loop; returns its runner and the bound port.

    ``reuse_port`` lets several server processes share one port (the kernel spreads connections).
    """
    server = SimServer(config)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True, reuse_port=reuse_port or None)
    await site.start()
    listening: Any = site._server
    sockets = listening.sockets if listening is not None else []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


def serve(config: SimConfig, host: str, port: int, on_ready: object = None, reuse_port: bool = False) -> None:
    """Run the server until interrupted (``llmsurge sim``)."""
    from llmsurge.lifetime import raise_open_files_limit

    raise_open_files_limit()  # a socket per client stream: thousands of them

    async def main() -> None:
        runner, bound = await start(config, host, port, reuse_port)
        if callable(on_ready):
            on_ready(bound)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def to_json(config: SimConfig) -> dict[str, object]:
    """The config as plain data (for summaries)."""
    return {
        "model": config.model,
        "max_seqs": config.timing.max_seqs,
        "faults": config.faults.describe(),
        "stamp": config.stamp,
        "max_model_len": config.max_model_len,
        "reasoning_tokens": config.reasoning_tokens,
        "answers": config.answers or None,
    }


__all__ = ["Faults", "SimConfig", "SimServer", "serve", "start", "to_json"]
