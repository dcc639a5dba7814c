"""Rerank (``POST /v1/rerank``, and TEI's ``/rerank``): the documents scored against the query, best first."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.answers import COMPLETION_OVERHEAD
from llmsurge.sim.handlers.embeddings import vector

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

ROUTES = ("/v1/rerank", "/rerank")


async def handle(server: SimServer, request: web.Request) -> web.Response:
    """``/v1/rerank`` (vLLM, Jina, llama.cpp; ``/rerank`` too): the documents scored against the query, best
    first, ``top_n`` of them."""
    body = await server.body(request)
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
        return server.error(400, "query must be a string and documents a non-empty list of strings", "BadRequestError")
    q = len(query.split())
    counts = [COMPLETION_OVERHEAD + q + len(str(d).split()) for d in docs]
    await server.pool(sum(counts))
    scores = [vector(query + "\x00" + str(d), 1)[0] * 0.5 + 0.5 for d in docs]
    order = sorted(range(len(docs)), key=lambda i: -scores[i])
    top = body.get("top_n")
    n = top if isinstance(top, int) and 0 < top <= len(docs) else len(docs)
    results = [{"index": i, "relevance_score": scores[i], "document": {"text": docs[i]}} for i in order[:n]]
    usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    return web.json_response(
        {"id": "rerank-" + uuid.uuid4().hex, "model": server.config.model, "usage": usage, "results": results},
        headers=server.who,
    )
