"""One request, as measured in a worker, and the ways a request can end."""

from __future__ import annotations

import dataclasses
import operator
from array import array
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from llmsurge.redaction import redact


class Status(str, Enum):
    """How a request ended: exactly one of these, within its timeout (DESIGN.md)."""

    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by the user (Ctrl-C, q, a signal) while in flight

    def __str__(self) -> str:
        return self.value


class Failure(str, Enum):
    """Why a request failed. Non-2xx statuses are written ``http_<code>`` (see :func:`http_kind`)."""

    CONNECT = "connect"  # no connection to the server
    RESET = "reset"  # the connection broke during the response
    TIMEOUT = "timeout"  # no complete answer within the request's timeout (or the end-of-run drain)
    PROTOCOL = "protocol"  # malformed SSE/JSON, a stream with no ``choices`` chunk, an endless SSE event
    TRUNCATED = "truncated"  # the stream ended without a ``finish_reason``
    STREAM_ERROR = "stream_error"  # an ``error`` object inside the stream
    WORKER_LOST = "worker_lost"  # the worker process carrying the request died
    CLIENT_ERROR = "client_error"  # a fault of ours (a bug), not the server's

    def __str__(self) -> str:
        return self.value


TEXT_KEPT = 2000
"""Characters of an answer kept at each end (the request inspector shows them; requests.jsonl does not)."""
TEXT_FOLD = 256
"""Pieces of streamed text held before they are folded into the kept head and tail: an open stream holds a few
kilobytes of its answer, not every delta (unless the whole answer is needed: see ``RequestRecord.text_whole``)."""


def _gaps() -> array[float]:
    return array("d")


def http_kind(status: int) -> str:
    """The failure kind for a non-2xx HTTP status."""
    return f"http_{status}"


@dataclass(frozen=True, slots=True)
class ServerTimings:
    """What the server's own clock says about one request, under the same names whatever the server: llama.cpp's
    ``timings`` (``prompt_ms``, ``prompt_n``, ``cache_n``, ``predicted_ms``; no queue time: it is not in them) or
    vLLM's ``metrics`` (``--enable-per-request-metrics``: ``queue_time_ms``, ``time_to_first_token_ms`` from its
    scheduling — the prefill — and ``generation_time_ms``). ``prompt_ms`` is the prefill."""

    prompt_ms: float
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    decode_ms: float | None = None
    queue_ms: float | None = None
    source: str = "llama.cpp timings"

    @classmethod
    def of(cls, timings: object) -> ServerTimings | None:
        """From llama.cpp's ``timings`` object; None when it carries no usable prompt time."""
        if not isinstance(timings, dict):
            return None
        prompt = _ms(timings.get("prompt_ms"))
        if prompt is None:
            return None
        return cls(prompt, _n(timings.get("prompt_n")), _n(timings.get("cache_n")), _ms(timings.get("predicted_ms")))

    @classmethod
    def of_vllm(cls, metrics: object) -> ServerTimings | None:
        """From vLLM's per-request ``metrics`` (the final usage chunk); None without a prefill time."""
        if not isinstance(metrics, dict):
            return None
        prompt = _ms(metrics.get("time_to_first_token_ms"))
        if prompt is None:
            return None
        queue, decode = _ms(metrics.get("queue_time_ms")), _ms(metrics.get("generation_time_ms"))
        return cls(prompt, decode_ms=decode, queue_ms=queue, source="vLLM per-request metrics")

    @property
    def ttft_ms(self) -> float:
        """The server's own TTFT: its queue (where it says) and its prefill."""
        return (self.queue_ms or 0.0) + self.prompt_ms

    def client_share_ms(self, ttft: float | None) -> float | None:
        """TTFT (seconds) less the server's own (queue, where it says, and prefill), in ms: the network, the
        server's HTTP front end (and a queue it does not report) and our own read delay together (None without a
        TTFT)."""
        return None if ttft is None else ttft * 1000.0 - self.ttft_ms


