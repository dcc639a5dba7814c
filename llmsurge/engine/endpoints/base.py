"""What an endpoint is to the load (:class:`Endpoint`), and what every endpoint settles a record with: usage read
when it is plausible, a whole answer's figures, the server's error message.

An endpoint module builds its request body, reads one streamed event (the stream's framing, ``[DONE]``, error
events and JSON decoding are the client's: ``engine/client.py`` ``_Stream``) and reads a whole answer. It imports
neither httpx nor aiohttp: workers load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from llmsurge.metrics.records import Failure, RequestRecord, ServerTimings
from llmsurge.redaction import redact

if TYPE_CHECKING:
    from llmsurge.engine.scenario import RequestShape

Prompt = str | list[dict[str, object]]
"""What a request asks: a user message's text, or whole chat messages."""
Token = tuple[str | None, str | None, bool]
"""One token event: its text (None: no text, e.g. a tool call's arguments or thinking), the finish reason it
carries, and whether it is thinking (reasoning)."""


class ChunkCounter:
    """Counts token events as they arrive, so live token rates include unfinished streams.

    With ``delays`` set (a list), each chunk stamped by the simulated server (``llmsurge_sent``, its
    ``time.monotonic()`` at send) adds how late we read it: the client's own timing error, for benchmarks.
    """

    __slots__ = ("chunks", "delays")

    def __init__(self, measure_delays: bool = False) -> None:
        self.chunks = 0
        self.delays: list[float] | None = [] if measure_delays else None


class Reading(Protocol):
    """One answer's stream as an endpoint's event reader sees it (``client._Stream``)."""

    rec: RequestRecord
    counter: ChunkCounter
    usage: object
    """The usage as chat names it (``prompt_tokens``, ``completion_tokens`` …), read at the stream's end."""
    raw_usage: dict[str, object] | None
    """An endpoint's own usage, merged over its events (the Messages API's)."""
    ended: bool
    """The answer's own end came (``[DONE]``, ``message_stop``)."""

    def fail(self, kind: Failure, message: str) -> bool:
        """Fail the request; True (no more bytes are wanted)."""
        ...


