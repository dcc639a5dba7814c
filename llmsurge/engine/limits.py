"""The edges of every number a user can give (flags and preset files): finite, and within these bounds."""

from __future__ import annotations

import math

MAX_CONCURRENCY = 100_000  # requests in flight: past this, file descriptors and memory run out first
MAX_COUNT = 1_000_000_000  # requests in a run, tokens in a request
MAX_SECONDS = 30 * 24 * 3600.0  # durations, timeouts and waits: 30 days
MAX_RATE = 1_000_000.0  # requests per second
MAX_TEMPERATURE = 2.0  # the OpenAI API's range
MAX_TURNS = 1000  # turns of one simulated chat
MIN_RATE = 0.01  # requests per second a steer may set: one every 100 s


def steered_concurrency(value: object) -> int:
    """A concurrency a key, the palette or the live API asks for, checked against the same limits as a flag:
    ``ValueError`` naming them (0 is not silently 1; 200,000 is not silently taken)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY:,}, not {value!r}")
    if value != int(value):
        raise ValueError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY:,}, not {value!r}")
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be from 1 to {MAX_CONCURRENCY:,} requests in flight, not {value:.6g}")
    return int(value)


def steered_rate(value: object) -> float:
    """A request rate a key, the palette or the live API asks for, checked: ``ValueError`` naming the limits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"rate must be a number from {MIN_RATE:g} to {MAX_RATE:,.0f} requests/s, not {value!r}")
    return float(value)
