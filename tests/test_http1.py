"""The load's own HTTP/1.1 client (llmsurge.engine.http1) against raw sockets that answer byte for byte."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from llmsurge.engine.client import ChunkCounter, execute
from llmsurge.engine.http1 import HIGH_WATER, BadAnswer, Disconnected, WirePool, WireResponse, _Conn, _Route
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


COMPLETION = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n"
    b'{"choices": [{"text": "hi", "finish_reason": "stop"}]}      '
)
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'


async def read_all(pool: WirePool, url: str, body: bytes = b"{}") -> tuple[WireResponse, bytes]:
    r = await pool.post(url, body, {"Content-Type": "application/json"})
    try:
        data = b"".join([chunk async for chunk in r])
    finally:
        r.release()
    return r, data


class _Transport:
    """A transport that records pauses (the parser's flow control), for feeding a connection by hand."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def feed(parts: list[bytes]) -> _Conn:
    """A connection waiting for an answer, fed these reads as they would arrive from the socket."""
    conn = _Conn(_Route("http://127.0.0.1:9/v1/completions", None))
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    conn.reading = True
    for p in parts:
        conn.data_received(p)
    return conn


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_chunked_body_decodes_the_same_however_it_is_split() -> None:
    pieces = [b"data: a\n\n", b"x" * 300, b"\r\n\r\n", b"y"]
    body = b"".join(b"%x ;ext=1\r\n%s\r\n" % (len(x), x) for x in pieces) + b"0\r\nTrailer: v\r\n\r\n"
    answer = CHUNKED_HEAD + body
    want = b"".join(pieces)
    for i in range(len(CHUNKED_HEAD) - 5, len(answer)):
        for j in range(i, len(answer), 7):
            conn = feed([answer[:i], answer[i:j], answer[j:]])
            assert (conn.error, b"".join(conn.body), conn.complete, conn.dirty) == (None, want, True, False), (i, j)
            assert conn.headers == {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
    assert feed([answer[:-2]]).complete is False  # the trailers' closing empty line has not come: not ended


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"zz\r\nab\r\n", "Invalid character in chunk size"),
        (b"0x2\r\nab\r\n", "Invalid character in chunk size"),
        (b"2\r\nabXY", "Expected LF after chunk data"),
        (b"1" * 2000, "Chunk size overflow"),
    ],
)
def test_a_malformed_chunked_body_is_named(body: bytes, why: str) -> None:
    for cut in (1, len(body) // 2, len(body)):
        conn = feed([CHUNKED_HEAD + body[:cut], body[cut:]])
        assert conn.error is not None and why in str(conn.error) and "body" in str(conn.error)
        assert conn.dirty  # never reused


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
            for i in range(2):
                r, data = await read_all(pool, url)
                assert (r.status, data) == (200, b'{"a": true}')
                assert (r.tls_s is not None and r.tls_s > 0) if i == 0 else (r.tls_s is None and r.reused)
            assert server.connections == 1  # kept alive over TLS too
        # The system's CAs (a context of its own: verifying loads CAs into it, and the process's shared one is
        # compared with a fresh one elsewhere): this test CA is not among them.
        async with WirePool(tls=ssl.create_default_context()) as stranger:
            rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
            await execute(stranger, url, {}, b"{}", True, rec, ChunkCounter())
        assert rec.error_kind == "connect" and "CERTIFICATE_VERIFY_FAILED" in rec.error, rec.error
    finally:
        await server.__aexit__()


# ---- RFC 9112 framing on raw sockets: what works, what is refused, and when a connection is kept ---------------


def then(*answers: bytes) -> Answer:
    """Each request gets the next of ``answers`` (the last one for every request after)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(answers[min(n, len(answers)) - 1])

    return answer


@pytest.mark.parametrize(
    ("raw", "body", "kept"),
    [
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK, b'{"a": true}', True),
        (b'HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 11\n\n{"a": true}', b'{"a": true}', True),
        (b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
        (CHUNKED_HEAD + b'2 ;name="v";x\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n', b"ok", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False),  # HTTP/1.0 closes unless asked not to
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            b"ok",
            False,
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
    ],
    ids=["1xx", "bare-LF", "obs-fold", "chunk-ext-trailers", "1.0-keep-alive", "1.0", "1.0-chunked", "close"],
)
async def test_answers_the_rfc_allows_are_read_and_kept_only_when_both_sides_may(
    raw: bytes, body: bytes, kept: bool
) -> None:
    async with RawServer(fixed(raw)) as server, WirePool() as pool:
        r, data = await asyncio.wait_for(read_all(pool, server.url), 10)  # a bare-LF head must not wait for a timeout
        assert (r.status, data) == (200, body)
        await asyncio.wait_for(read_all(pool, server.url), 10)
        assert server.connections == (1 if kept else 2)


async def test_bytes_after_a_whole_answer_are_not_the_next_answer() -> None:
    smuggled = CHUNKED_HEAD + b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
    for split in (len(smuggled) - 40, len(smuggled)):  # in the same read as the last chunk, and after it
        parts = [smuggled[:split], smuggled[split:]]

        async def answer(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int, parts: list[bytes] = parts
        ) -> None:
            if n == 1:
                for p in parts:
                    writer.write(p)
                    await writer.drain()
            else:
                writer.write(second)

        async with RawServer(answer) as server, WirePool() as pool:
            assert (await read_all(pool, server.url))[1] == b"ok"
            await asyncio.sleep(0.05)  # the rest arrives while the connection is idle, or came with the end
            assert (await read_all(pool, server.url))[1] == b"second"  # not the smuggled head
            assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "Transfer-Encoding can't be present with Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok", "Invalid character in Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nok", "Content-Length overflow"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "Duplicate Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc", "Invalid character in Content-Length"),
        (CHUNKED_HEAD + b"fffffffffffffffff\r\n", "Chunk size overflow"),
        (b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", "the server speaks only HTTP/2"),
        (b"HTTP/2 200\r\n\r\n", "the server speaks only HTTP/2"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "transfer coding this client does not decode",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "switched protocols"),
    ],
    ids=[
        "CL+TE",
        "superscript-two",
        "5000-digits",
        "two-lengths",
        "list-length",
        "chunk-overflow",
        "h2-settings",
        "h2-status",
        "gzip-coding",
        "upgrade",
    ],
)
async def test_framing_the_rfc_refuses_is_a_named_protocol_failure(raw: bytes, why: str) -> None:
    async with RawServer(fixed(raw)) as server, make_client() as client:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        await asyncio.wait_for(execute(client, server.url, {}, b"{}", True, rec, ChunkCounter()), 10)
        assert (rec.status, rec.error_kind) == ("failed", "protocol"), rec.error
        assert why in rec.error
        assert client.wire.connections == 0  # never pooled


async def test_a_request_is_posted_once_unless_it_provably_went_unread() -> None:
    async def read_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        raise ConnectionError  # read the whole POST, then drop the connection without a byte

    async with RawServer(read_and_close) as server, make_client() as client:
        recs = []
        for i in range(5):
            rec = RequestRecord(f"r{i}", 1, 0, time.monotonic(), time.time())
            await execute(client, server.url, {}, b'{"n": %d}' % i, True, rec, ChunkCounter())
            recs.append(rec)
    assert len(server.requests) == 5  # exactly one POST per request: a fresh connection is never sent twice
    assert all(r.error_kind == "reset" and not r.resent and r.reused is None for r in recs)

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        if n % 2 == 0:  # the connection was kept after the first answer; the server closes it unanswered
            raise ConnectionError
        writer.write(COMPLETION)

    async with RawServer(answer_then_close) as server, make_client() as client:
        first = RequestRecord("a", 1, 0, time.monotonic(), time.time())
        await execute(client, server.url, {}, b"{}", True, first, ChunkCounter())
        second = RequestRecord("b", 1, 0, time.monotonic(), time.time())
        await execute(client, server.url, {}, b"{}", False, second, ChunkCounter())
    assert second.resent and second.ok and server.connections == 2  # a reused connection's unread POST, sent again
    assert len(server.requests) == 3


async def test_each_request_knows_its_connect_and_its_time_to_headers() -> None:
    delay = 0.3

    async def slow_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await asyncio.sleep(delay)  # the front end takes its time before the headers
        writer.write(OK)

    async with RawServer(slow_head) as server, WirePool() as pool:
        first, _ = await read_all(pool, server.url)
        second, _ = await read_all(pool, server.url)
    assert first.reused is False and first.connect_s > 0 and first.tls_s is None
    assert second.reused is True and second.connect_s == 0
    for r in (first, second):
        assert delay <= r.headers_s < delay + 1.0, r.headers_s


STREAM = (
    b"".join(
        b'data: {"choices": [{"text": "t%d", "finish_reason": %s}]}\n\n' % (i, b'"stop"' if i == 2 else b"null")
        for i in range(3)
    )
    + b"data: [DONE]\n\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_done_ends_the_answer_even_if_the_body_never_does() -> None:
    async def never_ends(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(CHUNKED_HEAD + _chunk(STREAM))  # and never the last chunk

    async with RawServer(never_ends) as server, make_client() as client:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        await asyncio.wait_for(execute(client, server.url, {}, b"{}", True, rec, ChunkCounter()), 10)
        assert rec.ok and rec.chunks == 3, rec.error
        await until(lambda: client.wire.connections == 0)  # dropped after the linger, not pooled
        await until(lambda: server.closed == 1)

    async def ends_later(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(CHUNKED_HEAD + _chunk(STREAM))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"0\r\n\r\n")  # the framing's end, a moment after [DONE]

    async with RawServer(ends_later) as server, make_client() as client:
        for _ in range(3):
            rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
            await execute(client, server.url, {}, b"{}", True, rec, ChunkCounter())
            assert rec.ok and rec.chunks == 3
            await until(lambda: client.wire.connections == 1 and any(client.wire._idle.values()))
        assert server.connections == 1  # the lingering connection was pooled once its framing ended


async def test_a_whole_answer_longer_than_its_cap_is_refused_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmsurge.engine import client as client_mod

    monkeypatch.setattr(client_mod, "PLAIN_BODY_CAP", 4096)
    big = b'{"data": [{"embedding": [' + b"0.5, " * 2000 + b"0.5]}]}"
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    async with RawServer(fixed(raw)) as server, make_client() as client:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        rec.inputs = 1
        await execute(client, server.url, {}, b"{}", False, rec, ChunkCounter())
        assert (rec.status, rec.error_kind) == ("failed", "protocol") and "not read whole" in rec.error


async def test_a_piped_body_is_handed_over_inside_each_read_and_wakes_its_reader_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = [b"data: %d\n\n" % i for i in range(20)]

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(CHUNKED_HEAD)
        for p in parts:
            writer.write(_chunk(p))
            await writer.drain()
            await asyncio.sleep(0.005)  # a read each
        writer.write(b"0\r\n\r\n")

    waits = 0
    wait = _Conn.wait

    async def counted(self: _Conn) -> None:
        nonlocal waits
        waits += 1
        await wait(self)

    monkeypatch.setattr(_Conn, "wait", counted)
    async with RawServer(trickle) as server, WirePool() as pool:
        got: list[bytes] = []
        r = await pool.post(server.url, b"{}", {})
        waits = 0
        await r.pipe(lambda b: got.append(b) is not None)  # never enough: to the answer's end
        r.release()
        assert b"".join(got) == b"".join(parts) and len(got) >= 5  # handed over read by read
        assert waits <= 2  # the reader woke at the end, not once per read

        def enough(b: bytes) -> bool:
            got.append(b)
            return b"data: 3" in b"".join(got)

        got.clear()
        r = await pool.post(server.url, b"{}", {})
        await r.pipe(enough)  # the sink had enough: the reader returns before the answer's end
        assert b"data: 3" in b"".join(got) and b"data: 19" not in b"".join(got)
        r.release()

        def broken(b: bytes) -> bool:
            raise RuntimeError("a bug in the sink")

        r = await pool.post(server.url, b"{}", {})
        with pytest.raises(RuntimeError, match="a bug in the sink"):
            await r.pipe(broken)  # raised in the reader's task, not lost in the protocol's callback
        r.release()