def _ms(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or not 0 <= v < 1e9:
        return None
    return float(v)


def _n(v: object) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or not 0 <= v < 1e9:
        return None
    return int(v)


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
    status: Status = Status.OK
    error_kind: str = ""
    error: str = ""
    http_status: int = 0
    ttft: float | None = None
    ttfc: float | None = None
    e2el: float | None = None
    itl: array[float] = field(default_factory=_gaps)  # C doubles: no Python float kept per token
    chunks: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    tokens_estimated: bool = False
    finish_reason: str = ""
    end: float = 0.0
    resent: bool = False  # sent again once: a reused keep-alive connection closed before answering (unread)
    max_tokens: int = 0  # what the request asked for (0: not set)
    cached_tokens: int | None = None  # prompt tokens the server served from its prefix cache (None: not reported)
    ignore_eos: bool = False  # asked for exactly max_tokens tokens
    client_wait: float | None = None  # open loop: seconds between the scheduled send and the real one (ours)
    text: list[str] = field(default_factory=list)  # content as it arrives (the client appends; see keep_text)
    text_head: str = ""  # the first TEXT_KEPT characters of the answer (for the inspector; not written)
    text_tail: str = ""  # and the last ones, when the answer was longer
    text_whole: bool = False  # keep every piece of the answer (a chat's history, a quality prompt's judge)
    body: bytes = b""  # the request as sent (for "copy as curl"; not written)
    usage_rejected: str = ""  # the server's usage figure when it was implausible and chunk counts were used
    ttfr: float | None = None  # reasoning models: the first non-empty reasoning token (TTFC is the first answer one)
    reasoning_chunks: int = 0  # choices messages that carried reasoning (counted as output, as servers count them)
    turn: int = 0  # multi-turn chats: which turn of its conversation (1, 2, …); 0 when not a conversation
    degenerate: str = ""  # why the answer's tail is degenerate text ('' when it looks like text): a warning
    quality_item: str = ""  # a quality-set prompt: its name
    quality_ok: bool | None = None  # and whether the answer was right (None: not a quality prompt)
    quality_why: str = ""  # what was wrong with it
    retry_after: float | None = None  # a 429/503 said when to ask again (seconds, bounded)
    server: ServerTimings | None = None  # the server's own clock for this request, when it says (llama.cpp)
    inputs: int = 0  # embeddings: inputs sent; rerank: documents (0: a generation)
    tool_calls: dict[int, list[str]] = field(default_factory=dict)  # streamed arguments per call (not written)
    model: str = ""  # the model asked for, when the run spreads requests over several ('' otherwise)
    target: str = ""  # the server's base URL, when the run spreads requests over replicas ('' otherwise)
    reused: bool | None = None  # the request went on a pooled connection (None: not known, e.g. never sent)
    connect: float | None = None  # seconds to open its connection (TCP; 0 when reused)
    tls: float | None = None  # seconds of its TLS handshake (None over plain HTTP or when reused)
    headers: float | None = None  # seconds from the request written to the answer's headers read

    def __reduce__(self) -> tuple[type[RequestRecord], tuple[object, ...]]:
        """Pickled as its fields' values, in order, rebuilt by ``__init__``: half the CPU of the slots dataclass's
        own state (a Python loop over ``fields()``) in the worker, a third in the parent, which read every
        finished request this way (bench/RESULTS.md)."""
        return RequestRecord, _record_values(self)

    def keep_text(self) -> None:
        """Fold the pieces received so far into the answer's first and last :data:`TEXT_KEPT` characters (called
        as the answer streams, every :data:`TEXT_FOLD` pieces, and when the request is over)."""
        if not self.text:
            return
        rest = "".join(t if isinstance(t, str) else str(t) for t in self.text)
        self.text.clear()  # the same list: the client's reference to it stays good
        if len(self.text_head) < TEXT_KEPT:
            room = TEXT_KEPT - len(self.text_head)
            self.text_head += rest[:room]
            rest = rest[room:]
        if rest:
            self.text_tail = (self.text_tail + rest)[-TEXT_KEPT:]

    @property
    def kept_text(self) -> str:
        """The answer as kept: whole up to 2 × :data:`TEXT_KEPT` characters, else its two ends."""
        return self.text_head + self.text_tail

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status is Status.OK

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (E2EL - TTFT) / (output tokens - 1)."""
        if self.ttft is None or self.e2el is None or self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    @property
    def decode_rate(self) -> float | None:
        """Output tokens per second after the first: 1 / TPOT (the one definition of a request's decode speed)."""
        tpot = self.tpot
        return 1.0 / tpot if tpot else None

    @property
    def came_back_short(self) -> bool:
        """Asked for exactly ``max_tokens`` (ignore_eos) and got fewer: the server ignored ``ignore_eos``."""
        return self.ignore_eos and 0 < self.output_tokens < self.max_tokens and not self.tokens_estimated

    @property
    def latency(self) -> float:
        """Wall time from send to the end of the request, whatever its outcome."""
        return max(0.0, self.end - self.start)

    def fail(self, kind: str, message: str = "", status: int = 0) -> None:
        """Mark this request failed with ``kind`` (keeps the first way it ended). The message is redacted."""
        if self.status is not Status.OK:
            return
        self.status = Status.FAILED
        self.error_kind = str(kind)
        self.error = redact(message)[:300]
        if status:
            self.http_status = status

    def cancel(self) -> None:
        """Mark this request cancelled by the user (keeps the first way it ended)."""
        if self.status is Status.OK:
            self.status = Status.CANCELLED
            self.error_kind = Status.CANCELLED.value

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RequestRecord:
        """A record back from its ``requests.jsonl`` line (what :meth:`to_json` wrote; the answer's text and the
        request's body are not kept there). ``llmsurge report`` counts these through the live bus's code."""

        def s(key: str) -> float | None:
            v = row.get(key)
            return None if v is None else float(v) / 1000.0

        start = float(row.get("start_time") or 0.0)
        rec = cls(str(row.get("id") or ""), int(row.get("segment") or 0), int(row.get("worker") or 0), 0.0, start)
        rec.warmup = bool(row.get("warmup"))
        rec.status = Status(row.get("status", "ok"))
        rec.error_kind = row.get("error_kind") or ""
        rec.error = row.get("error") or ""
        rec.http_status = int(row.get("http_status") or 0)
        rec.ttft, rec.ttfc, rec.e2el = s("ttft_ms"), s("ttfc_ms"), s("e2el_ms")
        rec.itl = array("d", (float(x) / 1000.0 for x in row.get("itl_ms") or ()))
        rec.end = s("latency_ms") or 0.0
        rec.prompt_tokens = int(row.get("prompt_tokens") or 0)
        rec.output_tokens = int(row.get("output_tokens") or 0)
        rec.tokens_estimated = bool(row.get("tokens_estimated"))
        rec.finish_reason = row.get("finish_reason") or ""
        rec.resent = bool(row.get("resent") or row.get("retries"))  # older runs wrote retries: 0 or 1
        rec.reused = row["reused"] if isinstance(row.get("reused"), bool) else None
        rec.connect, rec.tls, rec.headers = s("connect_ms"), s("tls_ms"), s("headers_ms")
        rec.max_tokens = int(row.get("max_tokens") or 0)
        rec.cached_tokens = row.get("cached_tokens")
        rec.ignore_eos = bool(row.get("ignore_eos"))
        rec.client_wait = s("client_wait_ms")
        rec.usage_rejected = row.get("usage_rejected") or ""
        rec.inputs = int(row.get("inputs") or 0)
        rec.model = str(row.get("model") or "")
        rec.target = str(row.get("target") or "")
        rec.ttfr = s("ttfr_ms")
        rec.reasoning_chunks = int(row.get("reasoning_chunks") or 0)
        rec.turn = int(row.get("turn") or 0)
        rec.degenerate = row.get("degenerate") or ""
        quality = row.get("quality")
        if isinstance(quality, dict):
            rec.quality_item = str(quality.get("item") or "")
            rec.quality_ok = bool(quality.get("correct"))
            rec.quality_why = str(quality.get("why") or "")
        rec.retry_after = row.get("retry_after_s")
        if row.get("server_prompt_ms") is not None:
            rec.server = ServerTimings.of(
                {
                    "prompt_ms": row.get("server_prompt_ms"),
                    "prompt_n": row.get("server_prompt_tokens"),
                    "cache_n": row.get("server_cached_tokens"),
                    "predicted_ms": row.get("server_decode_ms"),
                }
            )
            if rec.server is not None and row.get("server_queue_ms") is not None:
                rec.server = dataclasses.replace(
                    rec.server, queue_ms=_ms(row.get("server_queue_ms")), source=str(row.get("server_source") or "")
                )
        return rec

    def to_json(self) -> dict[str, object]:
        """The line written to ``requests.jsonl`` (milliseconds, like vLLM's per-request output)."""

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 4)

        tpot = self.tpot
        out: dict[str, object] = {
            "id": self.request_id,
            "segment": self.segment,
            "worker": self.worker,
            "warmup": self.warmup,
            "status": self.status.value,
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
            "resent": self.resent,
            "reused": self.reused,
            "connect_ms": ms(self.connect),
            "tls_ms": ms(self.tls),
            "headers_ms": ms(self.headers),
            "max_tokens": self.max_tokens or None,
            "cached_tokens": self.cached_tokens,
            "ignore_eos": self.ignore_eos,
            "client_wait_ms": ms(self.client_wait),
        }
        if self.inputs:
            out["inputs"] = self.inputs
        if self.model:
            out["model"] = self.model
        if self.target:
            out["target"] = self.target
        if self.usage_rejected:
            out["usage_rejected"] = self.usage_rejected
        if self.retry_after is not None:
            out["retry_after_s"] = self.retry_after
        if self.ttfr is not None:
            out["ttfr_ms"] = ms(self.ttfr)
            out["reasoning_chunks"] = self.reasoning_chunks
        if self.turn:
            out["turn"] = self.turn
        if self.degenerate:
            out["degenerate"] = self.degenerate
        if self.quality_ok is not None:
            out["quality"] = {"item": self.quality_item, "correct": self.quality_ok, "why": self.quality_why or None}
        if self.server is not None:  # the server's clock (llama.cpp's timings), beside ours
            out["server_prompt_ms"] = self.server.prompt_ms
            out["server_prompt_tokens"] = self.server.prompt_tokens
            out["server_cached_tokens"] = self.server.cached_tokens
            out["server_decode_ms"] = self.server.decode_ms
            out["server_queue_ms"] = self.server.queue_ms
            out["server_source"] = self.server.source
            share = self.server.client_share_ms(self.ttft)
            out["ttft_minus_server_prompt_ms"] = None if share is None else round(share, 4)
        return out


_record_values = operator.attrgetter(*(f.name for f in dataclasses.fields(RequestRecord)))
"""A record's fields' values in ``__init__``'s order (every field is one of its arguments): how it is pickled."""
