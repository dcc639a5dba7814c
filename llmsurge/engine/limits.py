"""The edges of every number a user can give (flags and preset files): finite, and within these bounds."""

from __future__ import annotations

MAX_CONCURRENCY = 100_000  # requests in flight: past this, file descriptors and memory run out first
MAX_COUNT = 1_000_000_000  # requests in a run, tokens in a request
MAX_SECONDS = 30 * 24 * 3600.0  # durations, timeouts and waits: 30 days
MAX_RATE = 1_000_000.0  # requests per second
MAX_TEMPERATURE = 2.0  # the OpenAI API's range
MAX_TURNS = 1000  # turns of one simulated chat
