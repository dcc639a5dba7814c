"""The load's own HTTP/1.1 client: one POST on a pooled keep-alive connection, its body read as it arrives.

Why our own: a worker at the request-rate ceiling spent more CPU in aiohttp's per-request machinery (request and
response objects, a multidict of headers, the connector's bookkeeping, a stream reader and its timers) than in
everything the measurement needs, and a bare aiohttp loop — the reference the client is held to — pays the same
(bench/RESULTS.md, "request-rate ceiling"). This module does only what the hot path uses: POST a body, read the
status and headers, hand over the body's bytes as each read brings them, and keep the connection for the next
request when the answer ended cleanly with nothing after it. Everything else (probes, discovery, redirects, cookies,
proxies) stays on httpx.

The framing is llhttp's (Node.js's parser, through ``httptools``, as uvicorn uses it): it reads RFC 9112 as it is
written — chunked bodies with extensions and trailers, Content-Length, a body until the close, 1xx answers before
the final one — and refuses what the RFC refuses (Content-Length beside Transfer-Encoding, bad or conflicting
lengths, a chunk size that overflows). Its leniency flags accept what curl and httpx read too: bare-LF heads, obs-fold
(unfolded, as §5.2 asks of a user agent) and whitespace before a chunk extension's ``;``. Each read is fed to the
parser as it arrives, so the time the headers were complete is the time their bytes came.

Faults are :class:`WireError`\\ s: :class:`ConnectFailed` (no connection; the OS error is its cause),
:class:`Disconnected` (the server closed the connection; ``answered`` says whether any of the answer came, ``reused``
whether the connection came from the pool) and :class:`BadAnswer` (not HTTP/1.x as the RFC writes it).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

import llmsurge
from llmsurge.net import tls_context

HEAD_LIMIT = 64 * 1024
"""Bytes of status line and headers read before an answer is refused as malformed."""
KEEPALIVE_S = 4.0
"""Idle seconds before we drop a pooled connection ourselves: below llama.cpp's 5 s, so we never write a request
into a connection the server has just closed."""
HIGH_WATER = 1 << 20
"""Unread body bytes held before the socket stops being read (resumed when the reader comes for more)."""
LENIENCIES = {
    "lenient_optional_cr_before_lf": True,  # bare-LF status and header lines (curl and httpx read them)
    "lenient_headers": True,  # obs-fold, unfolded into one value (RFC 9112 §5.2: a user agent MUST)
    "lenient_spaces_after_chunk_size": True,  # "5 ;ext" (whitespace before a chunk extension)
}
"""What llhttp accepts beyond its strict reading; everything else it refuses is refused."""
SETTLE_S = 0.05
"""How long a request waits, after its answer ended by its own word (SSE's ``[DONE]``), for the framing's end (the
last chunk, usually one read later) so that its connection is pooled at once for the next request."""
LINGER_S = 1.0
"""How long such an answer may then take to end its framing, off the request's time, before its connection is
dropped rather than pooled."""

_now = time.monotonic
_NAMES: dict[bytes, str] = {}
"""Header names as read, in lower case: a few dozen in all, each one string however many answers hold it."""
_STABLE = frozenset(
    ("content-type", "transfer-encoding", "connection", "content-encoding", "server", "cache-control", "vary")
)
"""Headers whose values repeat answer after answer (not ``date`` or a request id): their strings are shared too."""
_VALUES: dict[bytes, str] = {}


class WireError(Exception):
    """A transport fault of the load's HTTP client."""


class ConnectFailed(WireError):
    """No connection to the server (the OS's error is the ``__cause__``)."""


class Disconnected(WireError):
    """The server closed the connection; ``answered``: some of its answer had come; ``reused``: the connection had
    carried an earlier request (only then may a request that got no byte back be sent again)."""

    def __init__(self, message: str, answered: bool, reused: bool = False) -> None:
        super().__init__(message)
        self.answered = answered
        self.reused = reused


class BadAnswer(WireError):
    """An answer that is not HTTP/1.x as RFC 9112 writes it."""


def _http2(first: bytes) -> bool:
    """Whether an answer's first bytes are HTTP/2's: a status line of version 2, or a SETTINGS frame (a server that
    speaks only HTTP/2 answers an HTTP/1.1 request with its preface)."""
    return first.startswith((b"HTTP/2", b"PRI * HTTP/2")) or (len(first) >= 9 and first[3] == 4 and first[:1] == b"\0")


class _Conn(asyncio.Protocol):
    """One connection and the answer being read on it: each read goes through llhttp as it arrives; the body's
    bytes wait in ``body`` for the reader."""

    __slots__ = (
        "body",
        "close_delimited",
        "closed",
        "complete",
        "connect_s",
        "dirty",
        "error",
        "first",
        "head_at",
        "head_bytes",
        "head_done",
        "head_size",
        "headers",
        "idle_since",
        "interim",
        "keep",
        "on_end",
        "parser",
        "paused",
        "pending",
        "reading",
        "route",
        "sink",
        "sink_done",
        "sink_error",
        "status",
        "tls_s",
        "transport",
        "uses",
        "version",
        "waiter",
    )

    def __init__(self, route: _Route) -> None:
        self.transport: asyncio.Transport | None = None
        self.route = route
        self.closed = False
        self.dirty = False  # bytes came that belong to no request: never reused
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.idle_since = 0.0
        self.uses = 0
        self.on_end: Callable[[], None] | None = None  # a released answer lingers until its framing ends
        self.connect_s = 0.0
        self.tls_s: float | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.parser.set_dangerous_leniencies(**LENIENCIES)
        self._reset()
        self.reading = False

    def _reset(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self.version = ""
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.head_bytes = 0  # bytes read while the head was not complete (an endless head is cut off)
        self.head_size = 0  # the headers' own bytes
        self.head_at = 0.0
        self.interim = False
        self.complete = False
        self.keep = False
        self.close_delimited = False
        self.error: BadAnswer | None = None
        self.first = b""
        self.body: list[bytes] = []
        self.pending = 0
        self.sink: Callable[[bytes], bool] | None = None  # the body handed over inside each read (pipe)
        self.sink_done = False  # the sink said it has had enough (or raised)
        self.sink_error: BaseException | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.reading or self.complete:
            self.dirty = True  # bytes with no request to answer (or after the answer's end): not reused
            if not self.reading:
                return
        if not self.head_done:
            if not self.first:
                self.first = data[:16]
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadAnswer("the server switched protocols (101): llmsurge's load client speaks HTTP/1.1"))
        except httptools.HttpParserError as exc:
            if self.complete:
                self.dirty = True  # bytes after a whole answer: the answer stands, the connection is not reused
            elif self.error is None:
                self._fail(self._refusal(exc))
        if not self.head_done and self.error is None and self.head_bytes > HEAD_LIMIT:
            self._fail(BadAnswer(f"the answer's headers exceed {HEAD_LIMIT // 1024} KB"))
        if self.on_end is not None:
            self.body.clear()  # after the answer's own end: not the answer
            self.pending = 0
            if self.complete or self.error is not None:
                self._ended()
        if self.sink is None or self.sink_done or self.complete or self.error is not None:
            self._wake()  # a piped body wakes its reader only at its end

    def eof_received(self) -> bool:
        self._lost()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    # -- llhttp's callbacks ----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.dirty = True  # a second answer to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done or self.complete:
            return  # trailers (after the last chunk) and anything after the answer: not the answer's headers
        self.head_size += len(name) + len(value) + 4
        if self.head_size > HEAD_LIMIT:
            self._fail(BadAnswer(f"the answer's headers exceed {HEAD_LIMIT // 1024} KB"))
            raise self.error  # type: ignore[misc]  # stops the parser
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < 256:
                _NAMES[name] = key
        if key in _STABLE:  # one string for a value every answer repeats (20,000 streams hold 20,000 headers)
            text = _VALUES.get(value)
            if text is None:
                text = value.decode("latin-1").strip()
                if len(_VALUES) < 256:
                    _VALUES[value] = text
        else:
            text = value.decode("latin-1").strip()
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer follows (101 raises an upgrade)
            self.interim = True
            self.headers = {}
            return
        self.status = status
        self.version = parser.get_http_version()
        self.keep = parser.should_keep_alive()
        headers = self.headers
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.strip().lower() != "chunked":
                self._fail(BadAnswer(f"a transfer coding this client does not decode: {coding[:60]!r}"))
                raise self.error  # type: ignore[misc]  # stops the parser
            if self.version == "1.0":
                self.keep = False  # RFC 9112 §6.1: chunked in HTTP/1.0 is faulty framing; close after it
        self.close_delimited = coding is None and "content-length" not in headers and status not in (204, 304)
        if self.close_delimited:
            self.keep = False
        self.head_at = _now()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        sink = self.sink
        if sink is not None:
            if not self.sink_done:
                try:
                    self.sink_done = sink(body)
                except BaseException as exc:  # handed to the reader, in its task
                    self.sink_error = exc
                    self.sink_done = True
            return
        self.body.append(body)
        self.pending += len(body)
        if self.pending > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.head_done:
            self.complete = True

    # -- for the pool and the reader -------------------------------------------------------------------------------

    def _refusal(self, exc: Exception) -> BadAnswer:
        first = self.first
        if not self.head_done and _http2(first):
            return BadAnswer(
                "the server speaks only HTTP/2: llmsurge's load client speaks HTTP/1.1 (serve HTTP/1.1 too)"
            )
        where = "the answer's body" if self.head_done else "the answer's head"
        what = f" (it began {first!r})" if not self.head_done and first else ""
        return BadAnswer(f"not HTTP/1.x as RFC 9112 writes it, in {where}: {exc}{what}")

    def _fail(self, error: BadAnswer) -> None:
        if self.error is None:
            self.error = error
        self.dirty = True

    def _lost(self) -> None:
        self.closed = True
        if self.head_done and not self.complete and self.close_delimited:
            self.complete = True  # a body until the close: the close is its end
        if self.on_end is not None:
            self._ended()
        self._wake()

    def _ended(self) -> None:
        end, self.on_end = self.on_end, None
        if end is not None:
            end()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def take(self) -> bytes:
        """The body's bytes received and not yet read."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.pending = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def wait(self) -> None:
        """Until the next read (or the close)."""
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
        conn = self._pooled(route.key)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(route)
        transport = conn.transport
        assert transport is not None
        conn._reset()
        conn.reading = True
        conn.uses += 1
        sent = _now()
        transport.write(head + b"%d\r\n\r\n" % len(body) + body)
        try:
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                if conn.closed:
                    answered = bool(conn.first)
                    where = "mid-answer" if answered else "before answering"
                    raise Disconnected(f"the server closed the connection {where}", answered, reused)
                await conn.wait()
            if conn.error is not None:
                raise conn.error
        except BaseException:
            self._drop(conn)
            raise
        return WireResponse(conn, self, reused, sent)

    def _pooled(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = _now()
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.dirty and now - conn.idle_since < self._keepalive_s:
                return conn
            self._drop(conn)
        return None

    async def _connect(self, route: _Route) -> _Conn:
        loop = asyncio.get_running_loop()
        t0 = _now()
        try:
            transport, conn = await loop.create_connection(
                lambda: _Conn(route), route.host, route.port, local_addr=self._local
            )
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {route.host}:{route.port}: {exc}") from exc
        self._open.add(conn)
        t1 = _now()
        conn.connect_s = t1 - t0
        if route.tls is not None:  # the handshake apart from the connect: each has its own figure
            try:
                secure = await loop.start_tls(transport, conn, route.tls, server_hostname=route.server_hostname)
            except (OSError, ConnectionError) as exc:
                self._drop(conn)
                raise ConnectFailed(f"TLS with {route.host}:{route.port} failed: {exc}") from exc
            except BaseException:
                self._drop(conn)
                raise
            if secure is None:
                self._drop(conn)
                raise ConnectFailed(f"TLS with {route.host}:{route.port} failed: the connection closed")
            conn.transport = secure
            conn.tls_s = _now() - t1
        if self._closed:
            self._drop(conn)
            raise ConnectFailed("the client is closed")
        return conn

    def _done(self, conn: _Conn, reusable: bool) -> None:
        """An answer was read (to its end, or not): keep the connection for the next request, or close it."""
        conn.reading = False
        if reusable and not self._fresh and not self._closed and not conn.closed and not conn.dirty:
            conn.idle_since = _now()
            self._idle.setdefault(conn.route.key, []).append(conn)
            if self._sweep_timer is None:
                self._sweep_timer = asyncio.get_running_loop().call_later(self._keepalive_s, self._sweep)
        else:
            self._drop(conn)

    def _sweep(self) -> None:
        """Close pooled connections idle past the keep-alive (or closed by the server) that no request took, as
        when the load drops from a thousand streams to ten; again while any stay pooled."""
        self._sweep_timer = None
        now = _now()
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if not conn.closed and not conn.dirty and now - conn.idle_since < self._keepalive_s:
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


class WireResponse:
    """An answer's status and headers (names in lower case); iterate it for the body's bytes as they arrive.

    Its phases: ``reused`` (the connection came from the pool), ``connect_s`` and ``tls_s`` (this request's own
    connection: 0 and None when reused, ``tls_s`` None over plain HTTP) and ``headers_s`` (request written → the
    head's last byte read)."""

    __slots__ = ("_conn", "_pool", "connect_s", "headers", "headers_s", "reused", "status", "tls_s")

    def __init__(self, conn: _Conn, pool: WirePool, reused: bool, sent: float) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self.reused = reused
        self.connect_s = 0.0 if reused else conn.connect_s
        self.tls_s = None if reused else conn.tls_s
        self.headers_s = conn.head_at - sent
        self._conn = conn
        self._pool = pool

    def __aiter__(self) -> WireResponse:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if conn.body:
                return conn.take()
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            if conn.closed:
                raise Disconnected("the server closed the connection mid-answer", True)
            await conn.wait()

    async def pipe(self, sink: Callable[[bytes], bool]) -> None:
        """Hand the body's bytes to ``sink`` inside each read, as llhttp frees them — no task is woken per read —
        until the answer ends or ``sink`` returns True (it has had enough). The sink's time is the read's time.
        Raises what iterating would: :class:`Disconnected`, :class:`BadAnswer`, or what ``sink`` raised."""
        conn = self._conn
        if conn.body and sink(conn.take()):
            return
        conn.sink, conn.sink_done, conn.sink_error = sink, False, None
        try:
            while not conn.sink_done:
                if conn.error is not None:
                    raise conn.error
                if conn.complete:
                    return
                if conn.closed:
                    raise Disconnected("the server closed the connection mid-answer", True)
                await conn.wait()
            if conn.sink_error is not None:
                raise conn.sink_error
        finally:
            conn.sink = None
            if conn.paused and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the answer's framing to end after its content has (SSE's
        ``[DONE]`` usually comes a read before the last chunk): a connection that ends in time is pooled at once."""
        conn = self._conn
        if conn is None or conn.complete or conn.closed or conn.error is not None:
            return
        deadline = _now() + timeout
        loop = asyncio.get_running_loop()
        while not (conn.complete or conn.closed or conn.error is not None):
            left = deadline - _now()
            if left <= 0:
                return
            w = conn.waiter = loop.create_future()
            timer = loop.call_later(left, conn._wake)
            try:
                await w
            finally:
                timer.cancel()
            conn.body.clear()  # after the content's end: not the answer
            conn.pending = 0

    @property
    def ended(self) -> bool:
        """Whether the whole answer has been read (its end, by its own framing or the close)."""
        conn = self._conn
        return conn is not None and conn.complete and not conn.body

    def release(self, linger: bool = False) -> None:
        """Done with this answer: its connection goes back to the pool if the answer was read to its end, cleanly,
        with nothing after it, and both sides keep it alive. ``linger``: the answer ended by its own word (SSE's
        ``[DONE]``) before its framing did; the connection is pooled if the framing ends within :data:`LINGER_S`
        (what follows is thrown away), else dropped — the request does not wait for it."""
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        pool = self._pool
        if linger and not conn.complete and conn.error is None and not conn.closed:
            conn.body.clear()
            conn.pending = 0
            if conn.paused and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()
            timer = asyncio.get_running_loop().call_later(LINGER_S, conn._ended)

            def ended() -> None:
                timer.cancel()
                pool._done(conn, conn.complete and conn.error is None and conn.keep)

            conn.on_end = ended
            return
        pool._done(conn, conn.complete and not conn.body and conn.error is None and conn.keep)


__all__ = ["BadAnswer", "ConnectFailed", "Disconnected", "WireError", "WirePool", "WireResponse"]
