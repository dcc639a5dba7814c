"""The Anthropic Messages API (``POST /v1/messages``; vLLM and llama.cpp serve it): the system prompt beside the
messages, ``anthropic-version`` and ``x-api-key`` headers, and typed stream events — ``message_start`` (the input
usage), ``content_block_delta`` (``text_delta``, ``thinking_delta``, a tool's ``input_json_delta``),
``message_delta`` (the stop reason and output tokens), ``message_stop`` (its end: no ``[DONE]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints.base import (
    ChunkCounter,
    Prompt,
    Reading,
    Token,
    TypedEvents,
    error_message,
    messages_of,
    system_apart,
    whole_answer,
)
from llmsurge.metrics.records import Failure, RequestRecord

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape

ANTHROPIC_VERSION = "2023-06-01"
"""The Messages API's version header (what Anthropic's SDKs send; vLLM and llama.cpp accept it)."""
STOPS = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls"}
"""A Messages answer's ``stop_reason`` under chat's ``finish_reason`` names."""


def usage_as_chat(usage: object) -> object:
    """The Messages API's usage under chat's names: its prompt is ``input_tokens`` plus the tokens read from and
    written to its cache; the cache's reads are the cached prompt tokens."""
    if not isinstance(usage, dict):
        return usage

    def whole(key: str) -> int:
        v = usage.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    out: dict[str, object] = {}
    if "input_tokens" in usage:
        out["prompt_tokens"] = (
            whole("input_tokens") + whole("cache_read_input_tokens") + whole("cache_creation_input_tokens")
        )
        if "cache_read_input_tokens" in usage:
            out["prompt_tokens_details"] = {"cached_tokens": whole("cache_read_input_tokens")}
    if "output_tokens" in usage:
        out["completion_tokens"] = usage["output_tokens"]
    return out


class Messages(TypedEvents):
    name: ClassVar[str] = "messages"
    path: ClassVar[str] = "/v1/messages"
    summary: ClassVar[str] = "the Anthropic Messages API"
    order: ClassVar[int] = 3

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION, **({"x-api-key": api_key} if api_key else {})}

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        body: dict[str, object] = {"model": model, "temperature": shape.temperature}
        system, body["messages"] = system_apart(messages_of(prompt))
        if system:
            body["system"] = system
        body["max_tokens"] = max_tokens
        return body

    def event(self, msg: dict[str, object], stream: Reading, t: float) -> Token | None:
        event = msg.get("type")
        rec = stream.rec
        if event == "content_block_delta":
            delta = msg.get("delta")
            if not isinstance(delta, dict):
                return None
            kind = delta.get("type")
            if kind == "text_delta":
                text = delta.get("text")
                return (text if isinstance(text, str) else None), None, False
            if kind == "thinking_delta":
                return None, None, True
            if kind == "input_json_delta":  # a tool call's arguments, streamed: output
                i = msg.get("index", 0)
                rec.tool_calls.setdefault(i if isinstance(i, int) else 0, []).append(
                    str(delta.get("partial_json") or "")
                )
                if rec.ttfc is None:
                    rec.ttfc = t - rec.start
                return None, None, False
            return None  # a signature: no token
        if event == "message_start":
            message = msg.get("message")
            stream.raw_usage = dict(message.get("usage") or {}) if isinstance(message, dict) else {}
            stream.usage = usage_as_chat(stream.raw_usage)
        elif event == "message_delta":
            usage = msg.get("usage")
            if isinstance(usage, dict):  # cumulative output tokens (and, newer, the rest)
                stream.raw_usage = {**(stream.raw_usage or {}), **usage}
                stream.usage = usage_as_chat(stream.raw_usage)
            delta = msg.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop:
                rec.finish_reason = STOPS.get(str(stop), str(stop))
        elif event == "message_stop":
            stream.ended = True  # the Messages API's end (it sends no [DONE])
        elif event == "error" or (event is None and "error" in msg):
            stream.fail(Failure.STREAM_ERROR, error_message(msg))
        return None  # ping, content_block_start/stop: no token

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("type") != "message" or not isinstance(content, list):
            rec.fail(Failure.PROTOCOL, "the answer is not a message with content")
            return
        text = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
        stop = str(msg.get("stop_reason") or "")
        whole_answer(rec, t, text, STOPS.get(stop, stop), usage_as_chat(msg.get("usage")), counter)


ENDPOINT = Messages()
