"""The simulated server's prefix cache, as vLLM's automatic prefix caching works: whole blocks of tokens, keyed
by the hash of everything before them, kept least-recently-used.

A prompt's leading blocks that are already cached are not computed again (cheaper prefill, lower TTFT) and are
reported as ``usage.prompt_tokens_details.cached_tokens``, so a re-run of identical prompts shows what a real
server would do with it: a flattering TTFT, and a cache hit rate that says why.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

BLOCK_TOKENS = 16


class PrefixCache:
    """Block hashes, least recently used first; ``capacity`` in blocks."""

    def __init__(self, capacity_blocks: int, block_tokens: int = BLOCK_TOKENS) -> None:
        self.capacity = max(1, capacity_blocks)
        self.block_tokens = block_tokens
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.queries = 0
        """Prompt tokens looked up (vLLM's ``prefix_cache_queries``)."""
        self.hits = 0
        """Prompt tokens found cached (vLLM's ``prefix_cache_hits``)."""

    def clear(self) -> None:
        """Forget every block (vLLM's ``/reset_prefix_cache``): the next prompts are computed in full."""
        self._blocks.clear()

    def admit(self, tokens: Sequence[str]) -> int:
        """Look ``tokens`` up and cache its whole blocks; returns how many leading tokens were cached already."""
        b = self.block_tokens
        cached = 0
        hit = True
        key = 0
        for start in range(0, len(tokens) - b + 1, b):
            key = hash((key, tuple(tokens[start : start + b])))
            if hit and key in self._blocks:
                cached += b
                self._blocks.move_to_end(key)
                continue
            hit = False
            self._blocks[key] = None
            if len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
        if cached >= len(tokens):  # the last token is always computed (it yields the first output token)
            cached = max(0, cached - b)
        self.queries += len(tokens)
        self.hits += cached
        return cached

    def insert(self, tokens: Sequence[str]) -> None:
        """Cache the whole blocks of ``tokens`` without counting a lookup: a finished request's prompt and
        answer, as vLLM keeps the blocks it generated (a chat's next turn resends them as history)."""
        b = self.block_tokens
        key = 0
        for start in range(0, len(tokens) - b + 1, b):
            key = hash((key, tuple(tokens[start : start + b])))
            self._blocks[key] = None
            self._blocks.move_to_end(key)
            if len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
