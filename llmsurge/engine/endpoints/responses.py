"""The Responses API (``POST /v1/responses``): input items (the system prompt as ``instructions``), typed stream
events — ``response.output_text.delta`` for text, ``response.reasoning_text.delta`` for thinking, the usage and
the finish on ``response.completed`` or ``response.incomplete``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints.base import (
    ChunkCounter,
    Prompt,
    Reading,
    Token,
    TypedEvents,
    error_message,
    system_apart,
    whole_answer,
)
from llmsurge.metrics.records import Failure, RequestRecord

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape

TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
REASONING = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})


def usage_as_chat(usage: object) -> object:
    """The Responses API's usage (``input_tokens``, ``output_tokens``) under chat's names."""
    if not isinstance(usage, dict):
        return usage
    out = {k: v for k, v in usage.items() if k not in ("input_tokens", "output_tokens")}
    if "input_tokens" in usage:
        out["prompt_tokens"] = usage["input_tokens"]
    if "output_tokens" in usage:
        out["completion_tokens"] = usage["output_tokens"]
    details = usage.get("input_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        out["prompt_tokens_details"] = {"cached_tokens": details["cached_tokens"]}
    return out


def _finish(response: dict[str, object]) -> str:
    details = response.get("incomplete_details")
    why = details.get("reason") if isinstance(details, dict) else None
    return "length" if why == "max_output_tokens" else str(why or response.get("status") or "")


class Responses(TypedEvents):
    name: ClassVar[str] = "responses"
    path: ClassVar[str] = "/v1/responses"
    summary: ClassVar[str] = "the Responses API"
    order: ClassVar[int] = 2

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        body: dict[str, object] = {"model": model, "temperature": shape.temperature}
        if isinstance(prompt, str):
            body["input"] = prompt
        else:  # a chat's messages: the system prompt as instructions, the rest as input items
            system, body["input"] = system_apart(prompt)
            if system:
                body["instructions"] = system
        body["max_output_tokens"] = max_tokens
        return body

    def event(self, msg: dict[str, object], stream: Reading, t: float) -> Token | None:
        event = msg.get("type")
        if event in TEXT:
            delta = msg.get("delta")
            return (delta if isinstance(delta, str) else None), None, False
        if event in REASONING:
            return None, None, True
        if event in ("response.completed", "response.incomplete"):
            response = msg.get("response")
            response = response if isinstance(response, dict) else {}
            stream.usage = usage_as_chat(response.get("usage"))
            stream.rec.finish_reason = _finish({**response, "status": "stop"})
        elif event in ("response.failed", "error") or (event is None and "error" in msg):
            response = msg.get("response")
            stream.fail(Failure.STREAM_ERROR, error_message(response if isinstance(response, dict) else msg))
        return None  # created, in_progress, output_item.added …: no token

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        output = msg.get("output") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or not isinstance(output, list):
            rec.fail(Failure.PROTOCOL, "response had no output list")
            return
        text = "".join(
            str(part.get("text", ""))
            for item in output
            if isinstance(item, dict) and isinstance(item.get("content"), list)
            for part in item["content"]
            if isinstance(part, dict) and part.get("type") == "output_text"
        )
        whole_answer(rec, t, text, _finish(msg), usage_as_chat(msg.get("usage")), counter)


ENDPOINT = Responses()
