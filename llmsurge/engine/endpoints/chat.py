"""Chat completions (``POST /v1/chat/completions``): messages in, a stream of ``choices`` deltas out — the endpoint
every OpenAI-compatible server serves, and the default. Tools (``--tools N``) and images (``--images N``) are its
own."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints import _openai
from llmsurge.engine.endpoints.base import ChunkCounter, Generation, Prompt, messages_of
from llmsurge.metrics.records import RequestRecord

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape

TOOL_ASK = "Call the lookup_0 tool with the words below as its query."
"""What a tool-calling request asks before its prompt (so a model that can call tools does)."""


def tool_definitions(n: int) -> list[dict[str, object]]:
    """``n`` function tools, each taking one string argument."""
    return [
        {
            "type": "function",
            "function": {
                "name": f"lookup_{i}",
                "description": f"Look up a query in index {i}.",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "what to look up"}},
                    "required": ["query"],
                },
            },
        }
        for i in range(n)
    ]


def tool_call_problem(calls: dict[int, list[str]]) -> str:
    """Why streamed tool calls' arguments are unusable ('' when each parses as a JSON object)."""
    for index, parts in sorted(calls.items()):
        raw = "".join(parts)
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return f"tool call {index}: arguments are not JSON ({raw[:60]!r})"
        if not isinstance(value, dict):
            return f"tool call {index}: arguments are not a JSON object"
    return ""


class Chat(Generation):
    name: ClassVar[str] = "chat"
    path: ClassVar[str] = "/v1/chat/completions"
    summary: ClassVar[str] = "chat completions"
    options: ClassVar[tuple[tuple[str, str], ...]] = (("tools", "--tools"), ("images", "--images"))
    order: ClassVar[int] = 0

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        messages = messages_of(prompt)
        if shape.tools:  # the last message asks for a call
            last = messages[-1]
            messages = [*messages[:-1], {**last, "content": f"{TOOL_ASK} {last.get('content', '')}"}]
        body: dict[str, object] = {"model": model, "temperature": shape.temperature, "messages": messages}
        body["max_tokens"] = max_tokens
        if shape.tools:
            body["tools"] = tool_definitions(shape.tools)
            body["tool_choice"] = "auto"
        return body

    event = staticmethod(_openai.read_chunk)  # the hot path: no hop between the stream and the reader

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        _openai.read_whole(msg, t, rec, counter)


ENDPOINT = Chat()
