"""The OpenAI-compatible client: payloads, one streaming request measured into a RequestRecord, discovery.

The hot path is :func:`execute`: it reads raw bytes, stamps them with ``time.monotonic()`` as they arrive,
splits SSE events with the one :class:`~llmsurge.engine.sse.SSEParser` and decodes each JSON payload once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Union

from msgspec.json import Decoder as _JsonDecoder

from llmsurge.engine.http1 import (
    SETTLE_S,
    BadAnswer,
    ConnectFailed,
    Disconnected,
    WireError,
    WirePool,
    WireResponse,
)
from llmsurge.engine.scenario import RequestShape
from llmsurge.engine.sse import ErrorEvent, SSEEventTooLarge, SSEParser
from llmsurge.metrics.records import TEXT_FOLD, Failure, RequestRecord, ServerTimings, Status, http_kind
from llmsurge.net import Target
from llmsurge.redaction import redact

if TYPE_CHECKING:
    import httpx

Client = Union["httpx.AsyncClient", WirePool]
"""What a request is sent with: the load's own client (workers), or an httpx client that carries one
(:class:`~llmsurge.engine.httpclient.LoadClient`: checks and probes) or none (httpx then sends it)."""

_loads = json.loads
_text_json = json.JSONDecoder().decode
_fast_json = _JsonDecoder().decode


def _decode_json(payload: bytes) -> Any:
    """An event's JSON, from its UTF-8 bytes: msgspec, ~0.6x the CPU of the client's whole per-event path with the
    standard library's decoder, orjson ~0.8x (bench/RESULTS.md, "JSON decoders"). What msgspec refuses and the
    standard library reads (NaN, 1e400: a server's odd usage figure, judged later) is read by the latter."""
    try:
        return _fast_json(payload)
    except ValueError:
        return _text_json(payload.decode())


_now = time.monotonic

ABANDON_AFTER_S = 1.0
"""How long a timed-out request's clean-up may take before it is left behind: it must not wait on the server."""


def replay_body(shape: RequestShape, model: str, raw: str) -> bytes:
    """A trace's request body sent as production sent it (``raw``: its JSON text): only the model is the run's,
    and the stream is asked for (with its usage) when the run streams, so that each token is timed."""
    body = json.loads(raw)
    body["model"] = model
    if shape.stream:
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return json.dumps(body).encode()


def build_body(shape: RequestShape, model: str, prompt: str | list[dict[str, Any]], max_tokens: int) -> bytes:
    """The JSON body of one request: ``prompt`` is a user message's text, or whole chat messages. Embeddings send
    ``shape.batch`` inputs and rerank a query with ``shape.documents`` documents, each a numbered copy of it."""
    text = prompt if isinstance(prompt, str) else "\n\n".join(str(m.get("content", "")) for m in prompt)
    if shape.endpoint == "embeddings":
        inputs = [f"{i} {text}" for i in range(shape.batch)] if shape.batch > 1 else [text]
        return json.dumps({"model": model, "input": inputs, "encoding_format": "float"}).encode()
    if shape.endpoint == "rerank":
        query = " ".join(text.split()[:RERANK_QUERY_WORDS])
        documents = [f"{i} {text}" for i in range(shape.documents)]
        return json.dumps({"model": model, "query": query, "documents": documents, "top_n": shape.documents}).encode()
    body: dict[str, Any] = {"model": model, "temperature": shape.temperature}
    if shape.endpoint == "responses":
        if isinstance(prompt, str):
            body["input"] = prompt
        else:  # a chat's messages: the system prompt as instructions, the rest as input items
            body["input"] = [m for m in prompt if m.get("role") != "system"]
            system = [str(m.get("content", "")) for m in prompt if m.get("role") == "system"]
            if system:
                body["instructions"] = "\n\n".join(system)
        body["max_output_tokens"] = max_tokens
    elif shape.endpoint == "messages":  # the Anthropic Messages API: the system prompt beside the messages
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
        body["messages"] = [m for m in messages if m.get("role") != "system"]
        if system:
            body["system"] = "\n\n".join(system)
        body["max_tokens"] = max_tokens
    elif shape.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        body["max_tokens"] = max_tokens
        if shape.tools:
            body["tools"] = tool_definitions(shape.tools)
            body["tool_choice"] = "auto"
            last = body["messages"][-1]
            body["messages"] = [*body["messages"][:-1], {**last, "content": f"{TOOL_ASK} {last.get('content', '')}"}]
    else:
        body["prompt"] = text
        body["max_tokens"] = max_tokens
    if shape.ignore_eos:
        body["ignore_eos"] = True
    if shape.stream:
        body["stream"] = True
        if shape.endpoint not in ("responses", "messages"):  # they send their usage in their own events
            body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


TOOL_ASK = "Call the lookup_0 tool with the words below as its query."
"""What a tool-calling request asks before its prompt (so a model that can call tools does)."""


def tool_definitions(n: int) -> list[dict[str, Any]]:
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


RERANK_QUERY_WORDS = 16
"""A rerank query is the prompt's first words."""


def loopback_source(hosts: tuple[str, ...], worker_id: int, workers: int) -> str | None:
    """The local address a worker's connections come from: against IPv4 loopback servers (every one of ``hosts``)
    with several workers, each its own ``127.0.0.N`` — every source address has its own ~28,000 ephemeral ports to
    one server port, so tens of thousands of streams from one machine do not run out of them; None otherwise (the
    OS picks)."""
    if workers < 2 or not hosts or not all(h.startswith("127.") for h in hosts):
        return None
    return f"127.0.0.{2 + worker_id % 250}"


class ChunkCounter:
    """Counts ``choices`` messages as they arrive, so live token rates include unfinished streams.

    With ``delays`` set (a list), each chunk stamped by the simulated server (``llmsurge_sent``, its
    ``time.monotonic()`` at send) adds how late we read it: the client's own timing error, for benchmarks.
    """

    __slots__ = ("chunks", "delays")

    def __init__(self, measure_delays: bool = False) -> None:
        self.chunks = 0
        self.delays: list[float] | None = [] if measure_delays else None


def classify_error(exc: BaseException, got_response: bool) -> Failure:
    """The failure kind of a transport exception (the wire's own, or httpx's with an aiohttp cause)."""
    if isinstance(exc, ConnectFailed):
        return Failure.CONNECT
    if isinstance(exc, Disconnected):
        return Failure.RESET
    if isinstance(exc, BadAnswer):
        return Failure.PROTOCOL
    cause = exc.__cause__ or exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or isinstance(cause, asyncio.TimeoutError):
        return Failure.TIMEOUT
    # httpx's faults (and aiohttp's under them) only where they are loaded: a worker never loads them, and must not
    # stop to import them in the middle of a run.
    httpx, aiohttp = sys.modules.get("httpx"), sys.modules.get("aiohttp")
    if aiohttp is not None:
        timed_out = httpx is not None and isinstance(exc, httpx.TimeoutException)
        if timed_out and not isinstance(cause, aiohttp.ClientConnectionError):
            return Failure.TIMEOUT
        if isinstance(cause, aiohttp.ClientConnectorError):
            return Failure.CONNECT
        if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            return Failure.RESET
    if isinstance(cause, ConnectionRefusedError) or (httpx is not None and isinstance(exc, httpx.ConnectError)):
        return Failure.CONNECT
    if isinstance(cause, ConnectionResetError):
        return Failure.RESET
    return Failure.RESET if got_response else Failure.CONNECT


def _error_message(payload: object) -> str:
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err if err is not None else payload)[:300]


