"""Embeddings (``POST /v1/embeddings``): one deterministic vector per input, its prompt computed in the batch."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.answers import COMPLETION_OVERHEAD

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

ROUTES = ("/v1/embeddings",)


async def handle(server: SimServer, request: web.Request) -> web.Response:
    """``/v1/embeddings``: one vector per input (a string or a list of strings), usage in prompt tokens."""
    body = await server.body(request)
    if isinstance(body, web.Response):
        return body
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        return server.error(400, "input must be a string or a non-empty list of strings", "BadRequestError")
    counts = [COMPLETION_OVERHEAD + len(x.split()) for x in inputs]
    seq = await server.pool(sum(counts))
    data = [{"object": "embedding", "index": i, "embedding": vector(x, EMBEDDING_DIM)} for i, x in enumerate(inputs)]
    usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    out: dict[str, object] = {"object": "list", "data": data, "model": server.config.model, "usage": usage}
    if server.config.timings:
        out["timings"] = seq.timings()
    return web.json_response(out, headers=server.who)


EMBEDDING_DIM = 32


def vector(text: str, dim: int) -> list[float]:
    """A deterministic unit-ish vector for ``text`` (the same text, the same vector)."""
    rng = random.Random(text)
    return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dim)]
