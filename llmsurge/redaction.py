"""Secrets never reach a file, a log or the screen; text from outside is never read as Rich markup.

Secrets (the API key's value, a URL's password) are registered once, where they are read, in every process that
holds them. Every sink — result files, the console, the TUI — passes text through :func:`redact`, whatever its
source: a server that echoes the ``Authorization`` header in an error body must not put the key on disk. The
forms a secret takes on the wire are registered with it (JSON-escaped, percent-encoded, and the base64 of
``user:password`` that basic auth sends).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from rich.markup import escape

MASK = "***"
_secrets: list[str] = []


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its JSON-escaped and percent-encoded forms) from everything shown or written."""
    if not value:
        return
    forms = {value, json.dumps(value)[1:-1], quote(value, safe="")}
    for form in forms:
        if form and form not in _secrets:
            _secrets.append(form)
    _secrets.sort(key=len, reverse=True)  # longer forms first, so a prefix never leaves a tail behind


def register_basic_auth(user: str, password: str) -> None:
    """Redact a basic-auth password and the ``Authorization: Basic`` token made from it."""
    register_secret(password)
    register_secret(base64.b64encode(f"{user}:{password}".encode()).decode())


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def has_secrets() -> bool:
    """Whether any secret is registered (sinks skip the scan when not)."""
    return bool(_secrets)


def markup_safe(text: object) -> str:
    """Outside text made safe to interpolate into a Rich markup string: redacted, brackets escaped."""
    return escape(redact(str(text)))


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    _secrets.clear()
