"""The load's own HTTP/1.1 client (llmsurge.engine.http1) against raw sockets that answer byte for byte."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from llmsurge.engine.client import ChunkCounter, execute
from llmsurge.engine.http1 import HIGH_WATER, BadAnswer, Disconnected, WirePool, WireResponse
from llmsurge.engine.httpclient import make_client
from llmsurge.metrics.records import RequestRecord
from tests.helpers import until

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """Reads each request (head and Content-Length body) and lets ``answer`` write whatever bytes it likes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
                self.requests.append(head + await reader.readexactly(length))
                await self.answer(reader, writer, len(self.requests))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


def fixed(raw: bytes, close: bool = False) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(raw)
        if close:
            await writer.drain()
            writer.close()
            raise ConnectionError

    return answer


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'


async def read_all(pool: WirePool, url: str, body: bytes = b"{}") -> tuple[WireResponse, bytes]:
    r = await pool.post(url, body, {"Content-Type": "application/json"})
    try:
        data = b"".join([chunk async for chunk in r])
    finally:
        r.release()
    return r, data


def decode(parts: list[bytes]) -> tuple[bytes, bool, bytes]:
    """Feed a chunked body to a response's decoder in these pieces: (body, ended, bytes left over)."""

    r = WireResponse.__new__(WireResponse)
    r._mode, r._left, r._done = "chunked", 0, False
    buf = bytearray()
    out = b""
    for p in parts:
        buf += p
        out += r._take(buf)
    return out, r._done, bytes(buf)


def test_a_chunked_body_decodes_the_same_however_it_is_split() -> None:
    pieces = [b"data: a\n\n", b"x" * 300, b"\r\n\r\n", b"y"]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(x), x) for x in pieces) + b"0\r\nTrailer: v\r\n\r\n"
    want = b"".join(pieces)
    for i in range(len(body)):
        for j in range(i, len(body), 7):
            assert decode([body[:i], body[i:j], body[j:]]) == (want, True, b""), (i, j)
    assert decode([body[:-2]])[1] is False  # the trailers' closing empty line has not come: not ended


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"zz\r\nab\r\n", "malformed chunk size"),
        (b"0x2\r\nab\r\n", "malformed chunk size"),
        (b"2\r\nabXY", "not followed by CRLF"),
        (b"1" * 2000, "malformed chunk size"),
    ],
)
def test_a_malformed_chunked_body_is_named(body: bytes, why: str) -> None:
    with pytest.raises(BadAnswer, match=why):
        decode([body])


async def test_kept_alive_connections_are_reused_and_closed_ones_are_not() -> None:
    async with RawServer(fixed(OK)) as server, WirePool() as pool:
        for _ in range(3):
            r, data = await read_all(pool, server.url)
            assert (r.status, data, r.headers["content-type"]) == (200, b'{"a": true}', "application/json")
        assert server.connections == 1 and pool.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"Content-Length: 2\r\n\r\n{}" in first and b"User-Agent: llmsurge/" in first

    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    async with RawServer(fixed(closing)) as server, WirePool() as pool:
        for _ in range(2):
            await read_all(pool, server.url)
        assert server.connections == 2


async def test_an_http10_body_without_a_length_is_read_to_the_close_and_1xx_answers_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    async with RawServer(fixed(raw, close=True)) as server, WirePool() as pool:
        r, data = await read_all(pool, server.url)
        assert (r.status, data) == (200, b"all of it")
        await read_all(pool, server.url)
        assert server.connections == 2


async def test_an_idle_connection_past_the_keepalive_is_not_reused() -> None:
    async with RawServer(fixed(OK)) as server:
        pool = WirePool(keepalive_s=0.05)
        try:
            await read_all(pool, server.url)
            await asyncio.sleep(0.1)
            await read_all(pool, server.url)
            assert server.connections == 2 and pool.connections == 1  # the stale one was closed, not kept
            await until(lambda: pool.connections == 0)  # and an idle one no request takes is closed too
            await until(lambda: server.closed == 2)
        finally:
            await pool.close()