def _os_limit(exc: BaseException) -> str:
    """The OS limit a connection ran into, named with its remedy ('' when it was not one)."""
    import errno

    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None:
            return ""
        code = getattr(cause, "errno", None)
        if code == errno.EMFILE or code == errno.ENFILE:
            return (
                "too many open files: the OS limit on open sockets was reached (ulimit -n; raise the hard limit, "
                "or use fewer streams per worker with more workers)"
            )
        if code == errno.EADDRNOTAVAIL:
            return (
                "no free local port: the OS's ephemeral ports to this server are used up "
                "(sysctl net.ipv4.ip_local_port_range; fewer streams, or more client machines with --ray)"
            )
        cause = cause.__cause__ or getattr(cause, "os_error", None)
    return ""


def _unread(exc: BaseException) -> bool:
    """Whether a request provably never reached the server, so sending it again cannot double it: a *reused*
    pooled keep-alive connection that closed before one byte of the answer came (llama.cpp closes idle ones after
    5 s), as browsers and curl judge it. A fresh connection that closed is not: the server may have read the POST
    and dropped it (a crash, an overloaded front end), and a load tester never doubles a request."""
    return isinstance(exc, Disconnected) and exc.reused and not exc.answered


def _transport_errors(client: Client) -> tuple[type[BaseException], ...]:
    """What sending on ``client`` raises for a transport fault."""
    if isinstance(client, WirePool):
        return (WireError, OSError)
    import aiohttp
    import httpx

    return (WireError, httpx.HTTPError, OSError, aiohttp.ClientError)


