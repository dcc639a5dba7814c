"""Rerank (``POST /v1/rerank``; vLLM, llama.cpp, Jina, and TEI's ``/rerank``): a query and ``--documents N``
documents a request, a relevance score each."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from llmsurge.engine.endpoints._pooling import Pooling
from llmsurge.engine.endpoints.base import Prompt, text_of

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape

QUERY_WORDS = 16
"""A rerank query is the prompt's first words."""


class Rerank(Pooling):
    name: ClassVar[str] = "rerank"
    path: ClassVar[str] = "/v1/rerank"
    summary: ClassVar[str] = "rerank (a query and --documents documents)"
    options: ClassVar[tuple[tuple[str, str], ...]] = (("documents", "--documents"),)
    order: ClassVar[int] = 5
    items_key: ClassVar[str] = "results"
    what: ClassVar[str] = "rerank results"
    uncalibrated: ClassVar[str] = "the usage counts query and documents"

    def inputs(self, shape: RequestShape) -> int:
        return shape.documents

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        text = text_of(prompt)
        documents = [f"{i} {text}" for i in range(shape.documents)]
        query = " ".join(text.split()[:QUERY_WORDS])
        return {"model": model, "query": query, "documents": documents, "top_n": shape.documents}

    def items(self, msg: object) -> object:
        return msg if isinstance(msg, list) else super().items(msg)  # TEI answers a bare list

    def good(self, item: object) -> bool:
        return isinstance(item, dict) and isinstance(item.get("relevance_score", item.get("score")), (int, float))


ENDPOINT = Rerank()
