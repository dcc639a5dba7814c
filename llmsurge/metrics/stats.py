"""The one place that defines aggregate statistics: vLLM bench serve's formulas and key names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
METRICS = ("ttft", "tpot", "itl", "e2el")


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """numpy's linear-method percentile; NaN when there are no values."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan")
    return float(np.percentile(arr, q))


def describe_ms(
    name: str, seconds: Sequence[float] | np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float]:
    """``mean_<name>_ms``, ``median_…``, ``std_…`` (population) and ``p<q>_…`` from values in seconds.

    Empty input gives 0.0 for every key, as vLLM does, so JSON stays numeric.
    """
    arr = np.asarray(seconds, dtype=np.float64) * 1000.0
    out: dict[str, float] = {}
    if arr.size == 0:
        out[f"mean_{name}_ms"] = 0.0
        out[f"median_{name}_ms"] = 0.0
        out[f"std_{name}_ms"] = 0.0
        for q in percentiles:
            out[f"p{_qname(q)}_{name}_ms"] = 0.0
        return out
    out[f"mean_{name}_ms"] = float(np.mean(arr))
    out[f"median_{name}_ms"] = float(np.median(arr))
    out[f"std_{name}_ms"] = float(np.std(arr))
    qs = np.percentile(arr, list(percentiles))
    for q, v in zip(percentiles, qs, strict=False):
        out[f"p{_qname(q)}_{name}_ms"] = float(v)
    return out


def _qname(q: float) -> str:
    """``99.0`` → ``99``, ``99.9`` → ``99.9`` (vLLM's key spelling)."""
    return str(int(q)) if float(q).is_integer() else str(q)


def throughput(completed: int, input_tokens: int, output_tokens: int, duration: float) -> dict[str, float]:
    """``request_throughput``, ``output_throughput`` and ``total_token_throughput`` per second."""
    d = duration if duration > 0 else float("nan")
    return {
        "request_throughput": completed / d if duration > 0 else 0.0,
        "output_throughput": output_tokens / d if duration > 0 else 0.0,
        "total_token_throughput": (input_tokens + output_tokens) / d if duration > 0 else 0.0,
    }


def error_rate(completed: int, failed: int) -> float:
    """Failed share of the requests that ended on their own (cancelled ones are not counted)."""
    ended = completed + failed
    return failed / ended if ended else 0.0