def _wire(client: Client) -> WirePool | None:
    """The load's own client ``client`` is or carries; None: httpx sends it."""
    return client if isinstance(client, WirePool) else getattr(client, "wire", None)


async def execute(
    client: Client,
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    rec: RequestRecord,
    counter: ChunkCounter,
    resend_client: Client | None = None,
) -> None:
    """Send one request and measure it into ``rec`` (``rec.start`` must be set just before the call).

    Never raises for server or transport faults: they become ``rec.status = failed`` with a kind. A request
    that died on a reused pooled connection before any response byte arrived (it provably went unread) is re-sent
    once, on ``resend_client`` (a client that opens a fresh connection per request) when given; nothing else is
    ever sent twice. The answer's phases are kept in ``rec``: the connection (``reused``, ``connect``, ``tls``) and
    the time to its headers. Cancellation propagates so the caller can record it.
    """
    for attempt in range(2):
        got_response = False
        wire = _wire(client)
        try:
            if wire is not None:  # the hot path: our own HTTP/1.1 client
                r = await wire.post(url, body, headers)
                got_response = True
                rec.reused, rec.connect, rec.tls, rec.headers = r.reused, r.connect_s, r.tls_s, r.headers_s
                said_done = False
                try:
                    said_done = await _answered(r.status, r.headers, r, stream, rec, counter)
                    if said_done:
                        await r.settle(SETTLE_S)
                finally:
                    r.release(linger=said_done)
            else:
                assert not isinstance(client, WirePool)
                async with client.stream("POST", url, content=body, headers=headers) as resp:
                    got_response = True
                    await _answered(resp.status_code, resp.headers, resp.aiter_raw(), stream, rec, counter)
            return
        except _transport_errors(client) as exc:
            if attempt == 0 and not got_response and _unread(exc):
                rec.resent = True
                rec.start = _now()  # the failed write on a dead pooled connection is not the server's time
                client = resend_client or client
                continue
            rec.fail(classify_error(exc, got_response), _os_limit(exc) or f"{type(exc).__name__}: {exc}")
            return


async def _answered(
    status: int,
    headers: Mapping[str, str],
    raw: AsyncIterator[bytes],
    stream: bool,
    rec: RequestRecord,
    counter: ChunkCounter,
) -> bool:
    """Read an answer (its headers came): a refusal, JSON where a stream was asked, a stream, or a whole body.
    The body is read as it came off the wire; one that arrived encoded despite ``Accept-Encoding: identity`` is
    decoded (gateways and proxies encode streams whatever the request accepted). True when a stream ended by its
    own ``[DONE]`` (its framing may end later, or never)."""
    encoding = (headers.get("content-encoding") or "").strip().lower()
    chunks = _decoded(raw, encoding) if encoding and encoding != "identity" else raw
    try:
        if status < 200 or status >= 300:
            await _refused(status, headers, chunks, rec)
            return False
        rec.http_status = status
        if stream and (headers.get("content-type") or "").startswith("application/json"):
            why = _error_text(await _read_capped(chunks))
            rec.fail(Failure.PROTOCOL, "the server answered JSON, not an event stream" + (f": {why}" if why else ""))
            return False
        if stream:
            if isinstance(raw, WireResponse) and chunks is raw:  # the load's own client: read inside each read
                parsed = _Stream(rec, counter)
                await raw.pipe(parsed.feed)
                return parsed.finish()
            return await _parse_stream(chunks, rec, counter)
        body = await _read_capped(chunks, PLAIN_BODY_CAP, what="answer")
        _finish_plain(body, _now(), rec, counter)
    except EncodingError as exc:
        rec.fail(Failure.PROTOCOL, str(exc))
    except BodyTooLarge as exc:
        rec.fail(Failure.PROTOCOL, str(exc))
    return False


async def run_request(
    client: Client,
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    rec: RequestRecord,
    counter: ChunkCounter,
    timeout: float,
    resend_client: Client | None = None,
) -> None:
    """:func:`execute` with a hard deadline: ``rec`` has ended within ``timeout`` seconds of the call, whatever
    the server does (streams forever, never sends headers, never closes). A timed-out request is cancelled and
    its clean-up given :data:`ABANDON_AFTER_S`; a clean-up that would wait on the server is left behind."""
    if _wire(client) is not None:
        await _within(timeout, execute(client, url, headers, body, stream, rec, counter, resend_client), rec)
        return
    task = asyncio.ensure_future(execute(client, url, headers, body, stream, rec, counter, resend_client))
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        task.result()  # a bug in execute() surfaces to the caller
        return
    rec.fail(Failure.TIMEOUT, f"no complete answer within {timeout:g}s")
    task.cancel()
    await asyncio.wait((task,), timeout=ABANDON_AFTER_S)


