"""One finished request, as measured in a worker, and the ways a request can end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK = "ok"
FAILED = "failed"
CANCELLED = "cancelled"

# Failure kinds. HTTP statuses are written as ``http_<code>``.
CONNECT = "connect"
RESET = "reset"
TIMEOUT = "timeout"
PROTOCOL = "protocol"  # malformed SSE/JSON, or a stream without any ``choices`` chunk
TRUNCATED = "truncated"  # the stream ended without a ``finish_reason``
STREAM_ERROR = "stream_error"  # an ``error`` object inside the stream


def http_kind(status: int) -> str:
    """The failure kind for a non-2xx HTTP status."""
    return f"http_{status}"


@dataclass(slots=True)
class RequestRecord:
    """Everything measured about one request. Times are seconds; ``start`` is ``time.monotonic()``.

    ``ttft`` is the first ``choices`` message, ``ttfc`` the first non-empty content; ``e2el`` the last
    ``choices`` message; ``itl`` the gaps between consecutive ``choices`` messages (DESIGN.md).
    """

    request_id: str
    segment: int
    worker: int
    start: float
    wall_start: float
    warmup: bool = False
    status: str = OK
    error_kind: str = ""
    error: str = ""
    http_status: int = 0
    ttft: float | None = None
    ttfc: float | None = None
    e2el: float | None = None
    itl: list[float] = field(default_factory=list)
    chunks: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    tokens_estimated: bool = False
    finish_reason: str = ""
    end: float = 0.0
    retries: int = 0  # re-sent once because a pooled keep-alive connection was already closed

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status == OK

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (E2EL - TTFT) / (output tokens - 1)."""
        if self.ttft is None or self.e2el is None or self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    @property
    def latency(self) -> float:
        """Wall time from send to the end of the request, whatever its outcome."""
        return max(0.0, self.end - self.start)

    def fail(self, kind: str, message: str = "", status: int = 0) -> None:
        """Mark this request failed with ``kind`` (keeps the first failure)."""
        if self.status == FAILED:
            return
        self.status = FAILED
        self.error_kind = kind
        self.error = message[:300]
        if status:
            self.http_status = status

    def to_json(self) -> dict[str, Any]:
        """The line written to ``requests.jsonl`` (milliseconds, like vLLM's per-request output)."""

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 4)

        tpot = self.tpot
        return {
            "id": self.request_id,
            "segment": self.segment,
            "worker": self.worker,
            "warmup": self.warmup,
            "status": self.status,
            "error_kind": self.error_kind or None,
            "error": self.error or None,
            "http_status": self.http_status or None,
            "start_time": round(self.wall_start, 6),
            "ttft_ms": ms(self.ttft),
            "ttfc_ms": ms(self.ttfc),
            "tpot_ms": ms(tpot),
            "e2el_ms": ms(self.e2el),
            "latency_ms": ms(self.latency),
            "itl_ms": [round(x * 1000.0, 4) for x in self.itl],
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "tokens_estimated": self.tokens_estimated,
            "finish_reason": self.finish_reason or None,
            "retries": self.retries,
        }
