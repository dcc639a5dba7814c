"""Completions (``POST /v1/completions``): one prompt text in, ``choices`` texts out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from llmsurge.sim.handlers._openai import generate

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

ROUTES = ("/v1/completions",)


async def handle(server: SimServer, request: web.Request) -> web.StreamResponse:
    return await generate(server, request, chat=False)
