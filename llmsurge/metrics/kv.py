"""KV headroom, forecast: the concurrency at which the server's KV cache fills, from a load below it.

A running request holds its prompt and the tokens it has produced so far; over its life that is, on average, its
prompt and half its output (the roofline's context, :mod:`llmsurge.metrics.roofline`). When the running requests
hold the whole cache, the next one waits (vLLM, SGLang) or an older one is preempted. Two ways to the same figure,
the measured one first:

- **gauge** — the server's KV usage over a segment beside how many requests it was running then: at ``u`` of the
  cache for ``r`` running, the cache is full at ``r / u`` (shared prefix blocks counted as the server counts them);
- **size** — the cache's size in tokens (vLLM's ``cache_config_info``) over the tokens a request holds.

llama.cpp gives each of its slots a fixed context: requests beyond the slots are deferred, so the slots are the
limit (when a request fits a slot at all). One definition, read by the server pane live and by ``summary.json``'s
``segments[].kv_forecast``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_USAGE = 0.005
"""Below this share of the cache in use the gauge is too coarse to scale from (and rounding dominates)."""


@dataclass(frozen=True, kw_only=True)
class KvForecast:
    """Where the KV cache fills for the running workload, and how that was derived."""

    full_at: float
    """Concurrency (requests running) at which the cache is full: requests start to wait or be preempted."""
    now: float
    """Requests the server was running (its gauge; our in-flight count where it has none)."""
    method: str
    """``gauge`` (the server's usage per running request), ``size`` (cache tokens ÷ tokens a request holds) or
    ``slots`` (llama.cpp)."""
    tokens_per_request: float | None
    """Tokens a running request holds on average (prompt + half its output; from the gauge where measured)."""
    capacity_tokens: float | None = None
    """The cache's size in tokens, where the server says."""
    derived: str = ""
    """One line: how the figure was found."""

    @property
    def headroom(self) -> float:
        """How many times the current concurrency fits before the cache is full."""
        return self.full_at / self.now if self.now > 0 else math.inf

    def to_json(self) -> dict[str, object]:
        return {
            "full_at_concurrency": round(self.full_at, 2),
            "now_concurrency": round(self.now, 2),
            "method": self.method,
            "tokens_per_request": None if self.tokens_per_request is None else round(self.tokens_per_request, 1),
            "capacity_tokens": self.capacity_tokens,
            "derived": self.derived,
        }

    @classmethod
    def from_json(cls, d: object) -> KvForecast | None:
        if not isinstance(d, dict):
            return None
        full, now = d.get("full_at_concurrency"), d.get("now_concurrency")
        if not _positive(full) or not isinstance(now, int | float) or isinstance(now, bool) or now < 0:
            return None
        tokens, capacity = d.get("tokens_per_request"), d.get("capacity_tokens")
        return cls(
            full_at=float(full),  # type: ignore[arg-type]
            now=float(now),
            method=str(d.get("method") or ""),
            tokens_per_request=float(tokens) if _positive(tokens) else None,  # type: ignore[arg-type]
            capacity_tokens=float(capacity) if _positive(capacity) else None,  # type: ignore[arg-type]
            derived=str(d.get("derived") or ""),
        )


def _positive(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def held_tokens(input_tokens: float, output_tokens: float, block_size: int | None = None) -> float:
    """Tokens a request holds in the cache on average over its life: its prompt and half its output — in whole
    blocks where the cache is paged (vLLM: a request holding 513 tokens of 128-token blocks holds 640)."""
    if not block_size or block_size <= 1:
        return input_tokens + output_tokens / 2.0
    prompt, steps = round(input_tokens), max(1, round(output_tokens))
    blocks = _ceil_sum(prompt + steps, block_size) - _ceil_sum(prompt, block_size)  # over t = 1 … steps
    return blocks * block_size / steps


def _ceil_sum(n: int, b: int) -> int:
    """Σ ⌈x / b⌉ for x = 1 … n, in closed form (the pane asks each frame; outputs run to thousands of tokens)."""
    q, r = divmod(n, b)
    return b * q * (q + 1) // 2 + r * (q + 1)


def forecast(
    *,
    running: float | None,
    usage: float | None,
    input_tokens: float | None,
    output_tokens: float | None,
    capacity_tokens: float | None = None,
    block_size: int | None = None,
    slots: int | None = None,
    slot_context: int | None = None,
) -> KvForecast | None:
    """The forecast from what is known (None when nothing is): ``running`` and ``usage`` (a fraction) are the
    server's gauges averaged over the same readings; the lengths are the workload's realised means."""
    held = held_tokens(input_tokens, output_tokens or 0.0, block_size) if input_tokens else None
    now = running if running is not None and running == running and running >= 0 else 0.0
    if slots:
        if held is not None and slot_context and input_tokens is not None:
            peak = input_tokens + (output_tokens or 0.0)
            if peak > slot_context:
                return None  # a request does not fit a slot: there is no concurrency at which the load runs
        ctx = f" of {slot_context:,} tokens" if slot_context else ""
        return KvForecast(
            full_at=float(slots),
            now=now,
            method="slots",
            tokens_per_request=held,
            capacity_tokens=float(slots * slot_context) if slot_context else None,
            derived=f"{slots} slots{ctx}: a request beyond them is deferred",
        )
    if usage is not None and usage == usage and usage >= MIN_USAGE and now >= 1.0:
        per = usage / now
        tokens = per * capacity_tokens if capacity_tokens else held
        return KvForecast(
            full_at=1.0 / per,
            now=now,
            method="gauge",
            tokens_per_request=tokens,
            capacity_tokens=capacity_tokens,
            derived=f"{now:.1f} running held {usage:.1%} of the KV cache: full at {1.0 / per:.1f}",
        )
    if capacity_tokens and held:
        return KvForecast(
            full_at=capacity_tokens / held,
            now=now,
            method="size",
            tokens_per_request=held,
            capacity_tokens=capacity_tokens,
            derived=(
                f"{capacity_tokens:,.0f} cache tokens ÷ {held:,.0f} a request holds "
                f"(prompt {input_tokens:,.0f} + half of {output_tokens or 0:,.0f} out"
                f"{f', in {block_size}-token blocks' if block_size and block_size > 1 else ''})"
            ),
        )
    return None
