from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from llmsurge.engine.client import ChunkCounter, _parse_stream
from llmsurge.engine.sse import BOM, ErrorEvent, SSEParser
from llmsurge.metrics.records import RequestRecord
from tests.conftest import FIXTURES


def _payloads(data: bytes, step: int) -> list[bytes]:
    p = SSEParser()
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out.extend(p.feed(data[i : i + step]))
    out.extend(p.flush())
    return out


def test_real_vllm_transcript_any_chunking() -> None:
    data = (FIXTURES / "sse_chat_vllm.txt").read_bytes()
    whole = _payloads(data, len(data))
    assert whole[-1] == b"[DONE]"
    assert len(whole) == 8
    for step in (1, 2, 7, 64, 1000):
        assert _payloads(data, step) == whole
    usage = json.loads(whole[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5


def test_crlf_and_multiline_and_comments() -> None:
    data = b': keep-alive\r\n\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: x\r\ndata: [DONE]\r\n\r\n'
    for step in (1, 3, len(data)):
        assert _payloads(data, step) == [b'{"a":\n1}', b"[DONE]"]


def test_last_event_without_blank_line_is_flushed() -> None:
    p = SSEParser()
    assert p.feed(b'data: {"x": 1}\n\ndata: [DONE]') == [b'{"x": 1}']
    assert p.flush() == [b"[DONE]"]


def test_a_bom_at_the_streams_start_is_skipped_however_it_is_split() -> None:
    data = (FIXTURES / "sse_chat_vllm.txt").read_bytes()
    plain = _payloads(data, len(data))
    for step in (1, 2, 3, 4, 64, len(data) + 3):
        assert _payloads(BOM + data, step) == plain, step
    assert _payloads(b"data: 1\n\n" + BOM + b"data: 2\n\n", 1) == [b"1"]  # only at the start: later it is data


def test_an_error_event_keeps_the_servers_word_whatever_its_shape() -> None:
    data = b'data: {"x": 1}\n\nevent: error\ndata: the engine died\n\n'
    for step in (1, 5, len(data)):
        out = _payloads(data, step)
        assert out == [b'{"x": 1}', b"the engine died"] and type(out[1]) is ErrorEvent
    assert type(_payloads(b"event: error\ndata: {}", 100)[0]) is ErrorEvent  # unterminated, at the close


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'{"error": {"message": "out of memory", "code": 500}}', "out of memory"),
        (b'{"type": "error", "message": "overloaded"}', "overloaded"),
        (b'{"error": "rate limited"}', "rate limited"),
        (b"[1, 2]", "[1, 2]"),
        (b"plain text, no JSON", "plain text, no JSON"),
        (b"", "the server sent an error event"),
    ],
)
async def test_an_error_event_fails_the_request_with_the_servers_message(data: bytes, said: str) -> None:
    stream = b'data: {"choices": [{"text": "a", "finish_reason": null}]}\n\nevent: error\ndata: ' + data + b"\n\n"
    rec = await _stream(stream)
    assert (rec.status, rec.error_kind, rec.error) == ("failed", "stream_error", said)


async def test_a_bom_does_not_move_ttft_to_the_second_token() -> None:
    body = b"".join(
        b'data: {"choices": [{"text": "t%d", "finish_reason": %s}]}\n\n' % (i, b'"stop"' if i == 2 else b"null")
        for i in range(3)
    )
    plain, bommed = await _stream(body), await _stream(BOM + body)
    assert plain.ok and bommed.ok
    assert bommed.chunks == plain.chunks == 3 and len(bommed.itl) == 2


async def _stream(body: bytes) -> RequestRecord:
    """``body`` as an event stream's chunks, read by the client as from the wire."""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
    await _parse_stream(chunks(), rec, ChunkCounter())
    return rec


def test_whole_events_a_read_read_as_byte_by_byte() -> None:
    """The parser's fast path (whole LF events with nothing carried over: what a server writes, one event a read)
    gives what the general path gives for every shape of event."""
    events = [
        b'data: {"x": 1}\n\n',
        b"data:no-space\n\n",
        b"data:  padded  \n\n",
        b"data: a\ndata: b\n\n",
        b": a comment\n\n",
        b"event: error\ndata: boom\n\n",
        b"data: one\n\ndata: two\n\n",
        b"data: cr\rdata: inside\n\n",
        b"\n\n",
        b"id: 7\n\n",
        b"data: [DONE]\n\n",
    ]
    p = SSEParser()
    p.feed(b": open\n\n")  # past the stream's start (a BOM's place)
    read = [payload for e in events for payload in p.feed(e)]
    data = b": open\n\n" + b"".join(events)
    assert read == _payloads(data, 1)
    assert read == [b'{"x": 1}', b"no-space", b"padded", b"a\nb", b"boom", b"one", b"two", b"cr\ninside", b"[DONE]"]
    assert type(read[4]) is ErrorEvent and type(read[0]) is bytes
