"""Chat completions (``POST /v1/chat/completions``): messages in, ``choices`` deltas out, tools and reasoning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.handlers._openai import generate

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

ROUTES = ("/v1/chat/completions",)


async def handle(server: SimServer, request: web.Request) -> web.StreamResponse:
    return await generate(server, request, chat=True)
