"""Baseline against candidate: the same figures side by side per load level, each change with its direction and,
where the runs kept their per-request values, whether it is bigger than the runs' own noise.

An arrow (better/worse) means a change beyond the runs' noise, never less. Noise is estimated per row:

- a per-request figure (a TTFT percentile, say): requests inside one run are not independent samples — requests
  served at the same time share the server's batches and queue — so the difference's standard error is
  bootstrapped by *blocks* of consecutive requests (in the order they were sent; ``max(√n, 2 × in flight)`` of them
  a block: :func:`block_length`; 1,000 resamples of each run), or value by value where that is larger (blocks in
  step with a closed loop's waves all hold the same mix), and widened by Student's t for that many blocks;
- a throughput: each run's rate in :data:`WINDOWS` equal windows of its level, their spread giving the rate's
  standard error (a t interval on the difference);
- an error rate or a good share: the two proportions' standard error.

When the interval holds zero — or the change is under :data:`RESOLUTION` (timer and storage resolution, and the
drift no one would act on) — the change is "within noise", whatever its sign. A row with no estimate (the server's
clock, GPU telemetry: one figure per run) shows its change without an arrow (marked †). Calibrated against the
simulated server (``python -m bench.calibrate_compare``): bench/RESULTS.md, "compare's noise, calibrated".
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsurge.metrics import model
from llmsurge.metrics.figures import FIGURE, Figure
from llmsurge.metrics.model import LLMSURGE, JsonObject
from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.stats import t_95, thin, variance_of_mean
from llmsurge.redaction import shown

BOOTSTRAP = 1000
CONFIDENCE = 0.95
RESOLUTION = 0.02
"""Relative changes smaller than this are not reported as changes: timer and storage resolution, and the drift
between two runs of the very same setup on a shared machine (1–2%, which resampling one run's requests cannot
see), which no one would act on."""
_BATCH = 50


Metric = Figure
"""A row of the comparison: a figure (:mod:`llmsurge.metrics.figures`), the one place its label, unit and
direction are defined."""


def _extra(key: str, label: str, unit: str, definition: str, lower_is_better: bool = True) -> Figure:
    """A row that is not a summary figure of its own (the server's clock, GPU telemetry, a breakdown)."""
    return Figure(key=key, title=label, label=label, unit=unit, definition=definition, lower_is_better=lower_is_better)


AMOUNTS = ("W", "GiB", "tok/J")
"""Units of quantities rather than speeds: their changes read "higher"/"lower", not "faster"/"slower"."""
REFEREE = "reconciliation."
"""Keys under a segment's ``reconciliation`` (the server's clock): rows only when both runs carry it."""
COMPARED = (
    "request_throughput",
    "output_throughput",
    *(f"{stat}_{m}_ms" for m in ("ttft", "tpot", "itl", "e2el") for stat in ("median", "p90", "p99", "mean")),
)
"""The summary figures compared, in the table's order (the server's rows, error rate and goodput follow)."""

METRICS: tuple[Figure, ...] = (
    *(FIGURE[k] for k in COMPARED),
    _extra(REFEREE + "server_ttft_ms_mean", "server's TTFT (its clock, mean)", "ms", "the server's own TTFT"),
    _extra(REFEREE + "server_queue_ms_mean", "server's queue (mean)", "ms", "time waiting in the server's queue"),
    _extra(REFEREE + "server_prefill_ms_mean", "server's prefill (mean)", "ms", "the server's prefill time"),
    _extra(REFEREE + "gap_ms_mean", "TTFT outside the server (mean)", "ms", "our TTFT less the server's"),
    _extra(REFEREE + "client_side_ms_mean", "  of which our loop lag", "ms", "our event loop's share of that gap"),
    FIGURE["error_rate"],
    FIGURE["request_goodput"],
    FIGURE["good_share"],
    _extra("gpu_power_w", "GPU power (mean)", "W", "mean GPU power over the level"),
    _extra("gpu_mem_used_gib", "GPU memory (peak)", "GiB", "peak GPU memory used"),
    _extra("tok_per_joule", "output tokens per joule", "tok/J", "output throughput over GPU power", False),
)


@dataclass
class Change:
    """How a candidate's figure differs from the baseline's."""

    text: str  # "-35.5%", "49x faster", "within noise", "n/a"
    better: bool | None  # None: no direction (equal, within noise, or unknown)
    interval: tuple[float, float] | None = None  # 95% interval of the difference, in the figure's unit
    noise_known: bool = False  # the runs kept per-request values and the interval was estimated
    thin: bool = False  # a percentile that rests on too few values in either run (starred, no direction)


@dataclass
class Row:
    """One figure across the runs."""

    metric: Metric
    values: list[float | None]
    changes: list[Change | None]  # one per run; None for the baseline


@dataclass
class Level:
    """The runs at one load (``c=32``), or their whole runs when their loads differ."""

    load: str
    rows: list[Row]


@dataclass
class Comparison:
    """Everything ``compare`` prints."""

    runs: list[SavedRun]
    levels: list[Level]
    notes: list[str] = field(default_factory=list)
    matched: bool = True  # levels matched by load (False: whole-run figures, the loads differ)


def speed_change(base: float, new: float, lower_is_better: bool, amount: bool = False) -> tuple[str, bool | None]:
    """``+12.5%`` / ``-35.5%`` within 2x; past it, ``49x faster`` or ``2.0x slower`` — the factor is always the
    larger over the smaller, as people write it (a TTFT from 71 to 143 ms is 2.0x slower, not 0.5x). ``amount``:
    a quantity, not a speed (watts, GiB, tokens per joule): ``4.5x higher`` / ``11x lower``."""
    if base == 0 or new == 0:
        return ("n/a", None) if base == new == 0 else (f"{'+' if new > base else '-'}∞", None)
    if base < 0 or new < 0:  # no figure compared this way is below zero: a file edited by hand
        return "n/a", None
    factor = base / new if lower_is_better else new / base
    better = None if abs(factor - 1) < RESOLUTION else factor > 1
    if factor >= 2 or factor <= 0.5:
        times = factor if factor > 1 else 1 / factor
        text = f"{times:.0f}x" if times >= 10 else f"{times:.1f}x"
        if amount:
            return f"{text} {'higher' if new > base else 'lower'}", factor > 1
        return (f"{text} faster", True) if factor > 1 else (f"{text} slower", False)
    return f"{(new - base) / base * 100:+.1f}%", better


def _stat(values: np.ndarray, stat: str, axis: int | None = None) -> Any:
    if stat == "mean":
        return values.mean(axis=axis)
    q = {"median": 50.0, "p90": 90.0, "p99": 99.0}[stat]
    return np.percentile(values, q, axis=axis)


def _resample(values: np.ndarray, rng: np.random.Generator, block: int | None = None) -> np.ndarray:
    """``_BATCH`` moving-block resamples of ``values`` (rows): blocks of ``block`` (default ``√n``) consecutive
    values, their starts drawn with replacement, cut to ``n`` — what a run's neighbouring requests share stays
    together (``block=1``: the plain bootstrap, as if every request were independent)."""
    n = len(values)
    block = block or max(1, round(math.sqrt(n)))
    blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, (_BATCH, blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(_BATCH, blocks * block)[:, :n]
    return values[idx]


def bootstrap_interval(
    base: np.ndarray, new: np.ndarray, stat: str, seed: int = 0, blocks: tuple[int | None, int | None] = (None, None)
) -> tuple[float, float]:
    """The 95% interval of ``stat(new) - stat(base)``. Its standard error is the larger of two bootstraps of each
    run's values (in the order the requests were sent): by blocks of consecutive values (``blocks``: each run's
    block length, default ``√n``) — neighbours that shared the server's batches stay together — and value by value,
    which sees the spread that blocks in step with the load's own period hide (a closed loop's waves give every
    block the same mix). It is widened by Student's t for as many blocks as the run with fewer holds: a run of 100
    requests is a few independent blocks, not 100 samples."""
    rng = np.random.default_rng(seed)
    by_block, by_value = [], []
    for _ in range(BOOTSTRAP // _BATCH):
        a, b = _resample(base, rng, blocks[0]), _resample(new, rng, blocks[1])
        by_block.append(_stat(b, stat, axis=1) - _stat(a, stat, axis=1))
        a, b = _resample(base, rng, 1), _resample(new, rng, 1)
        by_value.append(_stat(b, stat, axis=1) - _stat(a, stat, axis=1))
    held = min(len(v) // (b or max(1, round(math.sqrt(len(v))))) for v, b in zip((base, new), blocks, strict=True))
    se = max(float(np.concatenate(by_block).std()), float(np.concatenate(by_value).std()))
    half = t_95(held - 1) * se
    diff = float(_stat(new, stat) - _stat(base, stat))
    return diff - half, diff + half


IN_FLIGHT_BLOCKS = 2.0
"""A block holds at least this many times the requests a level kept in flight (its throughput × mean E2EL, by
Little's law): requests served at the same time share the server's batches and queue, so they are one sample,
not several — and a block of them must outlast that sharing."""


def block_length(run: SavedRun, seg: model.Level, values: int, load: str | None) -> int:
    """A run's block length in values for the bootstrap: ``max(√requests, 2 × in flight)`` requests, in values
    (an ITL row has many values a request)."""
    e2el = run.values("e2el", load)
    requests = len(e2el) if e2el is not None and len(e2el) else values
    rate, e2el_ms = seg.value("request_throughput"), seg.value("mean_e2el_ms")
    in_flight = rate * e2el_ms / 1000.0 if rate is not None and rate == rate and e2el_ms is not None else 1
    per_block = max(math.sqrt(requests), IN_FLIGHT_BLOCKS * in_flight, 1.0)
    return max(1, min(values // 2, round(per_block * values / requests)))


def _figure(run: SavedRun, seg: model.Level, metric: Metric) -> float | None:
    """A figure of one level (telemetry-derived ones computed here)."""
    if metric.key.startswith(("gpu_", "tok_per")):
        return _gpu_figure(run, seg, metric.key)
    if BY in metric.key:  # a model's or a server's run-wide row
        kind, name, key = metric.key.split(BY)
        value = run.summary.breakdown.get(kind, {}).get(name, {}).get(key)
        return float(value) if isinstance(value, (int, float)) else None
    if metric.key.startswith(REFEREE):
        if seg.reconciliation is None:
            return None
        value = getattr(seg.reconciliation.result, metric.key.removeprefix(REFEREE), None)
        return float(value) if isinstance(value, (int, float)) else None
    value = seg.value(metric.key)
    if value is None or value != value:
        return None
    if metric.unit == "%":
        return value * 100.0
    return value


def _gpu_figure(run: SavedRun, seg: model.Level, key: str) -> float | None:
    if run.source != LLMSURGE:
        return None
    gpu: JsonObject | None = seg.telemetry.get("gpu")
    if seg.segment is None:  # the whole run: the sampler's run-wide figures
        sampler = run.summary.telemetry.get("gpu") or {}
        gpu = (sampler.get("segments") or {}).get("run")
    if not gpu:
        return None
    power, mem = gpu.get("mean_gpu_power_w"), gpu.get("peak_gpu_mem_used_mib")
    if key == "gpu_power_w":
        return power
    if key == "gpu_mem_used_gib":
        return None if mem is None else mem / 1024.0
    tput = seg.output_throughput
    return tput / power if power and tput is not None else None


def _row(runs: list[SavedRun], segs: list[model.Level], metric: Metric, load: str | None) -> Row | None:
    values = [_figure(r, s, metric) for r, s in zip(runs, segs, strict=True)]
    if all(v is None for v in values[1:]) or values[0] is None:
        return None
    changes: list[Change | None] = [None]
    for run, seg, value in zip(runs[1:], segs[1:], values[1:], strict=True):
        change = _change((runs[0], run), (segs[0], seg), (values[0], value), metric, load)
        if _thin(segs[0], metric) or _thin(seg, metric):
            change = dataclasses.replace(change, better=None, thin=True)
        changes.append(change)
    return Row(metric, values, changes)


def _thin(seg: model.Level, metric: Metric) -> bool:
    """A p90/p99 that rests on fewer values than it needs (the one rule, :func:`stats.thin`)."""
    q = {"p90": 90.0, "p99": 99.0}.get(metric.stat or "")
    if q is None or metric.metric is None:
        return False
    return thin(seg.n(metric.metric), q)


def _change(
    runs: tuple[SavedRun, SavedRun],
    segs: tuple[model.Level, model.Level],
    values: tuple[float | None, float | None],
    metric: Metric,
    load: str | None,
) -> Change:
    """The change of one figure, with an arrow only when it is beyond the noise estimated for it."""
    base, new = values
    if base is None or new is None:
        return Change("n/a", None)
    if metric.key in PROPORTIONS:
        diff = new - base
        better = None if abs(diff) < 1e-9 else (diff < 0) == metric.lower_is_better
        text = f"{diff:+.2f} pts"
    else:
        text, better = speed_change(base, new, metric.lower_is_better is not False, amount=metric.unit in AMOUNTS)
        better = better if metric.lower_is_better is not None else None  # a count: no better or worse
    interval = _interval(runs, segs, (base, new), metric, load)
    if interval is None:
        return Change(text, None)  # no noise estimate: the change, without a direction (†)
    lo, hi = interval
    if better is None or lo <= 0 <= hi or abs(new - base) < RESOLUTION * abs(base):
        return Change("within noise", None, interval, True)
    return Change(text, better, interval, True)


PROPORTIONS = ("error_rate", "good_share")
"""Rows that are a share of a level's requests (in %): their noise is the two proportions' standard error."""
THROUGHPUTS = ("request_throughput", "output_throughput")
WINDOWS = 6
"""A throughput's noise: the run's rate in (at most) this many equal windows of its level."""


def _interval(
    runs: tuple[SavedRun, SavedRun],
    segs: tuple[model.Level, model.Level],
    values: tuple[float, float],
    metric: Metric,
    load: str | None,
) -> tuple[float, float] | None:
    """The 95% interval of the difference (candidate − baseline) in the figure's unit, or None when the runs hold
    nothing to estimate it from."""
    diff = values[1] - values[0]
    trials = _trials_interval(runs, metric, load, diff)
    if trials is not None:
        return trials
    if metric.stat is not None and metric.metric is not None:
        a, b = (r.values(metric.metric, load) for r in runs)
        if a is None or b is None or len(a) < 2 or len(b) < 2:
            return None
        blocks = (block_length(runs[0], segs[0], len(a), load), block_length(runs[1], segs[1], len(b), load))
        return bootstrap_interval(a, b, metric.stat, blocks=blocks)
    if metric.key in PROPORTIONS:
        ns = [s.ended for s in segs]
        if not all(ns):
            return None
        # a zero count still has an uncertainty: one pseudo-request each way (Agresti–Caffo)
        ps = [(v / 100.0 * n + 1) / (n + 2) for v, n in zip(values, ns, strict=True)]
        se = math.sqrt(sum(p * (1 - p) / (n + 2) for p, n in zip(ps, ns, strict=True))) * 100.0
        return diff - 1.96 * se, diff + 1.96 * se
    if metric.key in THROUGHPUTS:
        found = [
            _rate_se(r, seg, load, tokens=metric.key == "output_throughput") for r, seg in zip(runs, segs, strict=True)
        ]
        if found[0] is None or found[1] is None:
            return None
        (se_a, w_a), (se_b, w_b) = found[0], found[1]
        half = t_95(w_a + w_b - 2) * math.sqrt(se_a * se_a + se_b * se_b)
        return diff - half, diff + half
    return None


def _trials_interval(
    runs: tuple[SavedRun, SavedRun], metric: Metric, load: str | None, diff: float
) -> tuple[float, float] | None:
    """Where both runs were repeated (``--repeat``): the difference of the trials' means, ± Student's t (on the
    fewer trials' degrees of freedom) times its standard error — whole trials are the independent samples. Only for
    the whole run, or a run of one load level (the trials' figures are the run's)."""
    figures = []
    for run in runs:
        trials = run.summary.trials
        if trials is None or (load is not None and len(run.segments) != 1):
            return None
        tf = trials.figures.get(metric.key)
        if tf is None or len(tf.values) < 2:
            return None
        figures.append(tf)
    scale = 100.0 if metric.unit == "%" else 1.0  # a share's row is in percentage points
    se = scale * math.sqrt(sum(variance_of_mean(tf.values) for tf in figures))
    half = t_95(min(len(tf.values) for tf in figures) - 1) * se
    return diff - half, diff + half


def _rate_se(run: SavedRun, seg: model.Level, load: str | None, tokens: bool) -> tuple[float, int] | None:
    """The standard error of a run's request (or output-token) rate over its level, and the windows it rests on:
    the rates in equal windows of the level — each at least two mean E2ELs long (completions come in waves as long
    as a request), at most :data:`WINDOWS` of them — their standard deviation over √windows."""
    found = run.arrivals(load)
    if found is None:
        return None
    ends, out, t0, t1 = found
    e2el_ms = seg.value("mean_e2el_ms")
    request_s = e2el_ms / 1000.0 if e2el_ms is not None and e2el_ms > 0 else 0.0
    windows = min(WINDOWS, int((t1 - t0) / (2 * request_s)) if request_s else WINDOWS)
    if windows < 2 or len(ends) < windows:
        return None
    width = (t1 - t0) / windows
    which = np.minimum(((ends - t0) / width).astype(np.int64), windows - 1)
    rates = np.bincount(which, weights=out if tokens else None, minlength=windows) / width
    return float(rates.std(ddof=1) / math.sqrt(windows)), windows


def _placed(runs: list[SavedRun], segs: list[model.Level]) -> list[str]:
    """Where a change of mean TTFT lies, by the server's clock, for each candidate whose level and the baseline's
    both carry a reconciliation: on the server (its TTFT moved as much), or outside it."""
    if segs[0].reconciliation is None:
        return []
    base = segs[0].reconciliation.result
    out = []
    for run, seg in zip(runs[1:], segs[1:], strict=True):
        if seg.reconciliation is None:
            continue
        rec = seg.reconciliation.result
        ours = rec.client_ttft_ms_mean - base.client_ttft_ms_mean
        server = rec.server_ttft_ms_mean - base.server_ttft_ms_mean
        if abs(ours) < max(1.0, RESOLUTION * base.client_ttft_ms_mean):
            continue
        outside = ours - server
        mine = rec.client_side_ms_mean - base.client_side_ms_mean
        if abs(server) >= abs(outside):
            where = f"on the server: its own TTFT moved {server:+.1f} ms"
        elif abs(mine) >= abs(outside - mine):
            where = f"on the client: our loop lag's share moved {mine:+.1f} ms (the server's TTFT {server:+.1f} ms)"
        else:
            where = (
                f"outside the server's clock — its HTTP front end or the network — {outside:+.1f} ms"
                f" (the server's TTFT {server:+.1f} ms, our loop lag's share {mine:+.1f} ms)"
            )
        out.append(f"{run.label}: mean TTFT {ours:+.1f} ms, {where}")
    return out


def _load_value(load: str) -> float:
    m = re.match(r"^[cr]=([0-9.]+)", load)
    return float(m.group(1)) if m else float("inf")


def compare(runs: list[SavedRun]) -> Comparison:
    """The runs against the first (the baseline): per common load level, or whole runs when none is shared."""
    if len(runs) < 2:
        raise ValueError("compare needs a baseline and at least one candidate")
    common = [
        s.load for s in runs[0].segments if s.load != "paused" and all(r.level(s.load) for r in runs[1:])
    ]  # a pause's segment holds no load to compare
    common = list(dict.fromkeys(common))  # each load once, in the baseline's order
    levels: list[Level] = []
    notes: list[str] = []
    if common:
        for load in sorted(common, key=_load_value):
            segs = [s for r in runs if (s := r.level(load)) is not None]
            rows = [row for m in METRICS if (row := _row(runs, segs, m, load)) is not None]
            levels.append(Level(load, rows))
            notes += [f"{load}: {said}" for said in _placed(runs, segs)]
        matched = True
    else:
        loads = ["/".join(s.load for s in r.segments) for r in runs]
        notes.append(f"the runs' load levels differ ({' vs '.join(loads)}): whole-run figures are compared")
        segs = [r.summary.run for r in runs]
        rows = [row for m in METRICS if (row := _row(runs, segs, m, None)) is not None]
        levels.append(Level("whole run", rows))
        matched = False
    for kind, title in (("models", "per model (whole runs)"), ("targets", "per server (whole runs)")):
        names = [
            n
            for n in runs[0].summary.breakdown.get(kind, {})
            if all(n in r.summary.breakdown.get(kind, {}) for r in runs)
        ]
        if names:
            segs = [r.summary.run for r in runs]
            metrics = [m for n in names for m in _breakdown_metrics(kind, n)]
            levels.append(Level(title, [row for m in metrics if (row := _row(runs, segs, m, None)) is not None]))
    notes += differences(runs)
    notes.append("† one figure per run (or no per-request values kept): no noise estimate, so no direction")
    return Comparison(runs, levels, notes, matched)


def differences(runs: list[SavedRun]) -> list[str]:
    """What differs between the runs besides the change being measured: the model, the server (its kind and URL)
    — said, so that a difference is not read as the change's."""
    out = []
    facts: dict[str, list[object]] = {
        "models": [r.summary.model_id for r in runs],
        "servers": [_server(r) for r in runs],
    }
    for what, values in facts.items():
        if len({str(v) for v in values if v}) > 1:
            listed = " vs ".join(shown(v or "?", limit=60) for v in values)
            out.append(f"the runs' {what} differ ({listed}): a difference may be theirs, not the change's")
    return out


def _server(run: SavedRun) -> str:
    """A run's server as ``kind at URL`` (a vLLM result: its backend)."""
    kind = run.summary.server.get("kind") or run.summary.backend or run.summary.extra.get("backend")
    url = run.summary.config.get("url")
    return " at ".join(str(x) for x in (kind, url) if x)


BY = "\x1f"
"""Separates kind, name and key in a breakdown row's metric key (names are URLs: they hold dots)."""


def _breakdown_metrics(kind: str, name: str) -> list[Metric]:
    """A model's or a server's rows: TTFT p50/p99 and failures."""
    label = shown(name, limit=60)  # a model id or a URL: outside text
    return [
        _extra(f"{kind}{BY}{name}{BY}p50_ttft_ms", f"{label} TTFT p50", "ms", "its requests' median TTFT"),
        _extra(f"{kind}{BY}{name}{BY}p99_ttft_ms", f"{label} TTFT p99", "ms", "its requests' p99 TTFT"),
        _extra(f"{kind}{BY}{name}{BY}failed", f"{label} failed", "requests", "its failed requests"),
    ]


def saturation_curves(runs: list[SavedRun]) -> dict[str, list[tuple[float, float, float]]]:
    """Per run: (load, output tok/s, TTFT p99 ms) at each level, in load order (the saturation curve)."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for run in runs:
        points = [
            (_load_value(s.load), float(s.output_throughput or 0), float(s.value("p99_ttft_ms") or 0))
            for s in run.segments
            if s.completed
        ]
        out[run.label] = sorted(p for p in points if p[0] != float("inf"))
    return out
