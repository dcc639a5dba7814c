"""Where requests go, and the one way to ask a server a side question (probes, telemetry scrapes).

Every probe has a whole-request deadline and a size cap, whatever the server does: httpx's timeouts are per read,
so an answer that keeps trickling (a byte a second, forever) or a 50 MB ``/metrics`` would otherwise hold a run's
start-up for as long as the server likes. :func:`fetch` and :func:`fetch_sync` return an :class:`Answer` that says
what came back and, when the body is missing or cut, why — so the caller can say which probe gave up.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmsurge.redaction import redact, register_basic_auth, register_secret

PROBE_DEADLINE_S = 5.0
"""Whole-request deadline of a start-up probe (``/v1/models``, ``/props``, ``/metrics``, ``/health``)."""
PROBE_CAP = 4 << 20
"""Bytes a probe reads at most (a model list, a props document)."""
if TYPE_CHECKING:  # imported where used: a worker process never loads httpx (~0.15 s)
    import httpx

METRICS_CAP = 16 << 20
"""Bytes a ``/metrics`` scrape reads at most (a real vLLM's is ~0.1–1 MB; a larger one is not a server's)."""


CA_BUNDLE_ENV = "LLMSURGE_CA_BUNDLE"
"""``--ca-bundle FILE``, handed to every process of the run (workers are spawned: they read their environment)."""
INSECURE_ENV = "LLMSURGE_INSECURE"
"""``--insecure``: certificates are not verified (said on the status line and in summary.json)."""


def configure_tls(ca_bundle: str | None, insecure: bool) -> None:
    """``--ca-bundle`` and ``--insecure`` for this process and the workers it starts (``ValueError`` naming the
    fix for a bundle that cannot be loaded)."""
    import os

    if ca_bundle:
        try:
            ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--ca-bundle {ca_bundle}: not a readable PEM file of CA certificates ({exc})") from None
        os.environ[CA_BUNDLE_ENV] = ca_bundle
    if insecure:
        os.environ[INSECURE_ENV] = "1"
    _verified_context.cache_clear()


def insecure() -> bool:
    """Whether TLS certificates go unverified in this run (``--insecure``)."""
    import os

    return os.environ.get(INSECURE_ENV) == "1"


@functools.cache
def _verified_context() -> ssl.SSLContext:
    # The system's trust store (and SSL_CERT_FILE / SSL_CERT_DIR, read by OpenSSL), as aiohttp's own default
    # context: an internal CA installed on the host is trusted by probes, discovery and the load alike. With
    # --ca-bundle, that file's CAs instead (as curl's --cacert); with --insecure, nothing is verified.
    import os

    if insecure():
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=os.environ.get(CA_BUNDLE_ENV) or None)


def tls_context(urls: Iterable[str] = ()) -> ssl.SSLContext:
    """What a client of ``urls`` verifies TLS connections with. Loading a CA bundle costs ~50 ms, and httpx loads
    one for every client it makes: a client of https URLs (or of URLs not known yet) gets this process's one verified
    context (the system's trust store, made on first use); a client of plain-http URLs only (the simulated server,
    a local vLLM) a bare one that loads nothing and is never used — it verifies against no certificate at all, so a
    redirect to https fails rather than trusting anything."""
    urls = list(urls)
    if not urls or any(not u.lower().startswith("http://") for u in urls):
        return _verified_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def without_endpoint(url: str) -> tuple[str, str]:
    """``http://h:8000/v1/chat/completions`` → (``http://h:8000``, ``/v1/chat/completions``): a URL pasted with an
    endpoint's path (anything under ``/v1/``) is its server's (the endpoint is ``--endpoint``'s); (the URL, '')
    unchanged otherwise."""
    bare = url.strip().rstrip("/")
    at = bare.rfind("/v1/")
    scheme = bare.find("://")
    if at > (scheme + 3 if scheme >= 0 else 0) and len(bare) > at + len("/v1/"):
        return bare[:at], bare[at:]
    return url, ""


def _parse_url(url: str) -> httpx.URL:
    """Parse a server URL; ``ValueError`` naming the fix when it cannot be one."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    url = without_endpoint(url)[0]
    if url.endswith("/v1"):
        url = url[:-3]
    hint = "give one like http://127.0.0.1:8000 (an IPv6 address in brackets: http://[::1]:8000)"
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{redact(url)!r} is not a server URL ({exc}): {hint}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{redact(url)!r} is not a server URL: {hint}")
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise ValueError(f"{redact(url)!r} has port {parsed.port}, which does not exist: use 1-65535")
    return parsed


def normalize_base_url(url: str) -> str:
    """``http://h:8000/v1/`` → ``http://h:8000``; a bare ``host:port`` gets ``http://``; credentials dropped."""
    return str(_parse_url(url).copy_with(username=None, password=None)).rstrip("/")


def url_credentials(url: str) -> tuple[str, str] | None:
    """The ``user:password`` of a URL (registered as secrets at once), or None."""
    parsed = _parse_url(url)
    if not parsed.username and not parsed.password:
        return None
    register_basic_auth(parsed.username, parsed.password)
    return parsed.username, parsed.password


@dataclass(frozen=True)
class Target:
    """Where requests go. ``api_key`` and ``basic_auth`` are secrets: never printed, logged or written."""

    base_url: str
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, model: str = "", api_key: str | None = None) -> Target:
        """A target from what the user typed: a URL that may carry ``user:password@`` for basic auth."""
        credentials = url_credentials(url)
        if credentials and api_key:
            raise ValueError(
                "the URL carries user:password and --api-key-env gives a key: both want the Authorization"
                " header, so keep one"
            )
        register_secret(api_key)
        return cls(normalize_base_url(url), model, api_key, credentials)

    def headers(self) -> dict[str, str]:
        """Request headers, with the bearer token (or basic auth) when one was given (an endpoint adds its own:
        ``Endpoint.headers``)."""
        h = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream, application/json",
            "Accept-Encoding": "identity",  # the hot path reads raw bytes; a body encoded anyway is decoded
        }
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        elif self.basic_auth:
            token = base64.b64encode(f"{self.basic_auth[0]}:{self.basic_auth[1]}".encode()).decode()
            h["Authorization"] = f"Basic {token}"
        return h

    def register_secrets(self) -> None:
        """Register this target's secrets for redaction (in each process that holds them)."""
        register_secret(self.api_key)
        if self.basic_auth:
            register_basic_auth(*self.basic_auth)

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server (an endpoint's: ``Endpoint.path``)."""
        return self.base_url + path


@dataclass(frozen=True)
class Answer:
    """What a probe got: the status (None: no answer), the body read, and why it is missing or cut ('' if whole)."""

    url: str
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    seconds: float = 0.0
    cause: str = ""
    """When nothing came back, what kind of failure: ``refused``, ``tls``, ``dns``, ``timeout`` or ``other``."""

    @property
    def ok(self) -> bool:
        """A 2xx answer with its whole body."""
        return self.status is not None and 200 <= self.status < 300 and not self.problem

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.body)

    def why(self) -> str:
        """One line: why this answer cannot be used ('' when it can)."""
        if self.problem:
            return self.problem
        if self.status is None or not 200 <= self.status < 300:
            return f"HTTP {self.status}"
        return ""


