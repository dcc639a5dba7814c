"""Synthetic images for vision models: PNGs made here (no imaging library), sent as data URLs.

A vision model's prompt tokens depend on an image's size, not on what it shows; what it shows decides whether the
server's multimodal cache has seen it. Each image is a solid colour with one row of noise, both drawn per request:
every image differs (no cache hit a real workload would not get), and it compresses in ~2.5 ms at 512×512.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def synthetic_png(width: int, height: int, rng: random.Random) -> bytes:
    """An RGB PNG of ``width`` × ``height``: a random colour, one random row of noise."""
    color = bytes(rng.randrange(256) for _ in range(3))
    plain = b"\x00" + color * width  # filter byte 0, then the pixels
    noisy = b"\x00" + rng.randbytes(3 * width)
    at = rng.randrange(height)
    raw = plain * at + noisy + plain * (height - at - 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 1)) + _chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its header; None when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def with_images(
    prompt: str | list[dict[str, Any]], n: int, size: tuple[int, int], rng: random.Random
) -> list[dict[str, Any]]:
    """Chat messages whose last user message carries its text and ``n`` images (OpenAI's ``image_url`` parts)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    last = messages[-1]
    text = last.get("content")
    parts: list[dict[str, Any]] = [{"type": "text", "text": text if isinstance(text, str) else ""}]
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
