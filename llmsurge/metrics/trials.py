"""Repeated trials (``llmsurge run --repeat N``): the same workload run N times with fresh seeds, each figure's mean
across the trials and its 95% confidence interval (Student's t over the trials' values).

Requests inside one run are not independent samples of the next run — they share the server's batches, its queue
and its cache — so the spread of whole trials is the honest answer to "is this difference real?". The aggregate
``summary.json`` holds the figures' means (counts summed over the trials) and a ``trials`` block; ``compare`` uses
the trials' spread as a row's noise when both runs have it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from llmsurge.metrics.figures import FIGURES
from llmsurge.metrics.model import Level, RunSummary, TrialFigure, Trials
from llmsurge.metrics.stats import t_95, variance_of_mean

COUNTS = (
    "completed", "failed", "cancelled", "total_input_tokens", "total_output_tokens", "output_tokens_estimated",
    "cached_prompt_tokens",
)  # fmt: skip
"""Level fields summed over the trials (the aggregate holds every trial's requests)."""
RATES = ("duration", "error_rate", "prefix_cache_hit_rate", "request_throughput", "output_throughput",
         "total_token_throughput")  # fmt: skip
"""Level fields averaged over the trials."""


def trial_figure(values: list[float]) -> TrialFigure:
    """The trials' mean of one figure and its 95% interval (Student's t, n − 1 degrees of freedom)."""
    mean = sum(values) / len(values)
    half = t_95(len(values) - 1) * math.sqrt(variance_of_mean(values)) if len(values) > 1 else 0.0
    return TrialFigure(mean=mean, low=mean - half, high=mean + half, values=tuple(values))


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _mean_level(levels: list[Level]) -> Level:
    """One level's figures over the trials: counts summed, rates and every other figure averaged (a figure some
    trial lacks is left out)."""
    first = levels[0]
    counts = {k: sum(getattr(lv, k) for lv in levels) for k in COUNTS}
    rates: dict[str, float | None] = {}
    for k in RATES:
        values = [getattr(lv, k) for lv in levels]
        rates[k] = sum(values) / len(values) if all(_finite(v) for v in values) else None
    keys = set(first.figures).intersection(*(lv.figures for lv in levels[1:]))
    figures = {k: sum(lv.figures[k] for lv in levels) / len(levels) for k in first.figures if k in keys}
    errors: dict[str, int] = {}
    for lv in levels:
        for kind, n in lv.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    return replace(
        first,
        **counts,
        duration=rates["duration"] or 0.0,
        error_rate=rates["error_rate"] or 0.0,
        prefix_cache_hit_rate=rates["prefix_cache_hit_rate"],
        request_throughput=rates["request_throughput"],
        output_throughput=rates["output_throughput"],
        total_token_throughput=rates["total_token_throughput"],
        errors=errors,
        figures=figures,
        start_time=None,
        delivered_output_tokens=None,
        schedule=None,
        turns=(),
        reasoning=None,
        quality=None,
        server_timings=None,
        client=None,
        telemetry={},
        reconciliation=None,
        reconciliation_per_request=None,
        roofline=None,
        degenerate=sum(lv.degenerate for lv in levels),
        short_outputs=sum(lv.short_outputs for lv in levels),
        starved=any(lv.starved for lv in levels),
    )


def aggregate(trials: list[RunSummary], folders: list[str], seeds: list[int]) -> RunSummary:
    """The repeated run's summary: every figure's mean over the trials (counts summed), its segments likewise where
    every trial ran the same loads, and ``trials`` — per figure its mean, 95% interval and each trial's value."""
    runs = [t.run for t in trials]
    figures: dict[str, TrialFigure] = {}
    for f in FIGURES:
        values = [lv.value(f.key) for lv in runs]
        if all(_finite(v) for v in values):
            figures[f.key] = trial_figure([float(v) for v in values if v is not None])
    same_loads = len({tuple(s.load for s in t.segments) for t in trials}) == 1
    segments = (
        tuple(_mean_level([t.segments[i] for t in trials]) for i in range(len(trials[0].segments)))
        if same_loads
        else ()
    )
    plural = "s" if len(trials) != 1 else ""
    listed = ", ".join(map(str, seeds))
    notes = [f"{len(trials)} trial{plural} of the same workload (seed{plural} {listed}); each in its folder"]
    if not same_loads:
        notes.append("the trials ran different loads (steered or stopped early): their segments are not averaged")
    last = trials[-1]
    return replace(
        last,
        run=_mean_level(runs),
        segments=segments,
        notes=tuple(notes) + tuple(n for t in trials for n in t.notes if n not in notes),
        telemetry={},
        roofline=None,
        capacity=None,
        trials=Trials(n=len(trials), seeds=tuple(seeds), folders=tuple(folders), figures=figures),
    )