async def _within(timeout: float, work: Coroutine[Any, Any, None], rec: RequestRecord) -> None:
    """Run ``work`` in this task with a timer that cancels it at the deadline: no second task per request. Its
    clean-up (closing the connection) never waits on the server."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await work
    except asyncio.CancelledError:
        if not expired:
            raise  # the run is stopping: the caller records it
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: this cancellation was ours, and it is handled
        if uncancel is not None:
            uncancel()
        rec.fail(Failure.TIMEOUT, f"no complete answer within {timeout:g}s")
    finally:
        timer.cancel()


ERROR_BODY_CAP = 4096
"""Bytes of an error answer read (the message is kept to 300 characters)."""
RETRY_AFTER_MAX_S = 30.0
"""The longest ``Retry-After`` a worker slot honours (a server asking for more is waited on this long, then asked
again)."""


PLAIN_BODY_CAP = 64 * 1024 * 1024
"""Bytes of a whole (not streamed) answer read: an embeddings batch of 1,024 inputs of 4,096 floats is ~40 MB as
JSON; a larger answer is refused, never held whole."""


class BodyTooLarge(Exception):
    """A whole answer longer than this client reads."""


async def _read_capped(chunks: AsyncIterator[bytes], cap: int = ERROR_BODY_CAP, what: str = "") -> bytes:
    """At most ``cap`` bytes of the body (decoded): an error answer can be endless too. With ``what`` named, a body
    longer than ``cap`` raises :class:`BodyTooLarge` instead of being cut."""
    out = bytearray()
    async for chunk in chunks:
        out.extend(chunk)
        if len(out) >= cap:
            if what and len(out) > cap:
                raise BodyTooLarge(f"the {what} is longer than {cap // (1024 * 1024)} MB: not read whole")
            break
    return bytes(out[:cap])


def _error_text(raw: bytes) -> str:
    """The ``error.message`` of a JSON error body, else the body's text."""
    try:
        return _error_message(_loads(raw))
    except ValueError:
        return raw.decode(errors="replace")


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds, or an HTTP date), bounded to
    :data:`RETRY_AFTER_MAX_S`; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(RETRY_AFTER_MAX_S, max(0.0, seconds))


async def _refused(status: int, headers: Mapping[str, str], chunks: AsyncIterator[bytes], rec: RequestRecord) -> None:
    """A non-2xx answer: its cause named (a redirect says where to), its ``Retry-After`` kept."""
    if 300 <= status < 400:
        where = headers.get("location") or "(no Location given)"
        rec.fail(http_kind(status), f"redirected to {where}; redirects are not followed: use that URL", status)
        return
    if status in (429, 503):
        rec.retry_after = retry_after(headers.get("retry-after"))
    try:
        text = _error_text(await _read_capped(chunks))
    except EncodingError as exc:
        text = str(exc)
    rec.fail(http_kind(status), text, status)


class EncodingError(Exception):
    """A body encoded in a way this client does not decode."""


async def _decoded(chunks: AsyncIterator[bytes], encoding: str) -> AsyncIterator[bytes]:
    """Chunks of a gzip- or deflate-encoded body, decoded as they arrive (gateways and proxies encode streams
    whatever the request accepted)."""
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise EncodingError(f"the body came {encoding}-encoded, which this client does not decode")
    d = zlib.decompressobj(wbits=47)  # a gzip or zlib header, detected
    try:
        async for raw in chunks:
            out = d.decompress(raw)
            if out:
                yield out
        tail = d.flush()
    except zlib.error as exc:
        raise EncodingError(f"the {encoding}-encoded body could not be decoded ({exc})") from None
    if tail:
        yield tail


async def _parse_stream(chunks: AsyncIterator[bytes], rec: RequestRecord, counter: ChunkCounter) -> bool:
    """An event stream read from ``chunks`` (a pull: each chunk awaited); True when it ended by its own ``[DONE]``."""
    stream = _Stream(rec, counter)
    async for raw in chunks:
        if stream.feed(raw):
            break
    return stream.finish()