class Endpoint(Protocol):
    """One request shape llmsurge sends: registered by its :attr:`name` (``--endpoint NAME``) in
    :mod:`llmsurge.engine.endpoints`."""

    name: ClassVar[str]
    path: ClassVar[str]
    """Where it goes under the server's base URL."""
    summary: ClassVar[str]
    """One line for ``--endpoint``'s help."""
    pooling: ClassVar[bool]
    """One whole answer and no generated tokens (embeddings, rerank): no TTFT, no stream."""
    options: ClassVar[tuple[tuple[str, str], ...]]
    """The request options only it takes: (``RequestShape`` field, its flag), e.g. ``("tools", "--tools")``."""
    order: ClassVar[int]
    """Its place in lists and help (chat first)."""
    uncalibrated: ClassVar[str]
    """Why its usage cannot calibrate prompt lengths ('' when it can)."""

    def headers(self, api_key: str | None) -> dict[str, str]:
        """Headers it needs beside the target's own (the Messages API's version and key)."""
        ...

    def inputs(self, shape: RequestShape) -> int:
        """Items one request carries (embedding inputs, rerank documents; 1 for a generation)."""
        ...

    def body(self, shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        """The request's JSON body, less what every generation adds (``ignore_eos``, the stream: :meth:`streamed`)."""
        ...

    def streamed(self, body: dict[str, object]) -> None:
        """Ask ``body`` for a stream, with its usage where the API must be asked for it."""
        ...

    def event(self, msg: dict[str, object], stream: Reading, t: float) -> Token | None:
        """One streamed event (decoded JSON, read at ``t``): the token it carries, or None (no token, or the
        request failed: ``stream.fail``)."""
        ...

    def whole(self, msg: object, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
        """A whole (not streamed) answer, decoded, that arrived at ``t``: settle ``rec`` or fail it."""
        ...


class Generation:
    """What the generating endpoints share: no headers of their own, one input, a stream with its usage asked."""

    pooling: ClassVar[bool] = False
    options: ClassVar[tuple[tuple[str, str], ...]] = ()
    uncalibrated: ClassVar[str] = ""

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {}

    def inputs(self, shape: RequestShape) -> int:
        return 1

    def streamed(self, body: dict[str, object]) -> None:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}


class TypedEvents(Generation):
    """A generation whose stream is typed events carrying their own usage (the Responses and Messages APIs): asked
    for with ``stream`` alone."""

    def streamed(self, body: dict[str, object]) -> None:
        body["stream"] = True


def messages_of(prompt: Prompt) -> list[dict[str, object]]:
    """The prompt as chat messages (a text is one user message)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def text_of(prompt: Prompt) -> str:
    """The prompt as one text (chat messages' contents, a blank line apart)."""
    return prompt if isinstance(prompt, str) else "\n\n".join(str(m.get("content", "")) for m in prompt)


def system_apart(messages: list[dict[str, object]]) -> tuple[str, list[dict[str, object]]]:
    """The system prompt (joined; '' when none) and the other messages: the APIs that take it apart."""
    system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    return "\n\n".join(system), [m for m in messages if m.get("role") != "system"]


def error_message(payload: object) -> str:
    """The server's words in an error object: ``error.message``, else the error or the payload itself."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err if err is not None else payload)[:300]


MAX_PLAUSIBLE_TOKENS = 100_000_000


def count_of(value: object) -> int | None:
    """``value`` as a token count if it is one (a whole number, 0 ≤ n < 10⁸), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (value.is_integer() and abs(value) < MAX_PLAUSIBLE_TOKENS):
        return None
    n = int(value)
    return n if 0 <= n < MAX_PLAUSIBLE_TOKENS else None


def usage_problem(figure: object, max_tokens: int, content_chunks: int, messages: int) -> str:
    """Why a server's ``completion_tokens`` cannot be a measurement ('' when it can).

    ``messages`` counts the stream's ``choices`` messages (0 for a whole response). Each content message carries at
    least one token, and no server sends many more tokens than it was asked for and than it sent messages.
    """
    n = count_of(figure)
    if n is None:
        return "not a whole number of tokens"
    if n * 2 < content_chunks:
        return f"fewer than the {content_chunks} content chunks received"
    ceiling = max(2 * max_tokens, 8 * messages) + 16 if (max_tokens or messages) else None
    if ceiling is not None and n > ceiling:
        return f"far beyond max_tokens={max_tokens}" if max_tokens else "far beyond the chunks received"
    return ""


def apply_usage(rec: RequestRecord, usage: object, fallback_tokens: int, messages: int) -> None:
    """Output and prompt tokens from the server's usage when it is plausible, else from our own count."""
    figure = usage.get("completion_tokens") if isinstance(usage, dict) else None
    problem = usage_problem(figure, rec.max_tokens, fallback_tokens, messages) if figure is not None else "absent"
    if problem:
        rec.output_tokens = fallback_tokens
        rec.tokens_estimated = True
        if problem != "absent" or (usage is not None and not isinstance(usage, dict)):
            shown = figure if figure is not None else usage
            rec.usage_rejected = redact(f"completion_tokens={shown!r}"[:80] + f": {problem or 'not an object'}")
    else:
        rec.output_tokens = count_of(figure) or 0
    if isinstance(usage, dict):
        rec.cached_tokens = cached_tokens(usage)
        rec.server = ServerTimings.of(usage.get("timings")) or ServerTimings.of_vllm(usage.get("metrics"))
    if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
        prompt = count_of(usage["prompt_tokens"])
        if prompt:
            rec.prompt_tokens = prompt
        elif prompt is None:
            note = f"prompt_tokens={usage['prompt_tokens']!r}"[:80] + ": not a whole number of tokens"
            rec.usage_rejected = redact("; ".join(x for x in (rec.usage_rejected, note) if x))


def cached_tokens(usage: dict[str, object]) -> int | None:
    """Prompt tokens the server took from its prefix cache, where it says: OpenAI's and vLLM's
    ``usage.prompt_tokens_details.cached_tokens``, or llama.cpp's ``timings.cache_n``."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        return count_of(details["cached_tokens"])
    timings = usage.get("timings")
    if isinstance(timings, dict) and timings.get("cache_n") is not None:
        return count_of(timings["cache_n"])
    return None


def whole_answer(rec: RequestRecord, t: float, text: str, finish: str, usage: object, counter: ChunkCounter) -> None:
    """A whole (not streamed) answer arrived at ``t``: every latency is its latency, one chunk, tokens from usage
    (or its words)."""
    rec.ttft = rec.ttfc = rec.e2el = t - rec.start
    rec.finish_reason = finish
    rec.text.append(text)
    apply_usage(rec, usage, len(text.split()), 0)
    counter.chunks += rec.output_tokens
    rec.chunks = 1
