"""The Anthropic Messages API (llmsurge/engine/endpoints/messages.py): its headers, the system prompt apart, typed
events with no [DONE], usage over message_start and message_delta, thinking as TTFR."""

from __future__ import annotations

import json
from pathlib import Path

from llmsurge.engine.client import ChunkCounter, _Stream, build_body
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import RequestRecord
from tests.endpoints.conftest import run_endpoint, sse
from tests.helpers import rows, run_cli, sim_cli, summary


def test_anthropic_messages_api_streams_ttft_thinking_and_usage(tmp_path: Path) -> None:
    """``--endpoint messages`` against the simulated server's /v1/messages: typed events, no [DONE]; the usage from
    message_start and message_delta; a reasoning model's thinking_delta timed as TTFR."""
    s, reqs, _out = run_endpoint(tmp_path, "--endpoint", "messages")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and s["failed"] == 0
    assert s["total_output_tokens"] == 24 * 12 and abs(s["mean_input_tokens"] - 32) <= 4  # usage, calibrated
    assert all(r["finish_reason"] == "length" and not r["tokens_estimated"] and len(r["itl_ms"]) == 11 for r in reqs)
    out = tmp_path / "think"
    with sim_cli("--reasoning-tokens", "4") as url:  # a reasoning model: its first 4 tokens are thinking
        r = run_cli("run", url, "--endpoint", "messages", "-n", "8", "-c", "2", "--output-tokens", "12", "-o", str(out))
    assert r.returncode == 0, r.stderr
    thought = rows(out, warmup=False)
    assert all(q["ttfr_ms"] is not None and q["ttfc_ms"] > q["ttfr_ms"] for q in thought), thought[0]
    assert summary(out)["reasoning"]["completed"] == 8


def test_a_messages_stream_is_read_event_by_sse() -> None:
    """A recorded-shape Messages stream: cached prompt tokens from cache_read_input_tokens, the stop reason as a
    finish reason, the end at message_stop, an error event as the request's failure."""
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 12,
             "output_tokens": 1}}}  # fmt: skip
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in ("a", "b")
    ]
    end = [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    rec = RequestRecord("m", 1, 0, start=0.0, wall_start=0.0)
    stream = _Stream(rec, ChunkCounter(), ENDPOINTS["messages"])
    assert not stream.feed(sse(start) + sse({"type": "ping"}) + b"".join(sse(d) for d in deltas))
    assert stream.feed(b"".join(sse(d) for d in end))  # message_stop: the answer is whole
    assert stream.finish() and rec.ok
    assert (rec.prompt_tokens, rec.cached_tokens, rec.output_tokens) == (32, 12, 2)
    assert rec.finish_reason == "length" and rec.ttft is not None and len(rec.itl) == 1
    failed = RequestRecord("e", 1, 0, start=0.0, wall_start=0.0)
    bad = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert _Stream(failed, ChunkCounter(), ENDPOINTS["messages"]).feed(sse(start) + sse(bad))
    assert not failed.ok and failed.error == "Overloaded"


def test_the_system_prompt_is_apart_and_its_headers_are_its_own() -> None:
    system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    msg = json.loads(build_body(RequestShape(endpoint="messages"), "m", system, 9))
    assert msg["system"] == "be brief" and msg["messages"] == system[1:] and msg["max_tokens"] == 9
    assert msg["stream"] is True and "stream_options" not in msg
    assert ENDPOINTS["messages"].headers("k")["anthropic-version"] == "2023-06-01"
    assert ENDPOINTS["messages"].headers("k")["x-api-key"] == "k"
    assert "x-api-key" not in ENDPOINTS["chat"].headers("k") and "x-api-key" not in ENDPOINTS["messages"].headers(None)