class _Stream:
    """One answer's event stream, measured into its record as bytes arrive: :meth:`feed` each read (inside the read
    itself on the load's own client: ``WireResponse.pipe``), then :meth:`finish`."""

    __slots__ = (
        "content_chunks",
        "counter",
        "ended",
        "failed",
        "fold",
        "last",
        "parser",
        "raw_usage",
        "rec",
        "saw_choices",
        "usage",
    )

    def __init__(self, rec: RequestRecord, counter: ChunkCounter) -> None:
        self.parser = SSEParser()
        self.rec = rec
        self.counter = counter
        self.last = 0.0
        self.content_chunks = 0
        self.usage: Any = None
        self.raw_usage: dict[str, Any] | None = None  # the Messages API's usage, merged over its events
        self.saw_choices = False
        self.fold = 0 if rec.text_whole else TEXT_FOLD
        self.ended = False  # [DONE] came
        self.failed = False

    def finish(self) -> bool:
        """The stream is over (its end, [DONE], or a failure already recorded): was it whole? True when it ended by
        its own ``[DONE]`` (its framing may end later, or never)."""
        if self.failed:
            return False
        if self.ended:
            self.parser.flush()  # [DONE] is the last event: whatever follows it is not the answer's
        _end_stream(self.rec, self.parser, self.last if self.saw_choices else None, self.content_chunks, self.usage)
        return self.ended

    def _fail(self, kind: Failure, message: str) -> bool:
        self.rec.fail(kind, message)
        self.failed = True
        return True

    def feed(self, raw: bytes) -> bool:
        """One read's bytes, stamped now; True when no more are wanted ([DONE], or the answer failed)."""
        t = _now()
        rec = self.rec
        counter = self.counter
        try:
            payloads = self.parser.feed(raw)
        except SSEEventTooLarge as exc:
            return self._fail(Failure.PROTOCOL, str(exc))
        st = rec.start
        itl = rec.itl
        texts = rec.text
        fold = self.fold
        for payload in payloads:
            if payload == b"[DONE]":
                self.ended = True  # the answer's end, whether or not the body ends (its connection is then dropped)
                continue
            if type(payload) is ErrorEvent:
                return self._fail(Failure.STREAM_ERROR, _event_error(payload))
            try:
                msg = _decode_json(payload)
            except ValueError:
                return self._fail(Failure.PROTOCOL, f"malformed SSE data: {payload[:80]!r}")
            if not isinstance(msg, dict):
                return self._fail(Failure.PROTOCOL, f"unexpected SSE data: {payload[:80]!r}")
            event = msg.get("type")
            thinking = False
            if event in MESSAGE_EVENTS:  # the Anthropic Messages API: typed events, its own names
                if event == "content_block_delta":
                    delta = msg.get("delta")
                    kind = delta.get("type") if isinstance(delta, dict) else None
                    if kind == "text_delta":
                        text, reason = delta.get("text"), None  # type: ignore[union-attr]
                    elif kind in ("thinking_delta", "input_json_delta"):
                        text, reason, thinking = None, None, kind == "thinking_delta"
                        if kind == "input_json_delta":  # a tool call's arguments, streamed: output
                            rec.tool_calls.setdefault(msg.get("index", 0), []).append(
                                str(delta.get("partial_json") or "")  # type: ignore[union-attr]
                            )
                            if rec.ttfc is None:
                                rec.ttfc = t - st
                    else:
                        continue  # a signature: no token
                else:
                    if event == "message_start":
                        message = msg.get("message")
                        self.raw_usage = dict(message.get("usage") or {}) if isinstance(message, dict) else {}
                        self.usage = _messages_usage(self.raw_usage)
                    elif event == "message_delta":
                        usage = msg.get("usage")
                        if isinstance(usage, dict):  # cumulative output tokens (and, newer, the rest)
                            self.raw_usage = {**(self.raw_usage or {}), **usage}
                            self.usage = _messages_usage(self.raw_usage)
                        delta = msg.get("delta")
                        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
                        if stop:
                            rec.finish_reason = MESSAGE_STOPS.get(str(stop), str(stop))
                    elif event == "message_stop":
                        self.ended = True  # the Messages API's end (it sends no [DONE])
                    elif event == "error":
                        return self._fail(Failure.STREAM_ERROR, _error_message(msg))
                    continue  # ping, content_block_start/stop: no token
            elif event is not None and "choices" not in msg:  # the Responses API: typed events
                if event in RESPONSE_TEXT:
                    delta = msg.get("delta")
                    text, reason = (delta if isinstance(delta, str) else None), None
                elif event in RESPONSE_REASONING:
                    text, reason, thinking = None, None, True
                else:
                    if event in ("response.completed", "response.incomplete"):
                        response = msg.get("response")
                        response = response if isinstance(response, dict) else {}
                        self.usage = _responses_usage(response.get("usage"))
                        details = response.get("incomplete_details")
                        why = details.get("reason") if isinstance(details, dict) else None
                        rec.finish_reason = "length" if why == "max_output_tokens" else str(why or "stop")
                    elif event in ("response.failed", "error"):
                        response = msg.get("response")
                        why = _error_message(response if isinstance(response, dict) else msg)
                        return self._fail(Failure.STREAM_ERROR, why)
                    continue  # created, in_progress, output_item.added …: no token
            else:
                u = msg.get("usage")
                if u:
                    usage = u
                    timings = msg.get("timings")  # llama.cpp: its prompt cache (cache_n) rides with the usage
                    if isinstance(timings, dict) and isinstance(usage, dict) and "timings" not in usage:
                        usage = {**usage, "timings": timings}
                    metrics = msg.get("metrics")  # vLLM --enable-per-request-metrics: its clock, with the usage
                    if isinstance(metrics, dict) and isinstance(usage, dict) and "metrics" not in usage:
                        usage = {**usage, "metrics": metrics}
                    self.usage = usage
                choices = msg.get("choices")
                if not choices:
                    if "error" in msg:
                        return self._fail(Failure.STREAM_ERROR, _error_message(msg))
                    continue
                choice = choices[0] if isinstance(choices, list) else None
                if not isinstance(choice, dict):
                    return self._fail(Failure.PROTOCOL, f"a choices entry that is not an object: {payload[:80]!r}")
                if counter.delays is not None and "llmsurge_sent" in msg:
                    counter.delays.append(t - msg["llmsurge_sent"])
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    text = delta.get("content")
                    calls = delta.get("tool_calls")
                    if calls and isinstance(calls, list):  # a tool call's name and arguments, streamed: output
                        for call in calls:
                            fn = call.get("function") if isinstance(call, dict) else None
                            if isinstance(fn, dict):
                                i = call.get("index", 0)
                                rec.tool_calls.setdefault(i if isinstance(i, int) else 0, []).append(
                                    str(fn.get("arguments") or "")
                                )
                        if rec.ttfc is None:
                            rec.ttfc = t - st
                    # Reasoning models stream their thinking first: vLLM and SGLang as reasoning_content,
                    # others (OpenRouter, Ollama, vLLM >= 0.10) as reasoning. It is output; the answer is content.
                    thinking = not text and bool(delta.get("reasoning_content") or delta.get("reasoning"))
                else:
                    text = choice.get("text")
                reason = choice.get("finish_reason")
            # One token event, whichever API sent it: counted, timed, its text kept.
            counter.chunks += 1
            if self.saw_choices:
                itl.append(t - self.last)
            else:
                self.saw_choices = True
                rec.ttft = t - st
            self.last = t
            if thinking:
                rec.reasoning_chunks += 1
                if rec.ttfr is None:
                    rec.ttfr = t - st
            if text:
                self.content_chunks += 1
                texts.append(text)
                if rec.ttfc is None:
                    rec.ttfc = t - st
                elif fold and len(texts) >= fold:
                    rec.keep_text()
            if reason:
                rec.finish_reason = str(reason)
        return self.ended


