"""Synthetic images for vision models: PNGs made here (no imaging library), sent as data URLs.

A vision model's prompt tokens depend on an image's size, not on what it shows; what it shows decides whether the
server's multimodal cache has seen it. Each image is a first row of noise drawn per request over a solid colour:
every image differs (no cache hit a real workload would not get). It is made on the worker's loop, so it must cost
next to nothing: the solid rows are compressed once per size (a deflate stream restarted after the noise row joins
them), and only the noise row is compressed per image — microseconds, where compressing the whole image took
~2.5 ms at 512×512.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADLER_BASE = 65521


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _adler32_combine(first: int, second: int, second_len: int) -> int:
    """The Adler-32 of two byte strings joined, from each one's (zlib's ``adler32_combine``)."""
    rem = second_len % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 = (sum1 + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)


_TAILS: dict[tuple[int, int], tuple[bytes, int, int]] = {}
"""Per size: the solid rows below the noise row, raw-deflated and finished, with their Adler-32 and length."""


def _tail(width: int, height: int, rng: random.Random) -> tuple[bytes, int, int]:
    tail = _TAILS.get((width, height))
    if tail is None:
        plain = b"\x00" + bytes(rng.randrange(256) for _ in range(3)) * width  # filter byte 0, then the pixels
        rows = plain * (height - 1)
        c = zlib.compressobj(1, zlib.DEFLATED, -15)
        tail = _TAILS[(width, height)] = (c.compress(rows) + c.flush(), zlib.adler32(rows), len(rows))
    return tail


def synthetic_png(width: int, height: int, rng: random.Random) -> bytes:
    """An RGB PNG of ``width`` × ``height``: a first row of random noise over a solid colour."""
    noisy = b"\x00" + rng.randbytes(3 * width)
    head = zlib.compressobj(1, zlib.DEFLATED, -15)
    first = head.compress(noisy) + head.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, not final: the tail follows
    tail, tail_adler, tail_len = _tail(width, height, rng)
    check = _adler32_combine(zlib.adler32(noisy), tail_adler, tail_len)
    idat = b"\x78\x01" + first + tail + struct.pack(">I", check)  # a zlib stream: header, deflate, Adler-32
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its header; None when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def with_images(
    prompt: str | list[dict[str, object]], n: int, size: tuple[int, int], rng: random.Random
) -> list[dict[str, object]]:
    """Chat messages whose last user message carries its text and ``n`` images (OpenAI's ``image_url`` parts)."""
    messages: list[dict[str, object]] = (
        [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    )
    last = messages[-1]
    text = last.get("content")
    parts: list[dict[str, object]] = [{"type": "text", "text": text if isinstance(text, str) else ""}]
    for _ in range(n):
        url = "data:image/png;base64," + base64.b64encode(synthetic_png(*size, rng)).decode()
        parts.append({"type": "image_url", "image_url": {"url": url}})
    messages[-1] = {**last, "content": parts}
    return messages


def parse_size(text: str) -> tuple[int, int]:
    """``512x512`` → (512, 512); ``ValueError`` naming the form when it is not one (1–4096 each)."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-size {text!r}: use WIDTHxHEIGHT, e.g. 512x512") from None
    if not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise ValueError(f"--image-size {text!r}: each side must be 1-4096 pixels")
    return w, h
