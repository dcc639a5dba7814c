"""The load's own HTTP/1.1 client: one POST on a pooled keep-alive connection, its body read as it arrives.

Why our own: a worker at the request-rate ceiling spent more CPU in aiohttp's per-request machinery (request and
response objects, a multidict of headers, the connector's bookkeeping, a stream reader and its timers) than in
everything the measurement needs, and a bare aiohttp loop — the reference the client is held to — pays the same
(bench/RESULTS.md, "request-rate ceiling"). This module does only what the hot path uses: POST a body, read the
status and headers, hand over the body's bytes as each read brings them (chunked, Content-Length, or until close),
and keep the connection for the next request when the answer ended cleanly. Everything else (probes, discovery,
redirects, cookies, proxies) stays on httpx.

Faults are :class:`WireError`\\ s: :class:`ConnectFailed` (no connection; the OS error is its cause),
:class:`Disconnected` (the server closed the connection; ``answered`` says whether any of the answer came) and
:class:`BadAnswer` (not HTTP/1.x as the RFC writes it).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from urllib.parse import urlsplit

import llmsurge
from llmsurge.net import tls_context

HEAD_LIMIT = 64 * 1024
"""Bytes of status line and headers read before an answer is refused as malformed."""
KEEPALIVE_S = 4.0
"""Idle seconds before we drop a pooled connection ourselves: below llama.cpp's 5 s, so we never write a request
into a connection the server has just closed."""
HIGH_WATER = 1 << 20
"""Unread bytes held before the socket stops being read (resumed when the reader comes for more)."""
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})(?:;[^\r\n]*)?\r\n")
"""A chunk-size line (its extensions ignored)."""


class WireError(Exception):
    """A transport fault of the load's HTTP client."""


class ConnectFailed(WireError):
    """No connection to the server (the OS's error is the ``__cause__``)."""


class Disconnected(WireError):
    """The server closed the connection; ``answered``: some of its answer had come."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class BadAnswer(WireError):
    """An answer that is not HTTP/1.x."""


class _Conn(asyncio.Protocol):
    """One connection: bytes received wait in ``buf`` for the reader."""

    __slots__ = ("buf", "closed", "idle_since", "paused", "route", "transport", "waiter")

    def __init__(self, route: _Route) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.idle_since = 0.0
        self.route = route

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def more(self, answered: bool) -> None:
        """Wait for bytes beyond those in ``buf``; raises :class:`Disconnected` when none will come."""
        if self.closed:
            raise Disconnected(
                "the server closed the connection " + ("mid-answer" if answered else "before answering"), answered
            )
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        w = self.waiter = asyncio.get_running_loop().create_future()
        await w

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Route:
    """Where a URL's requests go, and the start of each request to it, made once."""

    __slots__ = ("heads", "host", "key", "port", "server_hostname", "target", "tls")

    def __init__(self, url: str, tls: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if secure else 80)
        self.key = (parts.scheme, self.host, self.port)
        self.tls = (tls or tls_context([url])) if secure else None
        self.server_hostname = self.host if secure else None
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port and parts.port != (443 if secure else 80):
            host += f":{parts.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.target = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        self.heads: dict[tuple[tuple[str, str], ...], bytes] = {}

    def head(self, headers: dict[str, str], close: bool) -> bytes:
        """The request's line and headers, up to the value of its ``Content-Length``."""
        key = tuple(headers.items())
        head = self.heads.get(key)
        if head is None:
            lines = [self.target, f"User-Agent: llmsurge/{llmsurge.__version__}\r\n"]
            for name, value in headers.items():
                if any(c in name or c in value for c in "\r\n\0") or ":" in name:
                    raise ValueError(f"header {name!r} holds a line break or a NUL")
                lines.append(f"{name}: {value}\r\n")
            if close:
                lines.append("Connection: close\r\n")
            lines.append("Content-Length: ")
            head = "".join(lines).encode("latin-1")
            if len(self.heads) > 64:
                self.heads.clear()
            self.heads[key] = head
        return head


