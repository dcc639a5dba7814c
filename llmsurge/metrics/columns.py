"""Append-only columns of float32 values that can be read without holding the writer's lock.

Values live in chunks that are never moved or resized (each new chunk is twice the last, up to a cap), so a view
taken under the bus lock — the chunk list and the count — stays valid while the collector thread goes on
appending. Statistics over a million values are then computed outside the lock, and ingest never waits on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

MIN_CHUNK = 256
MAX_CHUNK = 1 << 16


class ColumnView(NamedTuple):
    """The first ``n`` values of a column, as they were when the view was taken."""

    chunks: tuple[np.ndarray, ...]
    last_fill: int  # values written in the last chunk
    n: int

    def values(self) -> np.ndarray:
        """The values as one float32 array (a copy)."""
        if not self.chunks:
            return np.empty(0, dtype=np.float32)
        parts = [*self.chunks[:-1], self.chunks[-1][: self.last_fill]]
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


class Column:
    """Float32 values, appended by one writer; read through :meth:`view`."""

    __slots__ = ("_chunks", "_fill", "n")

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._fill = 0
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def _grow(self) -> np.ndarray:
        size = min(MAX_CHUNK, max(MIN_CHUNK, self.n))
        chunk = np.empty(size, dtype=np.float32)
        self._chunks.append(chunk)
        self._fill = 0
        return chunk

    def append(self, value: float) -> None:
        """Add one value."""
        chunk = self._chunks[-1] if self._chunks and self._fill < len(self._chunks[-1]) else self._grow()
        chunk[self._fill] = value
        self._fill += 1
        self.n += 1

    def extend(self, values: Iterable[float]) -> None:
        """Add many values (a request's inter-token latencies) a slice at a time."""
        arr = np.asarray(values if isinstance(values, (list, tuple, np.ndarray)) else list(values), np.float32)
        i = 0
        while i < len(arr):
            chunk = self._chunks[-1] if self._chunks and self._fill < len(self._chunks[-1]) else self._grow()
            take = min(len(arr) - i, len(chunk) - self._fill)
            chunk[self._fill : self._fill + take] = arr[i : i + take]
            self._fill += take
            self.n += take
            i += take

    def view(self) -> ColumnView:
        """What a reader may use without the lock: every value written so far."""
        return ColumnView(tuple(self._chunks), self._fill, self.n)

    @property
    def nbytes(self) -> int:
        """Memory held by the chunks."""
        return sum(c.nbytes for c in self._chunks)
