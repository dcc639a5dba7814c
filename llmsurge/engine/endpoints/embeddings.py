"""Embeddings (``POST /v1/embeddings``): ``--batch N`` inputs a request, one vector each; latency is the whole
answer's, throughput in inputs a second."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints._pooling import Pooling
from llmsurge.engine.endpoints.base import Prompt, text_of

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape


class Embeddings(Pooling):
    name: ClassVar[str] = "embeddings"
    path: ClassVar[str] = "/v1/embeddings"
    summary: ClassVar[str] = "embeddings (--batch inputs a request)"
    options: ClassVar[tuple[tuple[str, str], ...]] = (("batch", "--batch"),)
    order: ClassVar[int] = 4
    items_key: ClassVar[str] = "data"
    what: ClassVar[str] = "embeddings"

    def inputs(self, shape: RequestShape) -> int:
        return shape.batch

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        text = text_of(prompt)
        inputs = [f"{i} {text}" for i in range(shape.batch)] if shape.batch > 1 else [text]
        return {"model": model, "input": inputs, "encoding_format": "float"}

    def good(self, item: object) -> bool:
        return isinstance(item, dict) and isinstance(item.get("embedding"), (list, str)) and len(item["embedding"]) > 0


ENDPOINT = Embeddings()
