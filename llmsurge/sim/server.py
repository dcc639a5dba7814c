"""HTTP side of the simulated server: its configuration and faults, the application, and what it serves beside
its endpoints.

Each endpoint is a module of ``sim/handlers/`` (chat, completions, responses, messages, embeddings, rerank),
registered here; the server itself answers ``/v1/models``, ``/health``, ``/metrics`` (``sim/collector.py``: vLLM's
metric names, DCGM-exporter GPU gauges) and vLLM's admin routes (``/reset_prefix_cache``, ``/start_profile``,
``/stop_profile``).
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from llmsurge.sim.answers import count_prompt_tokens, prompt_tokens
from llmsurge.sim.collector import SimCollector
from llmsurge.sim.handlers import routes
from llmsurge.sim.model import Engine, EngineTiming, Sequence

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
                *(web.post(path, functools.partial(handle, self)) for path, handle in routes()),
                web.get("/v1/models", self.models),
                web.post("/reset_prefix_cache", self.reset_prefix_cache),
                web.post("/start_profile", self.profiler),
                web.post("/stop_profile", self.profiler),
                web.get("/health", self.health),
                web.get("/metrics", self.metrics),
            ]
        )
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)
        self.who = {"x-llmsurge-sim-pid": str(os.getpid())}  # which process answered (several share a port)
        self.profiling = False
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SimCollector(self))

    async def _on_startup(self, _app: web.Application) -> None:
        self.engine.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.engine.stop()

    async def reset_prefix_cache(self, _request: web.Request) -> web.Response:
        """vLLM's dev-mode route: empty the prefix cache (``llmsurge run --reset-cache``)."""
        self.engine.prefix_cache.clear()
        return web.Response(text="", headers=self.who)

    async def profiler(self, request: web.Request) -> web.Response:
        """vLLM's ``/start_profile`` and ``/stop_profile``: the simulated server has nothing to trace, and says so
        by answering as vLLM does (an empty 200)."""
        self.profiling = request.path == "/start_profile"
        return web.Response(text="", headers=self.who)

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(text="", headers=self.who)

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            headers=self.who,
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

    async def body(self, request: web.Request) -> dict[str, object] | web.Response:
        """The request's JSON object for this model, or the error answer to send instead."""
        try:
            body = await request.json()
        except ValueError:
            return self.error(400, "request body is not JSON", "BadRequestError")
        if not isinstance(body, dict):
            return self.error(400, "request body must be a JSON object", "BadRequestError")
        model = body.get("model") or self.config.model
        if not self.config.serves(model):
            return self.error(404, f"The model `{model}` does not exist.", "NotFoundError")
        return body

    async def pool(self, tokens: int) -> Sequence:
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

    def error(self, status: int, message: str, kind: str) -> web.Response:
        return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)

    async def answering(self, seq: Sequence, work: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        """``work`` (the answer to ``seq``'s request), with what every handler does around it: a client that went
        away abandons the sequence, and the engine is told when the handler is done with it."""
        try:
            return await work
        except ConnectionError:
            seq.cancelled = True
            return web.Response()
        finally:
            self.engine.finish(seq)


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


__all__ = ["Faults", "SimConfig", "SimServer", "count_prompt_tokens", "prompt_tokens", "serve", "start", "to_json"]