def _event_error(payload: bytes) -> str:
    """The server's message in an ``event: error``, whatever its data's shape: JSON's ``error.message``, ``message``
    or ``error``, else the JSON or the text itself."""
    text = payload.decode(errors="replace")
    try:
        msg = _loads(text)
    except ValueError:
        return text or "the server sent an error event"
    if isinstance(msg, dict):
        err = msg.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "error", "detail"):
            if msg.get(key):
                return str(msg[key])
    return text


MESSAGE_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
    }
)
"""The Anthropic Messages API's stream events (its ``error`` is read with the Responses API's)."""
MESSAGE_STOPS = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls"}
"""A Messages answer's ``stop_reason`` under chat's ``finish_reason`` names."""


def _messages_usage(usage: object) -> object:
    """The Messages API's usage under chat's names: its prompt is ``input_tokens`` plus the tokens read from and
    written to its cache; the cache's reads are the cached prompt tokens."""
    if not isinstance(usage, dict):
        return usage

    def whole(key: str) -> int:
        v = usage.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    out: dict[str, Any] = {}
    if "input_tokens" in usage:
        out["prompt_tokens"] = (
            whole("input_tokens") + whole("cache_read_input_tokens") + whole("cache_creation_input_tokens")
        )
        if "cache_read_input_tokens" in usage:
            out["prompt_tokens_details"] = {"cached_tokens": whole("cache_read_input_tokens")}
    if "output_tokens" in usage:
        out["completion_tokens"] = usage["output_tokens"]
    return out


