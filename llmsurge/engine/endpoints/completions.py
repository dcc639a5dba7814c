"""Completions (``POST /v1/completions``): one prompt text in, a stream of ``choices`` texts out — what a base
model without a chat template answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints import _openai
from llmsurge.engine.endpoints.base import ChunkCounter, Generation, Prompt, text_of
from llmsurge.metrics.records import RequestRecord

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape


class Completions(Generation):
    name: ClassVar[str] = "completions"
    path: ClassVar[str] = "/v1/completions"
    summary: ClassVar[str] = "text completions (a base model)"
    order: ClassVar[int] = 1

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        return {"model": model, "temperature": shape.temperature, "prompt": text_of(prompt), "max_tokens": max_tokens}

    event = staticmethod(_openai.read_chunk)  # the hot path: no hop between the stream and the reader

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        _openai.read_whole(msg, t, rec, counter)


ENDPOINT = Completions()
