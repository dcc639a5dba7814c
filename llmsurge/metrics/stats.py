"""The one place that defines aggregate statistics: vLLM bench serve's formulas and key names."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from llmsurge.metrics.sketch import ItlSketch

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
METRICS = ("ttft", "tpot", "itl", "e2el")
PER_REQUEST = ("ttft", "ttfc", "tpot", "e2el")
"""Figures kept exactly, one value per request (ITL, one per token, is sketched)."""
ALIGNED = (*PER_REQUEST, "itl_max", "output_tokens", "input_tokens")
"""One row per successful request, in the same order in every column (NaN where a request has no such figure):
what an SLO judges a request on."""
SCHEDULED = ("client_wait", "e2el_sched")
SEND_LAG = "send_lag"
"""Open loop: how late every request left against its schedule (ok or not): schedule fidelity."""
"""Open loop only: how late we sent a request after its scheduled time (a wait for a free slot under
``max_concurrency``, or a late client), and E2EL counted from the scheduled time."""
TURNS = ("turn", "turn_ttft", "turn_prompt", "turn_cached")
"""Multi-turn chats only, one row per successful turn: its index, TTFT, prompt tokens and cached prompt tokens
(NaN: not reported), so turn 1 can be held against later turns (does the server reuse the history's cache?)."""
REASONING = ("ttfr", "answer_ttfc", "reasoning")
"""Reasoning models only, one row per successful request that reasoned: time to the first reasoning token, to the
first answer token, and the reasoning chunks received."""
SUPPORT = {50.0: 2, 90.0: 10, 99.0: 100, 99.9: 1000}
"""Samples a percentile needs before it says more than the maximum does (p99 of 9 values is the largest one)."""


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """numpy's linear-method percentile; NaN when there are no values."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan")
    return float(np.percentile(arr, q))


def quantile_key(q: float, name: str) -> str:
    """``p99_ttft_ms``; ``99.9`` → ``p99.9_…`` (vLLM's key spelling)."""
    qname = str(int(q)) if float(q).is_integer() else str(q)
    return f"p{qname}_{name}_ms"


def min_samples(q: float) -> int:
    """How many values percentile ``q`` needs to be more than the maximum in disguise (about 1 / (1 - q))."""
    return SUPPORT.get(q, max(2, round(1.0 / max(1e-9, 1.0 - q / 100.0))))


def thin(n: int, q: float) -> bool:
    """Whether percentile ``q`` of ``n`` values rests on too few to be more than their maximum (shown starred).
    The one rule: the panes, the headless tables and ``compare`` all ask it."""
    return bool(q) and 0 < n < min_samples(q)


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
            out[quantile_key(q, name)] = 0.0
        return out
    out[f"mean_{name}_ms"] = float(np.mean(arr))
    out[f"median_{name}_ms"] = float(np.median(arr))
    out[f"std_{name}_ms"] = float(np.std(arr))
    qs = np.percentile(arr, list(percentiles))
    for q, v in zip(percentiles, qs, strict=False):
        out[quantile_key(q, name)] = float(v)
    return out


def latency_block(
    per_request: dict[str, np.ndarray], itl: ItlSketch, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float]:
    """Every latency key of a segment or a run (TTFT, TTFC, TPOT, E2EL exact; ITL from its sketch), plus
    ``n_<metric>``: how many values each stands on. Snapshots and summaries both use this one block."""
    out: dict[str, float] = {}
    for name in PER_REQUEST:
        values = np.asarray(per_request.get(name, np.empty(0)))
        values = values[~np.isnan(values)]  # aligned columns hold NaN where a request has no such figure
        out.update(describe_ms(name, values, percentiles))
        out[f"n_{name}"] = len(values)
    if itl.count:
        out.update(describe_sketch_ms("itl", itl, percentiles))
    else:
        out.update(describe_ms("itl", [], percentiles))
    out["n_itl"] = itl.count
    return out


def describe_sketch_ms(name: str, sketch: ItlSketch, percentiles: Sequence[float]) -> dict[str, float]:
    """:func:`describe_ms` of a sketch's values: exact while it keeps them all, else within its error."""
    if sketch.exact is not None:
        return describe_ms(name, sketch.exact, percentiles)
    n = sketch.count
    mean = sketch.sum / n
    var = max(0.0, sketch.sumsq / n - mean * mean)
    out = {
        f"mean_{name}_ms": mean * 1000.0,
        f"median_{name}_ms": sketch.quantile(0.5) * 1000.0,
        f"std_{name}_ms": math.sqrt(var) * 1000.0,
    }
    for q in percentiles:
        out[quantile_key(q, name)] = sketch.quantile(q / 100.0) * 1000.0
    return out


def throughput(completed: int, input_tokens: int, output_tokens: int, duration: float) -> dict[str, float]:
    """``request_throughput``, ``output_throughput`` and ``total_token_throughput`` per second."""
    if duration <= 0:
        return {"request_throughput": 0.0, "output_throughput": 0.0, "total_token_throughput": 0.0}
    return {
        "request_throughput": completed / duration,
        "output_throughput": output_tokens / duration,
        "total_token_throughput": (input_tokens + output_tokens) / duration,
    }


def error_rate(completed: int, failed: int) -> float:
    """Failed share of the requests that ended on their own (cancelled ones are not counted)."""
    ended = completed + failed
    return failed / ended if ended else 0.0