RESPONSE_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
RESPONSE_REASONING = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})


def _responses_usage(usage: object) -> object:
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


def _end_stream(rec: RequestRecord, parser: SSEParser, last: float | None, content_chunks: int, usage: object) -> None:
    """The stream closed: was it whole? Then E2EL, and tokens from usage (or our own count)."""
    for payload in parser.flush():
        if payload != b"[DONE]":
            rec.fail(Failure.PROTOCOL, "stream ended inside an event")
            return
    rec.chunks = content_chunks
    if last is None:
        rec.fail(Failure.PROTOCOL, "stream had no choices chunk")
        return
    rec.e2el = last - rec.start
    _apply_usage(rec, usage, content_chunks + rec.reasoning_chunks, len(rec.itl) + 1)
    if not rec.finish_reason:
        rec.fail(Failure.TRUNCATED, "stream ended without finish_reason")


def _finish_pooling(msg: object, t: float, rec: RequestRecord) -> None:
    """An embeddings (``data``) or rerank (``results``, or TEI's bare list) answer: its latency, prompt tokens,
    and one vector or score per input sent, or it failed."""
    rec.e2el = t - rec.start
    body = msg if isinstance(msg, dict) else {}
    items = body.get("data") if "data" in body else body.get("results", msg if isinstance(msg, list) else None)
    what = "embeddings" if "data" in body else "rerank results"
    if not isinstance(items, list):
        rec.fail(Failure.PROTOCOL, "the answer has no embeddings (data) or rerank results")
        return
    if len(items) != rec.inputs:
        rec.fail(Failure.PROTOCOL, f"{len(items)} {what} for {rec.inputs} inputs")
        return
    good = (
        (isinstance(x, dict) and isinstance(x.get("embedding"), (list, str)) and len(x["embedding"]) > 0)
        if what == "embeddings"
        else (isinstance(x, dict) and isinstance(x.get("relevance_score", x.get("score")), (int, float)))
        for x in items
    )
    if not all(good):
        rec.fail(Failure.PROTOCOL, f"{what} without a vector or score")
        return
    rec.finish_reason = "stop"
    usage = body.get("usage")
    prompt = _count(usage.get("prompt_tokens", usage.get("total_tokens"))) if isinstance(usage, dict) else None
    if prompt:
        rec.prompt_tokens = prompt


def _plain_tool_calls(message: object, rec: RequestRecord) -> None:
    """A whole answer's ``message.tool_calls``: kept for the arguments' check."""
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if isinstance(calls, list):
        for i, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                rec.tool_calls[i] = [str(fn.get("arguments") or "")]


