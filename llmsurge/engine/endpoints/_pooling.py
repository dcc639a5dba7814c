"""What embeddings and rerank share: one whole answer with an item per input, no stream, no generated tokens."""

from __future__ import annotations

from typing import ClassVar

from llmsurge.engine.endpoints.base import ChunkCounter, Reading, Token, count_of
from llmsurge.metrics.records import Failure, RequestRecord


class Pooling:
    """An endpoint answering once per request with one item per input (:meth:`good` says what an item needs)."""

    pooling: ClassVar[bool] = True
    options: ClassVar[tuple[tuple[str, str], ...]] = ()
    uncalibrated: ClassVar[str] = ""
    items_key: ClassVar[str]
    what: ClassVar[str]

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {}

    def streamed(self, body: dict[str, object]) -> None:
        """Never streamed."""

    def event(self, msg: dict[str, object], stream: Reading, t: float) -> Token | None:
        stream.fail(Failure.PROTOCOL, f"the server streamed {self.what}")
        return None

    def items(self, msg: object) -> object:
        return msg.get(self.items_key) if isinstance(msg, dict) else None

    def good(self, item: object) -> bool:
        raise NotImplementedError

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        """Its latency and prompt tokens, and one vector or score per input sent — or it failed."""
        rec.e2el = t - rec.start
        items = self.items(msg)
        if not isinstance(items, list):
            rec.fail(Failure.PROTOCOL, f"the answer has no {self.what} ({self.items_key})")
            return
        if len(items) != rec.inputs:
            rec.fail(Failure.PROTOCOL, f"{len(items)} {self.what} for {rec.inputs} inputs")
            return
        if not all(self.good(x) for x in items):
            rec.fail(Failure.PROTOCOL, f"{self.what} without a vector or score")
            return
        rec.finish_reason = "stop"
        usage = msg.get("usage") if isinstance(msg, dict) else None
        prompt = count_of(usage.get("prompt_tokens", usage.get("total_tokens"))) if isinstance(usage, dict) else None
        if prompt:
            rec.prompt_tokens = prompt
