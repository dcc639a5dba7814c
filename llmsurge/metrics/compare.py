"""Baseline against candidate: the same figures side by side per load level, each change with its direction and,
where the runs kept their per-request values, whether it is bigger than the runs' own noise.

Noise: a per-request figure (a TTFT percentile, say) changes between two runs of the very same setup. For each
such figure we bootstrap the difference (resampling each run's requests with replacement, 1,000 times) and take the
middle 95% of the differences; when that interval holds zero — or the change is under :data:`RESOLUTION` (timer
and storage resolution, and what no one would act on) — the change is "within noise", whatever its sign.
Throughputs are one figure per run and carry no interval (marked †).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsurge.metrics.runs import SavedRun
from llmsurge.metrics.stats import thin
from llmsurge.redaction import shown

BOOTSTRAP = 1000
CONFIDENCE = 0.95
RESOLUTION = 0.02
"""Relative changes smaller than this are not reported as changes: timer and storage resolution, and the drift
between two runs of the very same setup on a shared machine (1–2%, which resampling one run's requests cannot
see), which no one would act on."""
_BATCH = 50


@dataclass(frozen=True)
class Metric:
    """One row: a summary key, how to read it, and which way is better."""

    key: str
    label: str
    unit: str
    lower_is_better: bool
    stat: str | None = None  # "median" / "p90" / "p99" / "mean" of per-request values (for the noise estimate)
    metric: str | None = None  # "ttft" / "tpot" / "itl" / "e2el"


def _latency_rows() -> list[Metric]:
    rows = []
    for m, name in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2EL")):
        for stat, key in (("median", "median"), ("p90", "p90"), ("p99", "p99"), ("mean", "mean")):
            label = f"{name} {'p50' if stat == 'median' else stat}"
            rows.append(Metric(f"{key}_{m}_ms", label, "ms", True, stat, m))
    return rows


AMOUNTS = ("W", "GiB", "tok/J")
"""Units of quantities rather than speeds: their changes read "higher"/"lower", not "faster"/"slower"."""
REFEREE = "reconciliation."
"""Keys under a segment's ``reconciliation`` (the server's clock): rows only when both runs carry it."""

METRICS: tuple[Metric, ...] = (
    Metric("request_throughput", "request throughput", "req/s", False),
    Metric("output_throughput", "output throughput", "tok/s", False),
    *_latency_rows(),
    Metric(REFEREE + "server_ttft_ms_mean", "server's TTFT (its clock, mean)", "ms", True),
    Metric(REFEREE + "server_queue_ms_mean", "server's queue (mean)", "ms", True),
    Metric(REFEREE + "server_prefill_ms_mean", "server's prefill (mean)", "ms", True),
    Metric(REFEREE + "gap_ms_mean", "TTFT outside the server (mean)", "ms", True),
    Metric(REFEREE + "client_side_ms_mean", "  of which our loop lag", "ms", True),
    Metric("error_rate", "error rate", "%", True),
    Metric("request_goodput", "goodput", "req/s", False),
    Metric("good_share", "good share", "%", False),
    Metric("gpu_power_w", "GPU power (mean)", "W", True),
    Metric("gpu_mem_used_gib", "GPU memory (peak)", "GiB", True),
    Metric("tok_per_joule", "output tokens per joule", "tok/J", False),
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


def bootstrap_interval(base: np.ndarray, new: np.ndarray, stat: str, seed: int = 0) -> tuple[float, float]:
    """The middle 95% of ``stat(new*) - stat(base*)`` over bootstrap resamples of each run's values."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(BOOTSTRAP // _BATCH):
        a = base[rng.integers(0, len(base), (_BATCH, len(base)))]
        b = new[rng.integers(0, len(new), (_BATCH, len(new)))]
        diffs.append(_stat(b, stat, axis=1) - _stat(a, stat, axis=1))
    d = np.concatenate(diffs)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(d, [tail, 100 - tail])
    return float(lo), float(hi)


