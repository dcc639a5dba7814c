from __future__ import annotations

import json

from llmsurge.engine.sse import SSEParser
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
