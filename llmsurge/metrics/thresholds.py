"""``--fail-on``: thresholds on ``summary.json`` keys that make a headless run exit 1, for CI.

``p99_ttft_ms>500,error_rate>0.01,request_goodput<5`` checks the whole run; ``segments.p99_ttft_ms>500`` checks
every segment. Each breach is one line naming the key, the limit and the value.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from llmsurge.metrics.model import RunSummary

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_PART = re.compile(r"^\s*(segments\.)?([a-z0-9_.]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
_LATENCY_KEY = re.compile(r"^(mean|median|std|p\d+(\.\d+)?)_(ttft|ttfc|tpot|itl|e2el)_ms$")
COUNT_KEYS = frozenset(
    {
        "duration",
        "completed",
        "failed",
        "cancelled",
        "error_rate",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "good_output_throughput",
        "good_share",
    }
)


class ThresholdError(ValueError):
    """A ``--fail-on`` spec that cannot be read; the message names the part and the fix."""


@dataclass(frozen=True)
class Threshold:
    """``key op limit`` over the run, or over every segment when ``per_segment``."""

    key: str
    op: str
    limit: float
    per_segment: bool = False

    def __str__(self) -> str:
        return f"{'segments.' if self.per_segment else ''}{self.key}{self.op}{self.limit:g}"


def known_key(key: str) -> bool:
    """Whether ``key`` is a numeric key of ``summary.json`` (and of each segment)."""
    return key in COUNT_KEYS or bool(_LATENCY_KEY.match(key))


def parse_thresholds(spec: str | None) -> list[Threshold]:
    """``"p99_ttft_ms>500,error_rate>0.01"`` → thresholds; :class:`ThresholdError` naming a bad part."""
    if not spec:
        return []
    out = []
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _PART.match(part)
        if not m:
            quoting = (
                " (a > or < the shell saw unquoted became a redirection: quote it, --fail-on 'p99_ttft_ms>500')"
                if not any(c in part for c in "<>=")
                else ""
            )
            raise ThresholdError(
                f"--fail-on {part.strip()!r}: write KEY>VALUE or KEY<VALUE, e.g. p99_ttft_ms>500{quoting}"
            )
        per_segment, key, op, raw = bool(m.group(1)), m.group(2), m.group(3), m.group(4)
        if not known_key(key):
            raise ThresholdError(
                f"--fail-on {part.strip()!r}: {key!r} is not a summary.json key (e.g. p99_ttft_ms, error_rate,"
                " output_throughput, request_goodput)"
            )
        try:
            limit = float(raw)
        except ValueError:
            raise ThresholdError(f"--fail-on {part.strip()!r}: {raw!r} is not a number") from None
        if not math.isfinite(limit):
            raise ThresholdError(f"--fail-on {part.strip()!r}: the limit must be a finite number")
        out.append(Threshold(key, op, limit, per_segment))
    return out


def breaches(thresholds: list[Threshold], summary: RunSummary) -> list[str]:
    """One line per breached threshold: where, the key, the value and the limit."""
    lines = []
    for t in thresholds:
        scopes = (
            [(f"segment {s.segment} ({s.load})", s) for s in summary.segments]
            if t.per_segment
            else [("run", summary.run)]
        )
        for where, scope in scopes:
            value = scope.value(t.key)  # a latency where nothing succeeded has none (summary.json writes 0.0)
            if value is None or value != value:
                lines.append(f"{where}: {t.key} has no value (nothing to measure it on), limit {t.op}{t.limit:g}")
            elif _OPS[t.op](value, t.limit):
                lines.append(f"{where}: {t.key} = {value:,.4g}, breaching --fail-on {t}")
    return lines