class WirePool:
    """POSTs on pooled keep-alive connections, as many at once as asked (no limit of its own).

    ``tls``: the context for https servers; ``source``: the local address connections bind to; ``fresh``: a new
    connection per request, closed after it (the re-send after a stale pooled connection); ``keepalive_s``: idle
    seconds after which a pooled connection is not reused (below the server's own, so a request is never written
    into a connection the server is closing).
    """

    def __init__(
        self,
        tls: ssl.SSLContext | None = None,
        source: str | None = None,
        fresh: bool = False,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._tls = tls
        self._local = (source, 0) if source else None
        self._fresh = fresh
        self._keepalive_s = keepalive_s
        self._routes: dict[str, _Route] = {}
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._open: set[_Conn] = set()
        self._closed = False
        self._sweep_timer: asyncio.TimerHandle | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> WireResponse:
        """Send ``body`` to ``url`` and wait for the answer's status and headers. The caller reads the body from
        the response and must :meth:`WireResponse.release` it (a connection whose answer was not read to its end
        is closed, never reused)."""
        if self._closed:
            raise ConnectFailed("the client is closed")
        route = self._routes.get(url)
        if route is None:
            route = self._routes[url] = _Route(url, self._tls)
        head = route.head(headers, self._fresh)
        conn = self._pooled(route.key) or await self._connect(route)
        transport = conn.transport
        assert transport is not None
        transport.write(head + b"%d\r\n\r\n" % len(body) + body)
        try:
            return await _read_head(conn, self)
        except BaseException:
            self._drop(conn)
            raise

    def _pooled(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.buf and now - conn.idle_since < self._keepalive_s:
                return conn
            self._drop(conn)
        return None

    async def _connect(self, route: _Route) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _Conn(route),
                route.host,
                route.port,
                ssl=route.tls,
                server_hostname=route.server_hostname,
                local_addr=self._local,
            )
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {route.host}:{route.port}: {exc}") from exc
        self._open.add(conn)
        if self._closed:
            self._drop(conn)
            raise ConnectFailed("the client is closed")
        return conn

    def _done(self, conn: _Conn, reusable: bool) -> None:
        """An answer was read to its end: keep the connection for the next request, or close it."""
        if reusable and not self._fresh and not self._closed and not conn.closed and not conn.buf:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.route.key, []).append(conn)
            if self._sweep_timer is None:
                self._sweep_timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._sweep)
        else:
            self._drop(conn)

    def _sweep(self) -> None:
        """Close pooled connections idle past the keep-alive (or closed by the server) that no request took, as
        when the load drops from a thousand streams to ten; again while any stay pooled."""
        self._sweep_timer = None
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if not conn.closed and now - conn.idle_since < self._keepalive_s:
                    kept.append(conn)
                else:
                    self._drop(conn)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle and not self._closed:
            self._sweep_timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._sweep)

    def _drop(self, conn: _Conn) -> None:
        self._open.discard(conn)
        conn.close()

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        for conn in list(self._open):
            self._drop(conn)
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    async def __aenter__(self) -> WirePool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connections(self) -> int:
        """Connections open now (idle ones included)."""
        return len(self._open)


