"""The one SSE parser: bytes in, ``data:`` payloads out, across arbitrary chunk boundaries."""

from __future__ import annotations


class SSEParser:
    """Incremental Server-Sent Events parser that yields the payload of each ``data:`` event.

    Events end at a blank line; several ``data:`` lines in one event are joined with newlines; comments
    (``:`` lines) and other fields are ignored. ``\\r\\n`` line ends are accepted.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes from the network; return the ``data`` payloads of the events they complete."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
            if buf.endswith(b"\r"):  # a \r\n split across two reads
                self._buf = buf
                return []
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        events = buf.split(b"\n\n")
        self._buf = events.pop()
        out: list[bytes] = []
        for event in events:
            if event.startswith(b"data:") and b"\n" not in event:  # the common case: one line
                out.append(event[5:].strip())
                continue
            data = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                out.append(b"\n".join(data))
        return out

    def flush(self) -> list[bytes]:
        """At end of stream: the payload of a last event that had no closing blank line."""
        rest, self._buf = self._buf, b""
        return [line[5:].strip() for line in rest.split(b"\n") if line.startswith(b"data:")]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet complete (non-empty at end of stream means it was cut off)."""
        return self._buf
