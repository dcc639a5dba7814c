"""The endpoints llmsurge sends to, one module each, registered by name: ``--endpoint NAME``, its help and the
request options each takes come from here.

An endpoint module (``chat.py``, ``completions.py``, ``responses.py``, ``messages.py``, ``embeddings.py``,
``rerank.py``) defines ``ENDPOINT``, an :class:`~llmsurge.engine.endpoints.base.Endpoint`: its name and path, how
its request body is built, how one streamed event and a whole answer are read. Adding one is adding its module
(and its test); the registry finds it. Modules whose names start with ``_`` hold what several share.
"""

from __future__ import annotations

import importlib
import pkgutil

from llmsurge.engine.endpoints.base import Endpoint


def _discover() -> dict[str, Endpoint]:
    found: list[Endpoint] = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name == "base":
            continue
        endpoint = getattr(importlib.import_module(f"{__name__}.{module.name}"), "ENDPOINT", None)
        if endpoint is not None:
            found.append(endpoint)
    return {e.name: e for e in sorted(found, key=lambda e: (e.order, e.name))}


ENDPOINTS: dict[str, Endpoint] = _discover()
"""Name → endpoint, in help order (chat first)."""
PATHS = {name: e.path for name, e in ENDPOINTS.items()}
"""Name → path under the server's base URL."""
DEFAULT = "chat"


def endpoint(name: str) -> Endpoint:
    """The endpoint called ``name`` (``KeyError`` names the known ones)."""
    try:
        return ENDPOINTS[name]
    except KeyError:
        raise KeyError(f"unknown endpoint {name!r}: {', '.join(ENDPOINTS)}") from None


__all__ = ["DEFAULT", "ENDPOINTS", "PATHS", "Endpoint", "endpoint"]
