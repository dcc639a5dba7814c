"""The simulated server's endpoints, one module each (as the client's: ``engine/endpoints/``): each defines
``ROUTES`` (the paths it answers with POST) and ``handle(server, request)``. The server registers every module it
finds here; modules whose names start with ``_`` hold what several share (``_openai.py``: chat and completions)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from llmsurge.sim.server import SimServer

Handle = Callable[["SimServer", web.Request], Awaitable[web.StreamResponse]]


def _discover() -> dict[str, ModuleType]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            found[module.name] = importlib.import_module(f"{__name__}.{module.name}")
    return found


HANDLERS: dict[str, ModuleType] = _discover()
"""Endpoint name → its module (``ROUTES``, ``handle``)."""


def routes() -> list[tuple[str, Handle]]:
    """Every (path, handler) the simulated server answers with POST."""
    return [(path, module.handle) for module in HANDLERS.values() for path in module.ROUTES]
