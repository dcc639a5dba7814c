"""Secrets never reach a file, a log or the screen; text from outside is never read as Rich markup or as a
terminal control.

Secrets (the API key's value, a URL's password) are registered once, where they are read, in every process that
holds them. Every sink — result files, the console, the TUI — passes text through :func:`redact`, whatever its
source: a server that echoes the ``Authorization`` header in an error body must not put the key on disk. The
forms a secret takes on the wire are registered with it (JSON-escaped, percent-encoded, and the base64 of
``user:password`` that basic auth sends).

Text from outside (server answers, model ids, error bodies, header values, file contents and names) reaches the
screen only through :func:`shown` (plain text: TUI widgets, toasts) or :func:`markup_safe` (inside a Rich markup
string): redacted, terminal controls made visible, and shortened where a line is expected. Result files keep the
exact text as JSON data (only redacted).
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

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


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 controls, DEL, C1 controls (U+009B is a one-byte CSI), bidi controls and line/paragraph separators: any of
them from a server could clear the screen, set the window title, write the clipboard (OSC 52) or reorder text."""
_CONTROLS_BUT_NEWLINE = re.compile(_CONTROLS.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))
SHORT = 120
"""Characters of one outside value shown where a line is expected (a model id, a file name); files keep it whole."""


def _escape_control(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def visible(text: str, newlines: bool = False) -> str:
    """``text`` with every terminal control shown as a visible escape (``ESC`` → ``\\x1b``, U+202E →
    ``\\u202e``); newlines kept when ``newlines`` (a multi-line view), escaped otherwise."""
    pattern = _CONTROLS_BUT_NEWLINE if newlines else _CONTROLS
    return pattern.sub(_escape_control, text)


def shorten(text: str, limit: int = SHORT) -> str:
    """``text`` cut in the middle to ``limit`` characters (``head…tail (N chars)``) when longer."""
    if len(text) <= limit:
        return text
    keep = max(8, limit - 20)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    return f"{text[:head]}…{text[-tail:]} ({len(text):,} chars)"


def shown(text: object, newlines: bool = False, limit: int | None = SHORT) -> str:
    """Outside text as the screen may show it: redacted, controls made visible, shortened to ``limit`` characters
    (None: whole, for multi-line views). The one function for plain text; :func:`markup_safe` inside markup."""
    out = visible(redact(str(text)), newlines)
    return shorten(out, limit) if limit else out


def listed(items: list[str], limit: int = 8) -> str:
    """``a, b, c`` — or the first ``limit`` and ``… and 19,990 more`` — each item :func:`shown` on one line."""
    head = ", ".join(shown(i, limit=80) for i in items[:limit])
    return head + (f" … and {len(items) - limit:,} more" if len(items) > limit else "")


def markup_safe(text: object, limit: int | None = None) -> str:
    """Outside text made safe to interpolate into a Rich markup string: :func:`shown`, then brackets escaped."""
    from rich.markup import escape  # here: workers and the simulated server import this module, never Rich

    return escape(shown(text, limit=limit))


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    _secrets.clear()
