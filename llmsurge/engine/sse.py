"""The one SSE parser: bytes in, ``data:`` payloads out, across arbitrary chunk boundaries.

Linear in the bytes fed, whatever the chunking (an event split over many reads is appended to, never re-copied),
and bounded: an event that grows past ``max_event_bytes`` without ending raises :class:`SSEEventTooLarge`,
so a server that streams one endless line cannot stall the worker's loop or exhaust its memory.
"""

from __future__ import annotations

MAX_EVENT_BYTES = 4 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte order mark: the spec's stream may begin with one, and it is not part of the first field's name."""


class ErrorEvent(bytes):
    """The payload of an ``event: error`` event: the server's own word that the answer failed (its data, whatever
    its shape)."""


class SSEEventTooLarge(ValueError):
    """An event grew past the parser's limit without a closing blank line."""


class SSEParser:
    """Incremental Server-Sent Events parser that yields the payload of each ``data:`` event.

    Events end at a blank line; several ``data:`` lines in one event are joined with newlines; comments
    (``:`` lines) and other fields are ignored, but an event named ``error`` comes out as an :class:`ErrorEvent`.
    ``\\r\\n`` and lone ``\\r`` line ends are accepted, and a UTF-8 BOM at the stream's start is skipped (the spec:
    otherwise the first event's ``data`` is misread and the first token is lost).
    """

    __slots__ = ("_buf", "_cr", "_head", "max_event_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._cr = False  # the last read ended with "\r": a "\n" may follow in the next one
        self._head: bytes | None = (
            b""  # the stream's first bytes while fewer than a BOM's three have come (None: past them)
        )
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes from the network; return the ``data`` payloads of the events they complete.

        Raises:
            SSEEventTooLarge: the event being read is longer than ``max_event_bytes``.
        """
        if self._head is None and not self._cr and not self._buf and chunk[-2:] == b"\n\n" and 13 not in chunk:
            # Whole events with LF line ends and nothing carried over: what a server writes, mostly one event a read.
            if chunk[:5] == b"data:" and chunk.count(10) == 2:
                return [chunk[5:-2].strip()]  # one event of one line
            return _events(chunk[:-2])
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < 3 and BOM.startswith(chunk):
                self._head = chunk
                return []
            self._head = None
            if chunk.startswith(BOM):
                chunk = chunk[3:]
        if self._cr:
            self._cr = False
            chunk = b"\n" + (chunk[1:] if chunk[:1] == b"\n" else chunk)
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk = chunk[:-1]
                self._cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf
        if buf:
            start = max(0, len(buf) - 1)  # a "\n\n" may straddle the old bytes and the new
            buf += chunk
            end = buf.rfind(b"\n\n", start)
            if end < 0:
                self._check(len(buf))
                return []
            data = bytes(buf[:end])
            del buf[: end + 2]
        else:
            end = chunk.rfind(b"\n\n")
            if end < 0:
                self._check(len(chunk))
                buf += chunk
                return []
            data = chunk[:end]
            buf += chunk[end + 2 :]
        self._check(len(buf))
        return _events(data)

    def _check(self, size: int) -> None:
        if size > self.max_event_bytes:
            self._buf = bytearray()
            raise SSEEventTooLarge(f"an SSE event grew past {self.max_event_bytes:,} bytes without ending")

    def flush(self) -> list[bytes]:
        """At end of stream: the payload of a last event that had no closing blank line."""
        if not self._buf:
            self._cr = False
            return []
        rest, self._buf, self._cr = bytes(self._buf), bytearray(), False
        lines = [line[5:].strip() for line in rest.split(b"\n") if line.startswith(b"data:")]
        if _named_error(rest):
            return [ErrorEvent(b"\n".join(lines))]
        return [b"\n".join(lines)] if lines else []

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet complete (non-empty at end of stream means it was cut off)."""
        return bytes(self._buf)


def _events(data: bytes) -> list[bytes]:
    """The ``data`` payloads of whole events (``data``: LF line ends, the blank line after the last one cut)."""
    out: list[bytes] = []
    for event in data.split(b"\n\n"):
        if event.startswith(b"data:") and b"\n" not in event:  # the common case: one line
            out.append(event[5:].strip())
            continue
        lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if _named_error(event):
            out.append(ErrorEvent(b"\n".join(lines)))
        elif lines:
            out.append(b"\n".join(lines))
    return out


def _named_error(event: bytes) -> bool:
    """Whether an event's ``event`` field names it ``error``."""
    return b"event:" in event and any(
        line[6:].strip() == b"error" for line in event.split(b"\n") if line.startswith(b"event:")
    )
