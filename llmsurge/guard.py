"""Who may ask: the checks every listener of ours makes before it answers (the live API, the browser view).

Loopback is not a trust boundary. A web page the user has open elsewhere can send "simple" cross-site requests to
127.0.0.1 (a POST with ``Content-Type: text/plain`` needs no CORS preflight), and by DNS rebinding it can even read
the answers, under a foreign name that resolves to 127.0.0.1. So a listener answers only requests that name it as
they should:

- ``Host`` is one of the listener's own names (``127.0.0.1``, ``localhost`` or ``[::1]`` with its port when it binds
  loopback; the address it was given otherwise): a foreign name is DNS rebinding (421);
- an ``Origin``, when sent, is the listener's own (``http://`` one of those names); ``Sec-Fetch-Site: cross-site``
  is refused too (a browser's word that another site sent it) (403);
- a state-changing request carries ``Content-Type: application/json``, which no page can send cross-site without a
  preflight we never grant (403).

A listener bound to every address (``0.0.0.0``, ``::``) cannot know its names; there a token is always required
and the Host is not checked. Plain functions over header values, so aiohttp handlers and tests share them.
"""

from __future__ import annotations

import hmac
import secrets

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
WILDCARD = ("0.0.0.0", "::", "[::]", "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as given to a listener) is this machine's loopback."""
    return host in LOOPBACK or host.startswith("127.")


def own_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` values a listener on ``host:port`` answers to; None where it binds every address."""
    if host in WILDCARD:
        return None
    names = {*LOOPBACK_NAMES, host} if is_loopback(host) else {host}
    return frozenset(f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}" for n in names)


def refusal(
    hosts: frozenset[str] | None, host: str | None, origin: str | None, fetch_site: str | None
) -> tuple[int, str] | None:
    """Why a request with these headers is refused, as (HTTP status, one line); None when it may be answered."""
    if hosts is not None and (host or "").lower() not in hosts:
        return 421, f"Host {host!r} is not this server's name (DNS rebinding?): ask {sorted(hosts)[0]}"
    if origin is not None:
        if hosts is None:
            if origin.lower() == "null" or "://" not in origin:
                return 403, f"a request from the web page at {origin!r} is refused: only tools may ask"
            if host and origin.lower().split("://", 1)[1] != host.lower():
                return 403, f"a request from the web page at {origin!r} is refused: only this server's own page"
        elif origin.lower() not in {f"http://{h}" for h in hosts}:
            return 403, f"a request from the web page at {origin!r} is refused: only this server's own page may ask"
    if (fetch_site or "").lower() == "cross-site":
        return 403, "a request sent by another web site is refused (Sec-Fetch-Site: cross-site)"
    return None


def json_refusal(content_type: str | None) -> str:
    """Why a state-changing request's body type is refused ('' when it is JSON)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return f"send the body as Content-Type: application/json (not {media or 'none'!r})"
    return ""


def new_token() -> str:
    """A random token for a listener (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def same_token(given: str | None, token: str) -> bool:
    """Whether ``given`` is ``token``, compared in constant time (any text: a non-ASCII header is simply wrong)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))
