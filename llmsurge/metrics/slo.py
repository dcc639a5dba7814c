"""Service-level objectives and goodput, as vLLM's benchmark defines them.

``--slo ttft=500ms,tpot=50ms,e2el=20s``: a request is *good* when it succeeded and met every threshold. Goodput is
good requests per second (``request_goodput``, vLLM's key); ``good_share`` is the good fraction of the requests
that ended (ok or failed: a failed request is never good; DESIGN.md's one definition), and
``good_output_throughput`` the output tokens of good requests per second. ITL's threshold holds for each of a
request's gaps (its largest one). A figure a request does not have (TPOT of a one-token answer) does not
count against it, as in vLLM.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

SLO_METRICS = ("ttft", "ttfc", "tpot", "itl", "e2el")
COLUMN_OF = {"ttft": "ttft", "ttfc": "ttfc", "tpot": "tpot", "itl": "itl_max", "e2el": "e2el"}
"""Which per-request column each SLO metric is judged on."""
_PART = re.compile(r"^\s*([a-z0-9_]+)\s*[=<:]=?\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$")


class SloError(ValueError):
    """An SLO spec that cannot be read; the message names the part and the fix."""


@dataclass(frozen=True)
class Slo:
    """Thresholds in seconds, by metric (empty: no SLO)."""

    limits: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.limits)

    def __str__(self) -> str:
        return ",".join(f"{m}={_ms(v)}" for m, v in self.limits.items())

    def describe(self) -> str:
        """``TTFT≤500ms, TPOT≤50ms``."""
        return ", ".join(f"{m.upper()}≤{_ms(v)}" for m, v in self.limits.items())

    def with_limit(self, metric: str, seconds: float | None) -> Slo:
        """A copy with ``metric``'s threshold set (or dropped, with None)."""
        limits = dict(self.limits)
        if seconds is None:
            limits.pop(metric, None)
        else:
            limits[metric] = seconds
        return Slo(limits)


def _ms(seconds: float) -> str:
    ms = seconds * 1000.0
    return f"{seconds:g}s" if ms >= 10_000 else f"{ms:g}ms"


def parse_duration(text: str, where: str) -> float:
    """``500ms`` / ``0.5s`` / ``500`` (ms) → seconds."""
    m = re.match(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$", text)
    if not m:
        raise SloError(f"{where}: {text!r} is not a duration: write 500ms or 2s")
    value = float(m.group(1)) / (1000.0 if m.group(2) in (None, "ms") else 1.0)
    if not math.isfinite(value) or value <= 0:
        raise SloError(f"{where}: {text!r} must be a positive duration")
    return value


def parse_slo(spec: str | None) -> Slo:
    """``"ttft=500ms,tpot=50ms,e2el=20s"`` → Slo; :class:`SloError` naming a bad part."""
    if not spec:
        return Slo()
    limits: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _PART.match(part)
        if not m:
            raise SloError(f"--slo {part.strip()!r}: write METRIC=DURATION, e.g. ttft=500ms or e2el=20s")
        metric = m.group(1)
        if metric not in SLO_METRICS:
            raise SloError(f"--slo {part.strip()!r}: {metric!r} is not one of {', '.join(SLO_METRICS)}")
        limits[metric] = parse_duration(m.group(2) + (m.group(3) or "ms"), f"--slo {part.strip()!r}")
    return Slo(limits)


def good_mask(values: dict[str, np.ndarray], slo: Slo) -> np.ndarray:
    """Which successful requests met every threshold (columns aligned, one row per successful request)."""
    n = len(values["ttft"])
    good = np.ones(n, dtype=bool)
    for metric, limit in slo.limits.items():
        column = values[COLUMN_OF[metric]]
        good &= ~(column > limit)  # NaN (the request has no such figure) does not count against it
    return good


def goodput(values: dict[str, np.ndarray], slo: Slo, duration: float, failed: int = 0) -> dict[str, float]:
    """``request_goodput``, ``good_share``, ``good_output_throughput`` and ``good_requests`` (empty: no SLO).

    ``values`` hold the successful requests; ``failed`` counts the requests that failed in the same span: they are
    never good, and ``good_share`` counts them among the requests that ended."""
    if not slo:
        return {}
    good = good_mask(values, slo)
    n_good = int(good.sum())
    tokens = float(np.nansum(values["output_tokens"][good])) if n_good else 0.0
    ended = len(good) + failed
    return {
        "good_requests": n_good,
        "good_share": n_good / ended if ended else 0.0,
        "request_goodput": n_good / duration if duration > 0 else 0.0,
        "good_output_throughput": tokens / duration if duration > 0 else 0.0,
    }
