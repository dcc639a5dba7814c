"""The one number formatter, for the panes and the command output alike: one way to show a missing value (``—``:
nothing measured yet) and one for a value its source cannot give (``N/A``)."""

from __future__ import annotations

import math

from llmsurge.metrics.stats import Distribution, thin
from llmsurge.telemetry.base import NaType

MISSING = "—"  # no data yet (latencies before the first request)
NOT_AVAILABLE = "N/A"  # the source cannot give this value (telemetry)


def _missing(v: float | None) -> str | None:
    if isinstance(v, NaType):
        return NOT_AVAILABLE
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return None


def num(v: float | None, digits: int = 1) -> str:
    """``1,234.5``; ``—`` for None/NaN; ``N/A`` for a value its source cannot give."""
    m = _missing(v)
    if m is not None or v is None:
        return m or MISSING
    return f"{v:,.{digits}f}"


def ms(v: float | None) -> str:
    """Milliseconds with precision that suits the magnitude."""
    m = _missing(v)
    if m is not None or v is None:
        return m or MISSING
    if v >= 10_000:
        return f"{v / 1000:,.1f}s"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def percentile_ms(value: float | None, n: int, q: float) -> str:
    """A latency percentile as every surface shows it: :func:`ms`, starred when it rests on fewer values than ``q``
    needs (``stats.thin``: read it as the maximum); ``—`` when nothing was measured."""
    if not n:
        return MISSING
    return ms(value) + ("*" if thin(n, q) and _missing(value) is None else "")


def p50_p99(d: Distribution) -> str:
    """``29.0/37.1*``: a distribution's median and p99 as :func:`percentile_ms` shows each (``—`` when empty)."""
    return f"{percentile_ms(d.at(50.0), d.n, 50.0)}/{percentile_ms(d.at(99.0), d.n, 99.0)}" if d.n else MISSING


def clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03``."""
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def bar(fraction: float | None, width: int = 10) -> str:
    """A text bar ``█████░░░░░`` for a 0..1 fraction (empty for a missing value)."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return "·" * width
    f = min(1.0, max(0.0, fraction))
    full = round(f * width)
    return "█" * full + "░" * (width - full)


def compact(v: float | None) -> str:
    """A count or rate in at most 6 characters: ``987``, ``9,876``, ``98.8k``, ``988k``, ``9.88M``."""
    m = _missing(v)
    if m is not None or v is None:
        return m or MISSING
    a = abs(v)
    if a < 10_000:
        return f"{v:,.0f}" if a >= 100 or float(v).is_integer() else f"{v:.1f}"
    if a < 1_000_000:
        return f"{v / 1000:.1f}k" if a < 100_000 else f"{v / 1000:.0f}k"
    return f"{v / 1e6:.2f}M" if a < 10e6 else f"{v / 1e6:.0f}M"
