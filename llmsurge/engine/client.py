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
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Union

from msgspec.json import Decoder as _JsonDecoder
from msgspec.json import Encoder as _JsonEncoder

from llmsurge.engine.endpoints import DEFAULT, ENDPOINTS, Endpoint
from llmsurge.engine.endpoints.base import (
    ChunkCounter,
    Prompt,
    apply_usage,
    cached_tokens,
    error_message,
    usage_problem,
)
from llmsurge.engine.endpoints.chat import tool_call_problem
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
from llmsurge.metrics.records import TEXT_FOLD, Failure, RequestRecord, Status, http_kind
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
"""An event's JSON, from its UTF-8 bytes: msgspec, ~0.6x the CPU of the client's whole per-event path with the
standard library's decoder, orjson ~0.8x (bench/RESULTS.md, "JSON decoders"); what it refuses and the standard
library reads is read by the latter (``_Stream.feed``)."""
_encode_json = _JsonEncoder().encode
"""A request body's JSON: msgspec's, compact UTF-8, at ~0.1x the standard library's CPU (a body is encoded once per
request: at the request-rate ceiling, 2-4% of a worker's CPU with the standard library)."""


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
    return _encode_json(body)


def build_body(shape: RequestShape, model: str, prompt: Prompt, max_tokens: int) -> bytes:
    """The JSON body of one request, as its endpoint builds it (``prompt``: a user message's text, or whole chat
    messages); a generation adds ``ignore_eos`` and asks for its stream."""
    ep = ENDPOINTS[shape.endpoint]
    body = ep.body(shape, model, prompt, max_tokens)
    if not ep.pooling:
        if shape.ignore_eos:
            body["ignore_eos"] = True
        if shape.stream:
            ep.streamed(body)
    return _encode_json(body)


def loopback_source(hosts: tuple[str, ...], worker_id: int, workers: int) -> str | None:
    """The local address a worker's connections come from: against IPv4 loopback servers (every one of ``hosts``)
    with several workers, each its own ``127.0.0.N`` — every source address has its own ~28,000 ephemeral ports to
    one server port, so tens of thousands of streams from one machine do not run out of them; None otherwise (the
    OS picks)."""
    if workers < 2 or not hosts or not all(h.startswith("127.") for h in hosts):
        return None
    return f"127.0.0.{2 + worker_id % 250}"


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
    endpoint: Endpoint | None = None,
) -> None:
    """Send one request and measure it into ``rec`` (``rec.start`` must be set just before the call); its answer is
    read as ``endpoint`` reads it (chat's, which reads completions too, when None).

    Never raises for server or transport faults: they become ``rec.status = failed`` with a kind. A request
    that died on a reused pooled connection before any response byte arrived (it provably went unread) is re-sent
    once, on ``resend_client`` (a client that opens a fresh connection per request) when given; nothing else is
    ever sent twice. The answer's phases are kept in ``rec``: the connection (``reused``, ``connect``, ``tls``) and
    the time to its headers. Cancellation propagates so the caller can record it.
    """
    ep = endpoint or ENDPOINTS[DEFAULT]
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
                    said_done = await _answered(r.status, r.headers, r, stream, rec, counter, ep)
                    if said_done:
                        await r.settle(SETTLE_S)
                finally:
                    r.release(linger=said_done)
            else:
                assert not isinstance(client, WirePool)
                async with client.stream("POST", url, content=body, headers=headers) as resp:
                    got_response = True
                    await _answered(resp.status_code, resp.headers, resp.aiter_raw(), stream, rec, counter, ep)
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
    endpoint: Endpoint,
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
                parsed = _Stream(rec, counter, endpoint)
                await raw.pipe(parsed.feed)
                return parsed.finish()
            return await _parse_stream(chunks, rec, counter, endpoint)
        body = await _read_capped(chunks, PLAIN_BODY_CAP, what="answer")
        _finish_plain(body, _now(), rec, counter, endpoint)
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
    endpoint: Endpoint | None = None,
) -> None:
    """:func:`execute` with a hard deadline: ``rec`` has ended within ``timeout`` seconds of the call, whatever
    the server does (streams forever, never sends headers, never closes). A timed-out request is cancelled and
    its clean-up given :data:`ABANDON_AFTER_S`; a clean-up that would wait on the server is left behind."""
    if _wire(client) is not None:  # the load's own client: the deadline is a timer on this task, no second task
        deadline = _Deadline()
        timer = asyncio.get_running_loop().call_later(timeout, deadline.expire)
        try:
            await execute(client, url, headers, body, stream, rec, counter, resend_client, endpoint)
        except asyncio.CancelledError:
            if not deadline.expired:
                raise  # the run is stopping: the caller records it
            uncancel = getattr(deadline.task, "uncancel", None)  # Python 3.11+: the cancellation was ours, handled
            if uncancel is not None:
                uncancel()
            rec.fail(Failure.TIMEOUT, f"no complete answer within {timeout:g}s")
        finally:
            timer.cancel()
        return
    task = asyncio.ensure_future(execute(client, url, headers, body, stream, rec, counter, resend_client, endpoint))
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