def _finish_response(msg: dict[str, Any], t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
    """A whole (not streamed) Responses API answer: its output text, status and usage."""
    output = msg.get("output")
    if not isinstance(output, list):
        rec.fail(Failure.PROTOCOL, "response had no output list")
        return
    text = "".join(
        str(part.get("text", ""))
        for item in output
        if isinstance(item, dict) and isinstance(item.get("content"), list)
        for part in item["content"]
        if isinstance(part, dict) and part.get("type") == "output_text"
    )
    details = msg.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    finish = "length" if reason == "max_output_tokens" else str(reason or msg.get("status") or "")
    _whole_answer(rec, t, text, finish, _responses_usage(msg.get("usage")), counter)


def _whole_answer(rec: RequestRecord, t: float, text: str, finish: str, usage: object, counter: ChunkCounter) -> None:
    """A whole (not streamed) answer arrived at ``t``: every latency is its latency, one chunk, tokens from usage
    (or its words)."""
    rec.ttft = rec.ttfc = rec.e2el = t - rec.start
    rec.finish_reason = finish
    rec.text.append(text)
    _apply_usage(rec, usage, len(text.split()), 0)
    counter.chunks += rec.output_tokens
    rec.chunks = 1


def _finish_plain(raw: bytes, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
    try:
        msg = _loads(raw)
    except ValueError:
        rec.fail(Failure.PROTOCOL, f"malformed JSON response: {raw[:80]!r}")
        return
    if rec.inputs:
        _finish_pooling(msg, t, rec)
        return
    if isinstance(msg, dict) and "output" in msg and "choices" not in msg:
        _finish_response(msg, t, rec, counter)
        return
    if isinstance(msg, dict) and msg.get("type") == "message" and isinstance(msg.get("content"), list):
        text = "".join(
            str(part.get("text", ""))
            for part in msg["content"]
            if isinstance(part, dict) and part.get("type") == "text"
        )
        stop = str(msg.get("stop_reason") or "")
        _whole_answer(rec, t, text, MESSAGE_STOPS.get(stop, stop), _messages_usage(msg.get("usage")), counter)
        return
    choices = msg.get("choices") if isinstance(msg, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        rec.fail(Failure.PROTOCOL, "response had no choices")
        return
    message = choice.get("message")
    _plain_tool_calls(message, rec)
    text = (message.get("content") if isinstance(message, dict) else None) or choice.get("text") or ""
    usage, timings, metrics = msg.get("usage"), msg.get("timings"), msg.get("metrics")
    if isinstance(usage, dict) and isinstance(timings, dict):
        usage = {**usage, "timings": timings}
    if isinstance(usage, dict) and isinstance(metrics, dict):
        usage = {**usage, "metrics": metrics}
    _whole_answer(rec, t, str(text), str(choice.get("finish_reason") or ""), usage, counter)


MAX_PLAUSIBLE_TOKENS = 100_000_000


def _count(value: object) -> int | None:
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
    n = _count(figure)
    if n is None:
        return "not a whole number of tokens"
    if n * 2 < content_chunks:
        return f"fewer than the {content_chunks} content chunks received"
    ceiling = max(2 * max_tokens, 8 * messages) + 16 if (max_tokens or messages) else None
    if ceiling is not None and n > ceiling:
        return f"far beyond max_tokens={max_tokens}" if max_tokens else "far beyond the chunks received"
    return ""


def _apply_usage(rec: RequestRecord, usage: object, fallback_tokens: int, messages: int) -> None:
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
        rec.output_tokens = _count(figure) or 0
    if isinstance(usage, dict):
        rec.cached_tokens = cached_tokens(usage)
        rec.server = ServerTimings.of(usage.get("timings")) or ServerTimings.of_vllm(usage.get("metrics"))
    if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
        prompt = _count(usage["prompt_tokens"])
        if prompt:
            rec.prompt_tokens = prompt
        elif prompt is None:
            note = f"prompt_tokens={usage['prompt_tokens']!r}"[:80] + ": not a whole number of tokens"
            rec.usage_rejected = redact("; ".join(x for x in (rec.usage_rejected, note) if x))


def cached_tokens(usage: dict[str, Any]) -> int | None:
    """Prompt tokens the server took from its prefix cache, where it says: OpenAI's and vLLM's
    ``usage.prompt_tokens_details.cached_tokens``, or llama.cpp's ``timings.cache_n``."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        return _count(details["cached_tokens"])
    timings = usage.get("timings")
    if isinstance(timings, dict) and timings.get("cache_n") is not None:
        return _count(timings["cache_n"])
    return None


def curl_command(target: Target, body: bytes, key_var: str | None) -> str:
    """A shell command that sends ``body`` again as it was sent; the key as ``$VAR``, never its value."""
    import shlex

    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    endpoint = "chat" if isinstance(payload, dict) and "messages" in payload else "completions"
    parts = ["curl", "-sS"]
    if isinstance(payload, dict) and payload.get("stream"):
        parts.append("-N")
    parts += [shlex.quote(target.url(endpoint)), "-H", shlex.quote("Content-Type: application/json")]
    if target.api_key:
        parts += ["-H", f'"Authorization: Bearer ${key_var or "API_KEY"}"']
    elif target.basic_auth:
        parts += ["-u", f'"{target.basic_auth[0]}:$PASSWORD"']
    parts += ["-d", shlex.quote(body.decode(errors="replace"))]
    return redact(" ".join(parts))


# ---- one-off requests (not the hot path) -------------------------------------------------------------


async def one_request(
    client: Client, target: Target, shape: RequestShape, prompt: str, max_tokens: int
) -> RequestRecord:
    """Send and measure a single request outside the worker pool (checks, calibration)."""
    rec = RequestRecord(request_id="probe", segment=-1, worker=-1, start=0.0, wall_start=time.time())
    rec.max_tokens = 0 if shape.pooling else max_tokens
    rec.inputs = shape.inputs if shape.pooling else 0
    body = build_body(shape, target.model, prompt, max_tokens)
    rec.start = _now()
    url = target.url(shape.endpoint)
    headers = target.headers(shape.endpoint)
    await run_request(client, url, headers, body, shape.streamed, rec, ChunkCounter(), shape.timeout)
    rec.end = _now()
    rec.keep_text()
    return rec


__all__ = ["Failure", "Status", "Target"]