async def test_an_answer_left_unread_closes_its_connection() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"  # the last chunk never comes

    async with RawServer(fixed(chunked)) as server, WirePool() as pool:
        r = await pool.post(server.url, b"{}", {})
        assert await r.__anext__() == b"hello"
        r.release()
        assert pool.connections == 0
        await until(lambda: server.closed == 1)


@pytest.mark.parametrize(
    ("raw", "close", "error", "answered"),
    [
        (b"", True, Disconnected, False),
        (b"HTTP/1.1 200 OK\r\nContent-Le", True, Disconnected, True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", True, Disconnected, True),
        (b"SSH-2.0-OpenSSH\r\n\r\n", False, BadAnswer, None),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", False, BadAnswer, None),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", False, BadAnswer, None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc", False, BadAnswer, None),
    ],
)
async def test_broken_answers_raise_what_they_are(raw: bytes, close: bool, error: type, answered: bool | None) -> None:
    async with RawServer(fixed(raw, close=close)) as server, WirePool() as pool:
        with pytest.raises(error) as caught:
            await read_all(pool, server.url)
        if answered is not None:
            assert isinstance(caught.value, Disconnected) and caught.value.answered is answered
        assert pool.connections == 0


async def test_a_broken_answer_is_a_counted_failure_of_its_kind() -> None:
    cases = {
        b"HTTP/1.1 200 OK\r\nX: y\r\n": ("reset", True),  # closed inside the headers
        b"HTTP/2 200\r\n\r\n": ("protocol", False),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nqq\r\n": ("protocol", False),
    }
    for raw, (kind, close) in cases.items():
        async with RawServer(fixed(raw, close=close)) as server, make_client() as client:
            rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
            await execute(client, server.url, {}, b"{}", True, rec, ChunkCounter())
            assert rec.status == "failed" and rec.error_kind == kind, (raw, rec.error)


async def test_a_reader_slower_than_the_network_holds_a_bounded_buffer() -> None:
    size = 16 * HIGH_WATER
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size

    async with RawServer(fixed(raw)) as server, WirePool() as pool:
        r = await pool.post(server.url, b"{}", {})
        got, most = 0, 0
        async for chunk in r:
            got += len(chunk)
            most = max(most, len(chunk))
            await asyncio.sleep(0.002)  # a slow reader: the socket is paused, not buffered whole
        r.release()
    assert got == size and most <= 2 * HIGH_WATER + 256 * 1024


async def test_a_header_that_would_split_the_request_is_refused() -> None:
    async with RawServer(fixed(OK)) as server, WirePool() as pool:
        with pytest.raises(ValueError, match="line break"):
            await pool.post(server.url, b"{}", {"Authorization": "Bearer x\r\nX-Injected: 1"})
        assert server.requests == []


async def test_closing_the_pool_closes_connections_in_use() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await reader.read()  # until the client closes

    async with RawServer(stall) as server:
        pool = WirePool()
        r = await pool.post(server.url, b"{}", {})
        assert r.status == 200 and pool.connections == 1
        await pool.close()
        await until(lambda: server.closed == 1)
        r.release()


async def test_https_is_verified_against_the_trusted_cas_and_a_stranger_is_a_named_connect_failure() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)

    server = RawServer(fixed(OK))
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=server_ctx)
    url = server.url.replace("http://", "https://")
    try:
        async with WirePool(tls=trusted) as pool:
            for _ in range(2):
                r, data = await read_all(pool, url)
                assert (r.status, data) == (200, b'{"a": true}')
            assert server.connections == 1  # kept alive over TLS too
        # The system's CAs (a context of its own: verifying loads CAs into it, and the process's shared one is
        # compared with a fresh one elsewhere): this test CA is not among them.
        async with WirePool(tls=ssl.create_default_context()) as stranger:
            rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
            await execute(stranger, url, {}, b"{}", True, rec, ChunkCounter())
        assert rec.error_kind == "connect" and "CERTIFICATE_VERIFY_FAILED" in rec.error, rec.error
    finally:
        await server.__aexit__()
