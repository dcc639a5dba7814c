"""The OpenAI-compatible client: payloads, one streaming request measured into a RequestRecord, discovery.

The hot path is :func:`execute`: it reads raw bytes, stamps them with ``time.monotonic()`` as they arrive,
splits SSE events with the one :class:`~llmsurge.engine.sse.SSEParser` and decodes each JSON payload once.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmsurge.engine.scenario import RequestShape
from llmsurge.engine.sse import SSEParser
from llmsurge.metrics import records as R
from llmsurge.metrics.records import RequestRecord

try:  # The aiohttp transport reads ~3x more token events per core than httpx's default one.
    import aiohttp
    from httpx_aiohttp import AiohttpTransport
except ImportError:  # pragma: no cover - exercised only without the optional transport
    aiohttp = None  # type: ignore[assignment]
    AiohttpTransport = None  # type: ignore[assignment,misc]

_loads = json.loads
_now = time.monotonic


def normalize_base_url(url: str) -> str:
    """``http://h:8000/v1/`` → ``http://h:8000``; a bare ``host:port`` gets ``http://``."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[:-3]
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{url!r} is not a server URL ({exc}): give one like http://127.0.0.1:8000") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{url!r} is not a server URL: give one like http://127.0.0.1:8000")
    return url


@dataclass(frozen=True)
class Target:
    """Where requests go. ``api_key`` is a secret: it is never printed, logged or written."""

    base_url: str
    model: str = ""
    api_key: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """Request headers, with the bearer token when a key was given."""
        h = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def url(self, endpoint: str) -> str:
        """The URL of ``chat`` or ``completions``."""
        path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
        return self.base_url + path


