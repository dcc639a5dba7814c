"""What every simulated endpoint shares: the simulated tokenizer (a template's fixed tokens, then one token per
word, an image's patches), its words, the usage objects and the server-sent event of typed APIs."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from llmsurge.images import png_size
from llmsurge.sim.model import Sequence

WORDS = [
    f" {w}".encode()
    for w in [
        "the",
        "river",
        "of",
        "a",
        "model",
        "and",
        "in",
        "to",
        "is",
        "that",
        "it",
        "for",
        "on",
        "with",
        "as",
        "was",
        "at",
        "by",
        "an",
        "be",
        "this",
        "from",
        "or",
    ]
]
CHAT_OVERHEAD = 8
COMPLETION_OVERHEAD = 1


def prompt_tokens(body: dict[str, object], chat: bool) -> list[str]:
    """The prompt as the simulated tokenizer sees it: a template's fixed tokens, then one token per word (so
    calibration can find both), role by role for chat."""
    if not chat:
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = " ".join(map(str, prompt))
        return ["<bos>"] * COMPLETION_OVERHEAD + str(prompt or "").split()
    tokens = ["<chat>"] * CHAT_OVERHEAD
    for m in body.get("messages") or []:  # type: ignore[attr-defined]
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            tokens += content.split()
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    tokens += str(part.get("text", "")).split()
                    tokens += ["<image>"] * image_tokens(part)
    return tokens


IMAGE_PATCH = 28
"""Pixels per side of one image token (Qwen2-VL's 14-pixel patches merged 2×2)."""


def image_tokens(part: dict[str, object]) -> int:
    """An ``image_url`` part's tokens: one per 28×28 patch of a PNG data URL (0 for anything else)."""
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if part.get("type") != "image_url" or not isinstance(url, str) or not url.startswith("data:image/png;base64,"):
        return 0
    try:
        head = base64.b64decode(url[22 : 22 + 44])  # the signature and the IHDR chunk
    except ValueError:
        return 0
    size = png_size(head)
    if size is None:
        return 0
    return -(-size[0] // IMAGE_PATCH) * -(-size[1] // IMAGE_PATCH)


def whole(value: object, default: int) -> int:
    """A request's whole-number field (``max_tokens`` …), or ``default`` when it is absent or not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def count_prompt_tokens(body: dict[str, object], chat: bool) -> int:
    """How many prompt tokens the simulated server counts for ``body``."""
    return len(prompt_tokens(body, chat))


def event(data: Mapping[str, object]) -> bytes:
    """One Responses API server-sent event."""
    return f"event: {data['type']}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def vllm_metrics(seq: Sequence) -> dict[str, float]:
    """vLLM's per-request ``metrics`` (its shape in 0.32, recorded: realservers/samples) from the engine's clock:
    ``time_to_first_token_ms`` counts from scheduling (the prefill), ``generation_time_ms`` the decode."""
    t = seq.timings()
    gaps = max(1, seq.produced - 1)
    decode = float(t["predicted_ms"])
    return {
        "time_to_first_token_ms": float(t["prompt_ms"]),
        "generation_time_ms": decode,
        "queue_time_ms": float(t["queue_ms"]),
        "mean_itl_ms": decode / gaps,
        "tokens_per_second": seq.produced / (decode / 1000.0) if decode else 0.0,
    }


def usage_json(seq: Sequence) -> bytes:
    return json.dumps(usage(seq), separators=(",", ":")).encode()


def usage(seq: Sequence) -> dict[str, object]:
    return {
        "prompt_tokens": seq.prompt_tokens,
        "completion_tokens": seq.produced,
        "total_tokens": seq.prompt_tokens + seq.produced,
        "prompt_tokens_details": {"cached_tokens": seq.cached_tokens},
    }
