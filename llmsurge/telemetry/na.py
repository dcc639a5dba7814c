"""The NA sentinel: a reading a source cannot give (as nvitop's NA does)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any


class NaType(float):
    """A missing reading: formats as ``N/A``, behaves as ``nan`` in arithmetic."""

    def __new__(cls) -> NaType:
        return super().__new__(cls, math.nan)

    def __repr__(self) -> str:
        return "NA"

    def __str__(self) -> str:
        return "N/A"

    def __format__(self, spec: str) -> str:
        return "N/A"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NA"  # pickles (and copies) as the one module-level NA


NA = NaType()


def na(value: object) -> Any:
    """``value`` as a float, or NA when the source gave nothing usable (None, negative error codes). Returns Any:
    NA stands in for a float in every reading's arithmetic (nvitop's habit)."""
    if not isinstance(value, (Real, str)):  # None, or an object no number can be read from
        return NA
    try:
        v = float(value)
    except (TypeError, ValueError):
        return NA
    return NA if math.isnan(v) or v < 0 else v