def build_body(shape: RequestShape, model: str, prompt: str, max_tokens: int) -> bytes:
    """The JSON body of one request."""
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "temperature": shape.temperature}
    if shape.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if shape.ignore_eos:
        body["ignore_eos"] = True
    if shape.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def make_client(limit: int = 0, timeout: float | None = None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the aiohttp transport (unbounded connection pool), if installed."""
    t = httpx.Timeout(timeout) if timeout else httpx.Timeout(None)
    if AiohttpTransport is not None:

        def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False))

        return httpx.AsyncClient(transport=AiohttpTransport(client=session), timeout=t)
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=limit or None), timeout=t)


class ChunkCounter:
    """Counts ``choices`` messages as they arrive, so live token rates include unfinished streams.

    With ``delays`` set (a list), each chunk stamped by the simulated server (``llmsurge_sent``, its
    ``time.monotonic()`` at send) adds how late we read it: the client's own timing error, for benchmarks.
    """

    __slots__ = ("chunks", "delays")

    def __init__(self, measure_delays: bool = False) -> None:
        self.chunks = 0
        self.delays: list[float] | None = [] if measure_delays else None


def classify_error(exc: BaseException, got_response: bool) -> str:
    """The failure kind of a transport exception (looks through httpx's wrapping at the aiohttp cause)."""
    cause = exc.__cause__ or exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or isinstance(cause, asyncio.TimeoutError):
        return R.TIMEOUT
    if isinstance(exc, httpx.TimeoutException) and not (
        aiohttp is not None and isinstance(cause, aiohttp.ClientConnectionError)
    ):
        return R.TIMEOUT
    if aiohttp is not None:
        if isinstance(cause, aiohttp.ClientConnectorError):
            return R.CONNECT
        if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            return R.RESET
    if isinstance(cause, ConnectionRefusedError) or isinstance(exc, httpx.ConnectError):
        return R.CONNECT
    if isinstance(cause, ConnectionResetError):
        return R.RESET
    return R.RESET if got_response else R.CONNECT


def _error_message(payload: Any) -> str:
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err if err is not None else payload)[:300]


def _stale_connection(exc: BaseException) -> bool:
    """A pooled keep-alive connection the server had already closed (llama.cpp closes after a few requests):
    the request never reached the server, so one retry on a fresh connection measures the server, not the pool."""
    cause = exc.__cause__ or exc
    if aiohttp is not None and isinstance(cause, aiohttp.ServerDisconnectedError):
        return True
    if isinstance(cause, (BrokenPipeError, ConnectionResetError)):
        return True
    return "Can not write request body" in str(exc)


async def execute(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    rec: RequestRecord,
    counter: ChunkCounter,
) -> None:
    """Send one request and measure it into ``rec`` (``rec.start`` must be set just before the call).

    Never raises for server or transport faults: they become ``rec.status = failed`` with a kind.
    Cancellation (timeouts, stop) propagates so the caller can record it.
    """
    for attempt in range(2):
        got_response = False
        try:
            async with client.stream("POST", url, content=body, headers=headers) as resp:
                got_response = True
                status = resp.status_code
                if status < 200 or status >= 300:
                    text = (await resp.aread())[:2000]
                    msg = text.decode(errors="replace")
                    try:
                        msg = _error_message(_loads(text))
                    except ValueError:
                        pass
                    rec.fail(R.http_kind(status), msg, status)
                    return
                rec.http_status = status
                if stream:
                    await _read_stream(resp, rec, counter)
                else:
                    raw = await resp.aread()
                    t = _now()
                    _finish_plain(raw, t, rec, counter)
                return
        except (httpx.HTTPError, OSError) as exc:
            if attempt == 0 and not got_response and _stale_connection(exc):
                rec.retries += 1
                rec.start = _now()  # the failed write on a dead pooled connection is not the server's time
                continue
            rec.fail(classify_error(exc, got_response), f"{type(exc).__name__}: {exc}")
            return


def _raw_chunks(resp: httpx.Response) -> Any:
    """The response body as it arrives. On the aiohttp transport, read aiohttp's stream directly: httpx's
    wrapper generators cost ~15% of the worker's CPU per chunk at 1,024 streams (bench/RESULTS.md)."""
    inner = getattr(resp.stream, "_aiohttp_response", None)
    if inner is not None and aiohttp is not None:
        return inner.content.iter_any()
    return resp.aiter_raw()


async def _read_stream(resp: httpx.Response, rec: RequestRecord, counter: ChunkCounter) -> None:
    parser = SSEParser()
    st = rec.start
    last = 0.0
    itl = rec.itl
    content_chunks = 0
    usage: dict[str, Any] | None = None
    saw_choices = False
    async for raw in _raw_chunks(resp):
        t = _now()
        for payload in parser.feed(raw):
            if payload == b"[DONE]":
                continue
            try:
                msg = _loads(payload)
            except ValueError:
                rec.fail(R.PROTOCOL, f"malformed SSE data: {payload[:80]!r}")
                return
            if not isinstance(msg, dict):
                rec.fail(R.PROTOCOL, f"unexpected SSE data: {payload[:80]!r}")
                return
            choices = msg.get("choices")
            if choices:
                counter.chunks += 1
                if counter.delays is not None and "llmsurge_sent" in msg:
                    counter.delays.append(t - msg["llmsurge_sent"])
                if saw_choices:
                    itl.append(t - last)
                else:
                    saw_choices = True
                    rec.ttft = t - st
                last = t
                choice = choices[0]
                delta = choice.get("delta")
                text = delta.get("content") if delta is not None else choice.get("text")
                if text:
                    content_chunks += 1
                    if rec.ttfc is None:
                        rec.ttfc = t - st
                reason = choice.get("finish_reason")
                if reason:
                    rec.finish_reason = reason
            elif "error" in msg:
                rec.fail(R.STREAM_ERROR, _error_message(msg))
                return
            u = msg.get("usage")
            if u:
                usage = u
    for payload in parser.flush():
        if payload != b"[DONE]":
            rec.fail(R.PROTOCOL, "stream ended inside an event")
            return
    rec.chunks = content_chunks
    if not saw_choices:
        rec.fail(R.PROTOCOL, "stream had no choices chunk")
        return
    rec.e2el = last - st
    _apply_usage(rec, usage, content_chunks)
    if not rec.finish_reason:
        rec.fail(R.TRUNCATED, "stream ended without finish_reason")


def _finish_plain(raw: bytes, t: float, rec: RequestRecord, counter: ChunkCounter) -> None:
    try:
        msg = _loads(raw)
    except ValueError:
        rec.fail(R.PROTOCOL, f"malformed JSON response: {raw[:80]!r}")
        return
    choices = msg.get("choices") if isinstance(msg, dict) else None
    if not choices:
        rec.fail(R.PROTOCOL, "response had no choices")
        return
    rec.ttft = rec.ttfc = rec.e2el = t - rec.start
    choice = choices[0]
    rec.finish_reason = choice.get("finish_reason") or ""
    text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
    words = len(text.split())
    _apply_usage(rec, msg.get("usage"), words)
    counter.chunks += rec.output_tokens
    rec.chunks = 1


def _apply_usage(rec: RequestRecord, usage: dict[str, Any] | None, fallback_tokens: int) -> None:
    if usage and usage.get("completion_tokens") is not None:
        rec.output_tokens = int(usage["completion_tokens"])
        rec.prompt_tokens = int(usage.get("prompt_tokens") or rec.prompt_tokens)
    else:
        rec.output_tokens = fallback_tokens
        rec.tokens_estimated = True


# ---- discovery and one-off requests (not the hot path) ----------------------------------------------


class ServerError(Exception):
    """A server answered, but not as an OpenAI-compatible one should; the message names the fix."""


async def list_models(client: httpx.AsyncClient, target: Target) -> list[str]:
    """The ids from ``GET /v1/models``."""
    resp = await client.get(target.base_url + "/v1/models", headers=target.headers(), timeout=10.0)
    if resp.status_code == 401:
        raise ServerError(f"{target.base_url} answered 401 Unauthorized: pass the key with --api-key-env VAR")
    if resp.status_code >= 300:
        raise ServerError(
            f"GET /v1/models answered HTTP {resp.status_code}: is this an OpenAI-compatible server?"
            " (if it is, name the model with --model)"
        )
    try:
        data = resp.json()
        return [str(m["id"]) for m in data.get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServerError("GET /v1/models did not return an OpenAI model list") from exc


async def resolve_model(client: httpx.AsyncClient, target: Target) -> str:
    """The model to use: the one given if the server has it, else the server's first."""
    try:
        models = await list_models(client, target)
    except ServerError:
        if target.model:  # /v1/models is broken but the user named the model: trust them
            return target.model
        raise
    if target.model:
        if models and target.model not in models:
            raise ServerError(
                f"model {target.model!r} is not served by {target.base_url}; it serves: {', '.join(models)}"
                " (pass one with --model)"
            )
        return target.model
    if not models:
        raise ServerError(f"{target.base_url} lists no models: pass one with --model")
    return models[0]


async def wait_until_up(
    client: httpx.AsyncClient, target: Target, deadline: float | None, on_wait: Any = None
) -> float:
    """Poll ``/v1/models`` until the server answers; returns seconds waited. ``on_wait(elapsed)`` is told."""
    t0 = time.monotonic()
    while True:
        try:
            resp = await client.get(target.base_url + "/v1/models", headers=target.headers(), timeout=3.0)
            if resp.status_code < 500:
                return time.monotonic() - t0
            # Some servers fail /v1/models but are ready (transformers serve without a hub cache): ask /health.
            health = await client.get(target.base_url + "/health", headers=target.headers(), timeout=3.0)
            if health.status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        elapsed = time.monotonic() - t0
        if deadline is not None and elapsed > deadline:
            raise ServerError(f"{target.base_url} did not answer within {deadline:.0f}s: is the server running?")
        if on_wait is not None:
            on_wait(elapsed)
        await asyncio.sleep(0.5)


async def one_request(
    client: httpx.AsyncClient, target: Target, shape: RequestShape, prompt: str, max_tokens: int
) -> RequestRecord:
    """Send and measure a single request outside the worker pool (checks, calibration)."""
    rec = RequestRecord(request_id="probe", segment=-1, worker=-1, start=0.0, wall_start=time.time())
    body = build_body(shape, target.model, prompt, max_tokens)
    rec.start = _now()
    try:
        await asyncio.wait_for(
            execute(client, target.url(shape.endpoint), target.headers(), body, shape.stream, rec, ChunkCounter()),
            shape.timeout,
        )
    except asyncio.TimeoutError:
        rec.fail(R.TIMEOUT, f"no complete answer within {shape.timeout:g}s")
    rec.end = _now()
    return rec