class _TooLarge(Exception):
    pass


def _gave_up(deadline: float, status: int | None, got: int) -> str:
    if status is None:
        return f"no answer within {deadline:g}s"
    return f"gave up after {deadline:g}s: the answer was still coming ({got:,} bytes so far)"


def _too_large(cap: int) -> str:
    return f"larger than {cap / (1 << 20):g} MiB: not read"


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    deadline: float = PROBE_DEADLINE_S,
    cap: int = PROBE_CAP,
    read_body: bool = True,
    method: str = "GET",
) -> Answer:
    """``GET url`` (or ``method``: a hook's ``POST``) within ``deadline`` seconds in all (headers and body),
    reading at most ``cap`` bytes (none when not ``read_body``: is it up?). Never raises for what the server or the
    network does: the :class:`Answer` says it."""
    t0 = time.monotonic()
    status: int | None = None
    got: dict[str, str] = {}
    body = bytearray()

    async def read() -> None:
        nonlocal status
        async with client.stream(method, url, headers=headers, timeout=deadline) as resp:
            status = resp.status_code
            got.update(resp.headers)
            if not read_body:
                return
            async for chunk in resp.aiter_bytes():  # decoded: a gzip answer is read as its text
                body.extend(chunk)
                if len(body) > cap:
                    raise _TooLarge

    import httpx

    problem = ""
    try:
        await asyncio.wait_for(read(), deadline)
    except asyncio.TimeoutError:
        problem = _gave_up(deadline, status, len(body))
    except _TooLarge:
        problem = _too_large(cap)
    except (httpx.HTTPError, OSError) as exc:
        problem = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return Answer(url, status, b"", got, problem, time.monotonic() - t0, failure_kind(exc))
    return Answer(url, status, bytes(body) if not problem else b"", got, problem, time.monotonic() - t0)


def failure_kind(exc: BaseException) -> str:
    """What kind of failure a connection's exception is: ``tls`` (a certificate or handshake refused), ``dns``
    (the name does not resolve), ``refused`` (nothing listens: not up yet), ``timeout``, or ``other``."""
    import socket

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return "tls"
        if isinstance(seen, socket.gaierror):
            return "dns"
        if isinstance(seen, ConnectionRefusedError):
            return "refused"
        if isinstance(seen, (TimeoutError, asyncio.TimeoutError)):
            return "timeout"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return "tls"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "dns"
    if "Connection refused" in text or "Connect call failed" in text:
        return "refused"
    return "other"


def fetch_sync(client: httpx.Client, url: str, deadline: float = PROBE_DEADLINE_S, cap: int = PROBE_CAP) -> Answer:
    """:func:`fetch` for a thread (telemetry samplers). Each read waits at most half the deadline and the whole
    is checked between reads, so it ends within 1.5 × ``deadline``."""
    t0 = time.monotonic()
    status: int | None = None
    got: dict[str, str] = {}
    body = bytearray()
    problem = ""
    import httpx

    try:
        with client.stream("GET", url, timeout=httpx.Timeout(deadline, read=deadline / 2)) as resp:
            status = resp.status_code
            got.update(resp.headers)
            for chunk in resp.iter_bytes():
                body.extend(chunk)
                if len(body) > cap:
                    problem = _too_large(cap)
                    break
                if time.monotonic() - t0 > deadline:
                    problem = _gave_up(deadline, status, len(body))
                    break
    except httpx.TimeoutException:
        problem = _gave_up(deadline, status, len(body))
    except (httpx.HTTPError, OSError) as exc:
        problem = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return Answer(url, status, b"", got, problem, time.monotonic() - t0, failure_kind(exc))
    return Answer(url, status, bytes(body) if not problem else b"", got, problem, time.monotonic() - t0)