async def _read_head(conn: _Conn, pool: WirePool) -> WireResponse:
    """Status line and headers (informational 1xx answers skipped)."""
    while True:
        buf = conn.buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > HEAD_LIMIT:
                raise BadAnswer(f"the answer's headers exceed {HEAD_LIMIT // 1024} KB")
            await conn.more(answered=bool(buf))
            end = buf.find(b"\r\n\r\n")
        if end > HEAD_LIMIT:
            raise BadAnswer(f"the answer's headers exceed {HEAD_LIMIT // 1024} KB")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit() or rest[3:4] not in b" ":
            raise BadAnswer(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise BadAnswer(f"a malformed header line: {line[:80]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise BadAnswer("the server switched protocols")
            continue  # 100 Continue, 103 Early Hints: the answer follows
        return WireResponse(conn, pool, version, status, headers)


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


class WireResponse:
    """An answer's status and headers (names in lower case); iterate it for the body's bytes as they arrive."""

    __slots__ = ("_conn", "_done", "_keep", "_left", "_mode", "_pool", "headers", "status")

    def __init__(self, conn: _Conn, pool: WirePool, version: bytes, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._pool = pool
        connection = _tokens(headers.get("connection"))
        self._keep = "keep-alive" in connection if version == b"HTTP/1.0" else "close" not in connection
        self._left = 0  # chunked: bytes left in this chunk (-1: its CRLF is next; -2: trailers); else body bytes
        self._done = False
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if status in (204, 304):
            self._mode, self._done = "none", True
        elif coding is not None:
            if [t.strip().lower() for t in coding.split(",")][-1] == "chunked":
                self._mode = "chunked"
            else:
                self._mode, self._keep = "close", False
        elif length is not None:
            sizes = {v.strip() for v in length.split(",")}
            size = sizes.pop() if len(sizes) == 1 else ""
            if not size.isdigit():
                raise BadAnswer(f"a malformed Content-Length: {length[:40]!r}")
            self._mode, self._left = "length", int(size)
            self._done = self._left == 0
        else:
            self._mode, self._keep = "close", False

    def __aiter__(self) -> WireResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            data = self._take(conn.buf) if conn.buf else b""
            if data:
                return data
            if self._done:
                raise StopAsyncIteration
            if conn.closed and self._mode == "close":
                self._done = True
                raise StopAsyncIteration
            await conn.more(answered=True)

    def _take(self, buf: bytearray) -> bytes:
        """The body's bytes in ``buf``, taken out of it (chunk framing removed)."""
        if self._mode == "chunked":
            return self._chunks(buf)
        if self._mode == "length":
            n = min(self._left, len(buf))
            data = bytes(buf[:n])
            del buf[:n]
            self._left -= n
            self._done = self._left == 0
            return data
        if self._mode == "close":
            data = bytes(buf)
            buf.clear()
            return data
        return b""

    def _chunks(self, buf: bytearray) -> bytes:
        out: list[bytes | bytearray] = []
        pos, size = 0, len(buf)
        left = self._left
        while pos < size:
            if left > 0:  # inside a chunk's data
                n = min(left, size - pos)
                out.append(buf[pos : pos + n])
                pos += n
                left -= n
                if left == 0:
                    left = -1
            elif left == -1:  # the CRLF after a chunk's data
                if size - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise BadAnswer("a chunk not followed by CRLF")
                pos += 2
                left = 0
            elif left == 0:  # a chunk-size line
                m = _CHUNK_SIZE.match(buf, pos)
                if m is None:
                    if buf.find(b"\r\n", pos, pos + 1026) >= 0 or size - pos > 1024:
                        raise BadAnswer(f"a malformed chunk size: {bytes(buf[pos : pos + 40])!r}")
                    break
                pos = m.end()
                left = int(m.group(1), 16)
                if left == 0:
                    left = -2
                    continue
                end = pos + left
                if end + 2 <= size:  # the whole chunk and its CRLF are here (the usual case: one SSE event)
                    if buf[end : end + 2] != b"\r\n":
                        raise BadAnswer("a chunk not followed by CRLF")
                    out.append(buf[pos:end])
                    pos = end + 2
                    left = 0
            else:  # after the last chunk: trailer lines, then an empty one
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > HEAD_LIMIT:
                        raise BadAnswer("trailers longer than 64 KB")
                    break
                empty = eol == pos
                pos = eol + 2
                if empty:
                    self._done = True
                    break
        del buf[:pos]
        self._left = left
        return b"".join(out)

    def release(self) -> None:
        """Done with this answer: its connection goes back to the pool if the answer was read to its end."""
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is not None:
            self._pool._done(conn, self._done and self._keep)


__all__ = ["BadAnswer", "ConnectFailed", "Disconnected", "WireError", "WirePool", "WireResponse"]
