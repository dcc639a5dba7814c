"""The httpx client of checks, probes and discovery (:class:`LoadClient`), carrying the load's own HTTP/1.1 client
for the requests it measures. Workers use :class:`~llmsurge.engine.http1.WirePool` directly and never import this
module (httpx and aiohttp cost a worker ~0.2 s and ~15 MB at start)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from llmsurge.engine.http1 import KEEPALIVE_S, WirePool
from llmsurge.net import tls_context


class LoadClient(httpx.AsyncClient):
    """An httpx client (probes, discovery, one-off requests) that also owns the load's own HTTP/1.1 client
    (:class:`~llmsurge.engine.http1.WirePool`) the hot path posts on: httpx's request building cost two thirds of a
    worker's CPU per request, and aiohttp's per-request machinery half of what was left (bench/RESULTS.md,
    "request-rate ceiling")."""

    def __init__(self, wire: Callable[[], WirePool] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._make_wire = wire
        self._wire: WirePool | None = None

    @property
    def wire(self) -> WirePool | None:
        """The hot path's client (made on first use, inside the running loop); None: requests go through httpx."""
        if self._wire is None and self._make_wire is not None:
            self._wire = self._make_wire()
        return self._wire

    async def _close_wire(self) -> None:
        if self._wire is not None:
            wire, self._wire, self._make_wire = self._wire, None, None
            await wire.close()

    async def aclose(self) -> None:
        await self._close_wire()
        await super().aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._close_wire()
        await super().__aexit__(exc_type, exc_value, traceback)


def make_client(timeout: float | None = None, urls: Iterable[str] = ()) -> LoadClient:
    """An httpx client on the aiohttp transport, with the load's own client for measured requests.

    ``urls``: the servers it will ask, for its TLS context (:func:`~llmsurge.net.tls_context`: none loaded for plain
    http; unknown: the verified one).
    """
    tls = tls_context(urls)

    def wire() -> WirePool:
        return WirePool(tls)

    def session() -> aiohttp.ClientSession:
        # httpx holds each request to its own timeout (aiohttp's default would end one at 5 minutes). Bodies are
        # read raw: an encoded one is decoded by the client's _decoded.
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S, ssl=tls, limit=0),
            timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=False,
        )

    # The transport's own TLS context is never used (the session above makes the connections): pass ours, or it
    # loads a CA bundle of its own.
    transport = AiohttpTransport(client=session, verify=tls)
    return LoadClient(wire, transport=transport, timeout=httpx.Timeout(timeout), verify=tls)