class _Deadline:
    """A request's deadline on its own task: :meth:`expire` cancels the task and says so. One small object per
    request held in flight (a closure and its cells cost twice its memory at 20,000 streams)."""

    __slots__ = ("expired", "task")

    def __init__(self) -> None:
        self.task = asyncio.current_task()
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        if self.task is not None:
            self.task.cancel()


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
        return error_message(_loads(raw))
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


async def _parse_stream(
    chunks: AsyncIterator[bytes], rec: RequestRecord, counter: ChunkCounter, endpoint: Endpoint | None = None
) -> bool:
    """An event stream read from ``chunks`` (a pull: each chunk awaited); True when it ended by its own ``[DONE]``."""
    stream = _Stream(rec, counter, endpoint)
    async for raw in chunks:
        if stream.feed(raw):
            break
    return stream.finish()


class _Stream:
    """One answer's event stream, measured into its record as bytes arrive: :meth:`feed` each read (inside the read
    itself on the load's own client: ``WireResponse.pipe``), then :meth:`finish`. The SSE framing, ``[DONE]``,
    error events and JSON are read here; what an event means is its endpoint's (``Endpoint.event``)."""

    __slots__ = (
        "content_chunks",
        "counter",
        "ended",
        "failed",
        "fold",
        "last",
        "parser",
        "raw_usage",
        "read",
        "rec",
        "saw_choices",
        "usage",
    )

    def __init__(self, rec: RequestRecord, counter: ChunkCounter, endpoint: Endpoint | None = None) -> None:
        self.parser = SSEParser()
        self.rec = rec
        self.counter = counter
        self.read = (endpoint or ENDPOINTS[DEFAULT]).event
        self.last = 0.0
        self.content_chunks = 0
        self.usage: Any = None
        self.raw_usage: dict[str, object] | None = None  # an endpoint's own usage, merged over its events
        self.saw_choices = False
        self.fold = sys.maxsize if rec.text_whole else TEXT_FOLD  # pieces of text kept before they are folded
        self.ended = False  # [DONE] came
        self.failed = False

    def finish(self) -> bool:
        """The stream is over (its end, [DONE], or a failure already recorded): was it whole? True when it ended by
        its own ``[DONE]`` (its framing may end later, or never)."""
        if self.failed:
            return False
        rest = [] if self.ended else self.parser.flush()  # [DONE] is the last event: what follows is not the answer's
        _end_stream(self.rec, rest, self.last if self.saw_choices else None, self.content_chunks, self.usage)
        return self.ended

    def fail(self, kind: Failure, message: str) -> bool:
        """Fail the request: no more bytes are wanted."""
        self.rec.fail(kind, message)
        self.failed = True
        return True

    def feed(self, raw: bytes) -> bool:
        """One read's bytes, stamped now; True when no more are wanted ([DONE], or the answer failed). The hot path:
        once per read, mostly one event each (bench/RESULTS.md)."""
        t = _now()
        try:
            payloads = self.parser.feed(raw)
        except SSEEventTooLarge as exc:
            return self.fail(Failure.PROTOCOL, str(exc))
        for payload in payloads:
            if payload == b"[DONE]":
                self.ended = True  # the answer's end, whether or not the body ends (its connection is then dropped)
                continue
            if type(payload) is ErrorEvent:
                return self.fail(Failure.STREAM_ERROR, _event_error(payload))
            try:
                msg = _fast_json(payload)
            except ValueError:
                try:  # what msgspec refuses and the standard library reads (NaN, 1e400: a server's odd usage)
                    msg = _text_json(payload.decode())
                except ValueError:
                    return self.fail(Failure.PROTOCOL, f"malformed SSE data: {payload[:80]!r}")
            if type(msg) is not dict:
                return self.fail(Failure.PROTOCOL, f"unexpected SSE data: {payload[:80]!r}")
            token = self.read(msg, self, t)
            if token is None:
                if self.failed:
                    return True
                continue
            text, reason, thinking = token
            # One token event, whichever API sent it: counted, timed, its text kept.
            self.counter.chunks += 1
            rec = self.rec
            if self.saw_choices:
                rec.itl.append(t - self.last)
            else:
                self.saw_choices = True
                rec.ttft = t - rec.start
            self.last = t
            if thinking:
                rec.reasoning_chunks += 1
                if rec.ttfr is None:
                    rec.ttfr = t - rec.start
            if text:
                self.content_chunks += 1
                texts = rec.text
                texts.append(text)
                if rec.ttfc is None:
                    rec.ttfc = t - rec.start
                elif len(texts) >= self.fold:
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


