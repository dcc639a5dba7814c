"""The one place that defines aggregate statistics: vLLM bench serve's formulas and key names."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
SERVER_CLOCK = ("server_ttft", "server_queue", "server_prefill", "server_decode")
"""Per request, where the server says (llama.cpp's timings, vLLM's per-request metrics): its own TTFT, queue
(NaN where it does not say), prefill and decode, in ms — a segment's reconciliation where /metrics has no phase
histograms."""
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


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """One figure's values in milliseconds: how many, mean, median, std (population) and percentiles — what a pane
    reads (``at``, ``thin``) and what ``summary.json`` spells out (``keys``: vLLM's names)."""

    n: int = 0
    mean: float = 0.0
    median: float = 0.0
    std: float = 0.0
    quantiles: tuple[tuple[float, float], ...] = ()

    @classmethod
    def of_seconds(
        cls, seconds: Sequence[float] | np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
    ) -> Distribution:
        """The distribution of ``seconds`` (shown in ms); empty input gives zeros, as vLLM's JSON does."""
        arr = np.asarray(seconds, dtype=np.float64) * 1000.0
        if arr.size == 0:
            return cls(quantiles=tuple((float(q), 0.0) for q in percentiles))
        qs: list[float] = np.percentile(arr, list(percentiles)).tolist() if len(percentiles) else []
        return cls(
            n=int(arr.size),
            mean=float(np.mean(arr)),
            median=float(np.median(arr)),
            std=float(np.std(arr)),
            quantiles=tuple((float(q), float(v)) for q, v in zip(percentiles, qs, strict=True)),
        )

    @classmethod
    def of_sketch(cls, sketch: ItlSketch, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Distribution:
        """A sketch's values: exact while it keeps them all, else within its error."""
        if sketch.exact is not None or not sketch.count:
            return cls.of_seconds(sketch.exact if sketch.exact is not None else [], percentiles)
        n = sketch.count
        mean = sketch.sum / n
        return cls(
            n=n,
            mean=mean * 1000.0,
            median=sketch.quantile(0.5) * 1000.0,
            std=math.sqrt(max(0.0, sketch.sumsq / n - mean * mean)) * 1000.0,
            quantiles=tuple((float(q), sketch.quantile(q / 100.0) * 1000.0) for q in percentiles),
        )

    def at(self, q: float) -> float | None:
        """Percentile ``q`` in ms (50: the median); None when there are no values or ``q`` was not computed."""
        if not self.n:
            return None
        for k, v in self.quantiles:
            if k == q:
                return v
        return self.median if q == 50.0 else None

    def thin(self, q: float) -> bool:
        """Whether percentile ``q`` rests on too few values to be more than the maximum (:func:`thin`)."""
        return thin(self.n, q)

    def keys(self, name: str, with_n: bool = False) -> dict[str, float]:
        """``mean_<name>_ms``, ``median_…``, ``std_…``, ``p<q>_…`` (and ``n_<name>``): the summary's spelling."""
        out = {f"mean_{name}_ms": self.mean, f"median_{name}_ms": self.median, f"std_{name}_ms": self.std}
        out.update({quantile_key(q, name): v for q, v in self.quantiles})
        if with_n:
            out[f"n_{name}"] = self.n
        return out


EMPTY = Distribution()


BUNCHED_NOTE = 0.1
"""A tenth of the ITL gaps bunched: ITL is then read per chunk, and TPOT is the per-token figure."""


@dataclass(frozen=True, kw_only=True)
class Figures:
    """A scope's statistics (one segment, or the run), typed for the panes: a :class:`Distribution` per latency
    figure, goodput against the SLO, realised lengths and, in open loop, how well the schedule was kept.
    :meth:`keys` gives the same figures under ``summary.json``'s names."""

    latency: Mapping[str, Distribution] = field(default_factory=dict)
    good: Mapping[str, float] = field(default_factory=dict)
    """``good_requests``, ``good_share``, ``request_goodput``, ``good_output_throughput`` (empty: no SLO)."""
    input_mean: float = 0.0
    input_p90: float = 0.0
    output_mean: float = 0.0
    output_p90: float = 0.0
    lag_p99_ms: float | None = None
    """Open loop: p99 of how late requests left against their schedule (None: nothing was scheduled)."""
    late_share: float = 0.0
    schedule_kept: bool = True
    itl_bunched_share: float | None = None
    """Share of ITL gaps under 0.1 ms: chunks the server wrote together (ITL is then per chunk, TPOT per token)."""

    def __getitem__(self, name: str) -> Distribution:
        """``figures["ttft"]``: a latency figure's distribution (empty when it has none)."""
        return self.latency.get(name, EMPTY)

    @property
    def good_share(self) -> float | None:
        """Good share of the requests that ended (None: no SLO)."""
        return self.good.get("good_share")

    @property
    def request_goodput(self) -> float | None:
        """Good requests per second (None: no SLO)."""
        return self.good.get("request_goodput")

    def keys(self) -> dict[str, float]:
        """The latency block and goodput under ``summary.json``'s (vLLM's) names, with ``n_<figure>``."""
        out: dict[str, float] = {}
        for name, dist in self.latency.items():
            out.update(dist.keys(name, with_n=True))
        if self.itl_bunched_share is not None:
            out["itl_bunched_share"] = self.itl_bunched_share
        out.update(self.good)
        return out

    @property
    def bunched(self) -> bool:
        """Whether enough ITL gaps are bunched (:data:`BUNCHED_NOTE`) that ITL must be read per chunk."""
        return (self.itl_bunched_share or 0.0) >= BUNCHED_NOTE


def describe_ms(
    name: str, seconds: Sequence[float] | np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, float]:
    """``mean_<name>_ms``, ``median_…``, ``std_…`` (population) and ``p<q>_…`` from values in seconds.

    Empty input gives 0.0 for every key, as vLLM does, so JSON stays numeric.
    """
    return Distribution.of_seconds(seconds, percentiles).keys(name)


def latency_distributions(
    per_request: Mapping[str, np.ndarray], itl: ItlSketch, percentiles: Sequence[float] = DEFAULT_PERCENTILES
) -> dict[str, Distribution]:
    """Every latency figure of a segment or a run: TTFT, TTFC, TPOT, E2EL exact (NaN rows dropped: aligned
    columns hold NaN where a request has no such figure), ITL from its sketch."""
    out: dict[str, Distribution] = {}
    for name in PER_REQUEST:
        values = np.asarray(per_request.get(name, np.empty(0)))
        out[name] = Distribution.of_seconds(values[~np.isnan(values)], percentiles)
    out["itl"] = Distribution.of_sketch(itl, percentiles)
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


def pooling_block(inputs: int, duration: float, delivered: int, delivered_tokens: int) -> dict[str, float]:
    """Embeddings and rerank (nothing for a generation): ``total_inputs`` of the requests counted in the scope, and
    per second what was delivered over its duration (a segment: what arrived while it was open, as its other
    throughputs)."""
    if not inputs and not delivered:
        return {}
    per_s = 1.0 / duration if duration > 0 else 0.0
    return {
        "total_inputs": inputs,
        "input_throughput": delivered * per_s,
        "input_token_throughput": delivered_tokens * per_s,
    }


def error_rate(completed: int, failed: int) -> float:
    """Failed share of the requests that ended on their own (cancelled ones are not counted)."""
    ended = completed + failed
    return failed / ended if ended else 0.0


LENGTHS = ("input_tokens", "output_tokens")


def length_figures(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Realised prompt and output lengths of the successful requests: ``mean_`` and ``p90_input_tokens`` /
    ``…_output_tokens`` (0 when none succeeded). The one definition: the live summary and ``report`` both read it."""
    out: dict[str, float] = {}
    for name in LENGTHS:
        v = values[name]
        out[f"mean_{name}"] = float(v.mean()) if v.size else 0.0
        out[f"p90_{name}"] = float(np.percentile(v, 90)) if v.size else 0.0
    return out


_T_95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23, 15: 2.13, 20: 2.09}


def t_95(df: int) -> float:
    """Student's t, two-sided 95%, for ``df`` degrees of freedom (rounded down to the table; 1.96 past 30)."""
    if df > 30:
        return 1.96
    return _T_95[max([k for k in _T_95 if k <= df], default=1)]


def variance_of_mean(values: Sequence[float]) -> float:
    """The sample variance of ``values`` over their count: the squared standard error of their mean (0 for fewer
    than two)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return sum((v - mean) ** 2 for v in values) / (n - 1) / n
