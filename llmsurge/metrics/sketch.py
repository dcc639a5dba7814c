"""Per-token values (inter-token latencies) in bounded memory: a DDSketch with 1% relative accuracy.

A run of a million 256-token requests has 255 million ITLs; keeping each would cost a gigabyte. Up to
:data:`EXACT_UP_TO` values are kept exactly (small segments get numpy's exact percentiles); past that only the
sketch remains, whose every quantile is within :data:`RELATIVE_ACCURACY` of a true value at that rank. Mean and
population standard deviation stay exact (running sums). Sketches merge, so a run's ITL is its segments' merged.
``requests.jsonl`` keeps every exact ITL, and ``llmsurge report`` recomputes from it.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from ddsketch import DDSketch

RELATIVE_ACCURACY = 0.01
EXACT_UP_TO = 10_000
BUNCHED_S = 1e-4
"""A gap shorter than this (0.1 ms) is no time between tokens: the server wrote several chunks in one send."""


class ItlSketch:
    """Values in seconds; exact while few, sketched after. One writer (the bus, under its lock)."""

    __slots__ = ("_exact", "bunched", "count", "sketch", "sum", "sumsq")

    def __init__(self) -> None:
        self.sketch = DDSketch(RELATIVE_ACCURACY)
        self._exact: array[float] | None = array("d")
        self.count = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.bunched = 0
        """Gaps under :data:`BUNCHED_S`."""

    def extend(self, values: Sequence[float]) -> None:
        """Add one request's values."""
        add = self.sketch.add
        total = 0.0
        squares = 0.0
        bunched = 0
        for v in values:
            if v > 0.0:
                add(v)
            else:
                add(1e-9)  # a gap of zero (two chunks in one read): the sketch indexes positive values only
            total += v
            squares += v * v
            if v < BUNCHED_S:
                bunched += 1
        self.bunched += bunched
        self.count += len(values)
        self.sum += total
        self.sumsq += squares
        if self._exact is not None:
            if len(self._exact) + len(values) <= EXACT_UP_TO:
                self._exact.extend(values)
            else:
                self._exact = None

    def copy(self) -> ItlSketch:
        """An independent copy (a reader's, taken under the writer's lock)."""
        other = ItlSketch()
        other.sketch.merge(self.sketch)
        other._exact = array("d", self._exact) if self._exact is not None else None
        other.count, other.sum, other.sumsq, other.bunched = self.count, self.sum, self.sumsq, self.bunched
        return other

    def merge(self, other: ItlSketch) -> None:
        """Fold ``other`` in (a run's ITL from its segments')."""
        self.sketch.merge(other.sketch)
        if self._exact is not None and other._exact is not None and len(self._exact) + other.count <= EXACT_UP_TO:
            self._exact.extend(other._exact)
        else:
            self._exact = None
        self.count += other.count
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.bunched += other.bunched

    @property
    def exact(self) -> Sequence[float] | None:
        """Every value, while there are few enough to keep them all (then statistics are exact); else None."""
        return self._exact

    @property
    def bunched_share(self) -> float | None:
        """Share of gaps under :data:`BUNCHED_S` (None: no gaps)."""
        return self.bunched / self.count if self.count else None

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1), within the sketch's relative error (NaN when empty)."""
        return self._quantile(q)

    def _quantile(self, q: float) -> float:
        v = self.sketch.get_quantile_value(q)
        return float(v) if v is not None else float("nan")