def _end_stream(rec: RequestRecord, rest: list[bytes], last: float | None, content_chunks: int, usage: object) -> None:
    """The stream closed (``rest``: the events its last bytes held without the closing blank line): was it whole?
    Then E2EL, and tokens from usage (or our own count)."""
    for payload in rest:
        if payload != b"[DONE]":
            rec.fail(Failure.PROTOCOL, "stream ended inside an event")
            return
    rec.chunks = content_chunks
    if last is None:
        rec.fail(Failure.PROTOCOL, "stream had no choices chunk")
        return
    rec.e2el = last - rec.start
    apply_usage(rec, usage, content_chunks + rec.reasoning_chunks, len(rec.itl) + 1)
    if not rec.finish_reason:
        rec.fail(Failure.TRUNCATED, "stream ended without finish_reason")


def _finish_plain(raw: bytes, t: float, rec: RequestRecord, counter: ChunkCounter, endpoint: Endpoint) -> None:
    """A whole answer's body, read by its endpoint."""
    try:
        msg = _loads(raw)
    except ValueError:
        rec.fail(Failure.PROTOCOL, f"malformed JSON response: {raw[:80]!r}")
        return
    endpoint.whole(msg, t, rec, counter)


def curl_command(target: Target, body: bytes, key_var: str | None, endpoint: str = DEFAULT) -> str:
    """A shell command that sends ``body`` again as it was sent to ``endpoint``; the key as ``$VAR``, never its
    value."""
    import shlex

    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    ep = ENDPOINTS.get(endpoint, ENDPOINTS[DEFAULT])
    parts = ["curl", "-sS"]
    if isinstance(payload, dict) and payload.get("stream"):
        parts.append("-N")
    parts += [shlex.quote(target.url(ep.path)), "-H", shlex.quote("Content-Type: application/json")]
    key = f"${key_var or 'API_KEY'}"
    for name, value in ep.headers(key if target.api_key else None).items():
        parts += ["-H", f'"{name}: {value}"']
    if target.api_key:
        parts += ["-H", f'"Authorization: Bearer {key}"']
    elif target.basic_auth:
        parts += ["-u", f'"{target.basic_auth[0]}:$PASSWORD"']
    parts += ["-d", shlex.quote(body.decode(errors="replace"))]
    return redact(" ".join(parts))


# ---- one-off requests (not the hot path) -------------------------------------------------------------


async def one_request(
    client: Client, target: Target, shape: RequestShape, prompt: str, max_tokens: int
) -> RequestRecord:
    """Send and measure a single request outside the worker pool (checks, calibration)."""
    ep = ENDPOINTS[shape.endpoint]
    rec = RequestRecord(request_id="probe", segment=-1, worker=-1, start=0.0, wall_start=time.time())
    rec.max_tokens = 0 if ep.pooling else max_tokens
    rec.inputs = ep.inputs(shape) if ep.pooling else 0
    body = build_body(shape, target.model, prompt, max_tokens)
    rec.start = _now()
    url = target.url(ep.path)
    headers = {**target.headers(), **ep.headers(target.api_key)}
    await run_request(client, url, headers, body, shape.streamed, rec, ChunkCounter(), shape.timeout, endpoint=ep)
    rec.end = _now()
    rec.keep_text()
    return rec


__all__ = ["ChunkCounter", "Failure", "Status", "Target", "cached_tokens", "tool_call_problem", "usage_problem"]