def _figure(run: SavedRun, seg: dict[str, Any], metric: Metric) -> float | None:
    """A figure of one level (telemetry-derived ones computed here)."""
    if metric.key.startswith(("gpu_", "tok_per")):
        return _gpu_figure(run, seg, metric.key)
    if BY in metric.key:  # a model's or a server's run-wide row
        kind, name, key = metric.key.split(BY)
        row = (seg.get(kind) or {}).get(name)
        value = row.get(key) if isinstance(row, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    if metric.key.startswith(REFEREE):
        rec = seg.get("reconciliation")
        value = rec.get(metric.key.removeprefix(REFEREE)) if isinstance(rec, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    value = seg.get(metric.key)
    if value is None or not isinstance(value, (int, float)):
        return None
    if metric.stat is not None and not seg.get("completed"):
        return None  # nothing succeeded: summary.json's 0.0 is not a latency
    if metric.unit == "%":
        return float(value) * 100.0
    return float(value)


def _gpu_figure(run: SavedRun, seg: dict[str, Any], key: str) -> float | None:
    if run.source != "llmsurge":
        return None
    gpu = seg.get("telemetry", {}).get("gpu")
    if "segment" not in seg and isinstance(gpu, dict):  # the whole run: the sampler's run-wide figures
        gpu = (gpu.get("segments") or {}).get("run")
    if not isinstance(gpu, dict):
        return None
    power, mem = gpu.get("mean_gpu_power_w"), gpu.get("peak_gpu_mem_used_mib")
    if key == "gpu_power_w":
        return power
    if key == "gpu_mem_used_gib":
        return None if mem is None else mem / 1024.0
    tput = seg.get("output_throughput")
    return tput / power if power and tput is not None else None


def _row(runs: list[SavedRun], segs: list[dict[str, Any]], metric: Metric, load: str | None) -> Row | None:
    values = [_figure(r, s, metric) for r, s in zip(runs, segs, strict=True)]
    if all(v is None for v in values[1:]) or values[0] is None:
        return None
    changes: list[Change | None] = [None]
    for run, seg, value in zip(runs[1:], segs[1:], values[1:], strict=True):
        change = _change(runs[0], run, values[0], value, metric, load)
        if _thin(segs[0], metric) or _thin(seg, metric):
            change = dataclasses.replace(change, better=None, thin=True)
        changes.append(change)
    return Row(metric, values, changes)


def _thin(seg: dict[str, Any], metric: Metric) -> bool:
    """A p90/p99 that rests on fewer values than it needs (the one rule, :func:`stats.thin`)."""
    q = {"p90": 90.0, "p99": 99.0}.get(metric.stat or "")
    if q is None or metric.metric is None:
        return False
    n = seg.get(f"n_{metric.metric}", seg.get("completed"))
    return isinstance(n, int) and thin(n, q)


def _change(
    base_run: SavedRun, run: SavedRun, base: float | None, new: float | None, metric: Metric, load: str | None
) -> Change:
    if base is None or new is None:
        return Change("n/a", None)
    if metric.unit == "%" and metric.key == "error_rate":
        diff = new - base
        better = None if abs(diff) < 1e-9 else diff < 0
        return Change(f"{diff:+.2f} pts", better)
    text, better = speed_change(base, new, metric.lower_is_better, amount=metric.unit in AMOUNTS)
    if metric.stat is None or metric.metric is None:
        return Change(text, better)
    a, b = base_run.values(metric.metric, load), run.values(metric.metric, load)
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return Change(text, better)
    lo, hi = bootstrap_interval(a, b, metric.stat)
    if lo <= 0 <= hi or abs(new - base) < RESOLUTION * abs(base):
        return Change("within noise", None, (lo, hi), True)
    return Change(text, better, (lo, hi), True)


def _placed(runs: list[SavedRun], segs: list[dict[str, Any]]) -> list[str]:
    """Where a change of mean TTFT lies, by the server's clock, for each candidate whose level and the baseline's
    both carry a reconciliation: on the server (its TTFT moved as much), or outside it."""
    base = segs[0].get("reconciliation")
    if not isinstance(base, dict):
        return []
    out = []
    for run, seg in zip(runs[1:], segs[1:], strict=True):
        rec = seg.get("reconciliation")
        if not isinstance(rec, dict):
            continue
        ours = rec["client_ttft_ms_mean"] - base["client_ttft_ms_mean"]
        server = rec["server_ttft_ms_mean"] - base["server_ttft_ms_mean"]
        if abs(ours) < max(1.0, RESOLUTION * base["client_ttft_ms_mean"]):
            continue
        outside = ours - server
        mine = rec["client_side_ms_mean"] - base["client_side_ms_mean"]
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
        s["load"] for s in runs[0].segments if s.get("load") != "paused" and all(r.level(s["load"]) for r in runs[1:])
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
        loads = ["/".join(str(s.get("load")) for s in r.segments) for r in runs]
        notes.append(f"the runs' load levels differ ({' vs '.join(loads)}): whole-run figures are compared")
        segs = [r.summary for r in runs]
        rows = [row for m in METRICS if (row := _row(runs, segs, m, None)) is not None]
        levels.append(Level("whole run", rows))
        matched = False
    for kind, title in (("models", "per model (whole runs)"), ("targets", "per server (whole runs)")):
        names = [n for n in (runs[0].summary.get(kind) or {}) if all(n in (r.summary.get(kind) or {}) for r in runs)]
        if names:
            segs = [r.summary for r in runs]
            metrics = [m for n in names for m in _breakdown_metrics(kind, n)]
            levels.append(Level(title, [row for m in metrics if (row := _row(runs, segs, m, None)) is not None]))
    notes += differences(runs)
    notes.append("† one figure per run (or no per-request values kept): no noise estimate")
    return Comparison(runs, levels, notes, matched)


def differences(runs: list[SavedRun]) -> list[str]:
    """What differs between the runs besides the change being measured: the model, the server (its kind and URL)
    — said, so that a difference is not read as the change's."""
    out = []
    facts: dict[str, list[object]] = {
        "models": [r.summary.get("model_id") for r in runs],
        "servers": [_server(r) for r in runs],
    }
    for what, values in facts.items():
        if len({str(v) for v in values if v}) > 1:
            listed = " vs ".join(shown(v or "?", limit=60) for v in values)
            out.append(f"the runs' {what} differ ({listed}): a difference may be theirs, not the change's")
    return out


def _server(run: SavedRun) -> str:
    """A run's server as ``kind at URL`` (a vLLM result: its backend)."""
    server = run.summary.get("server")
    config = run.summary.get("config")
    kind = server.get("kind") if isinstance(server, dict) else run.summary.get("backend")
    url = config.get("url") if isinstance(config, dict) else None
    return " at ".join(str(x) for x in (kind, url) if x)


BY = "\x1f"
"""Separates kind, name and key in a breakdown row's metric key (names are URLs: they hold dots)."""


def _breakdown_metrics(kind: str, name: str) -> list[Metric]:
    """A model's or a server's rows: TTFT p50/p99 and failures."""
    label = shown(name, limit=60)  # a model id or a URL: outside text
    return [
        Metric(f"{kind}{BY}{name}{BY}p50_ttft_ms", f"{label} TTFT p50", "ms", True),
        Metric(f"{kind}{BY}{name}{BY}p99_ttft_ms", f"{label} TTFT p99", "ms", True),
        Metric(f"{kind}{BY}{name}{BY}failed", f"{label} failed", "requests", True),
    ]


def saturation_curves(runs: list[SavedRun]) -> dict[str, list[tuple[float, float, float]]]:
    """Per run: (load, output tok/s, TTFT p99 ms) at each level, in load order (the saturation curve)."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for run in runs:
        points = [
            (_load_value(str(s.get("load"))), float(s.get("output_throughput") or 0), float(s.get("p99_ttft_ms") or 0))
            for s in run.segments
            if s.get("completed")
        ]
        out[run.label] = sorted(p for p in points if p[0] != float("inf"))
    return out
