"""``llmsurge report DIR``: the summary recomputed exactly from ``requests.jsonl``, streaming, in bounded memory.

Every per-request figure is kept (8 bytes a request); inter-token latencies — one per token, a billion in a long
soak — are never all in memory: a first pass counts them into fine logarithmic buckets (plus exact sums for the
mean and standard deviation), a second pass keeps only the values in the buckets that hold the ranks a percentile
needs, and numpy's linear interpolation runs on those. The result is exact; ``summary.json``'s ITL percentiles,
from a 1% sketch, can be held against it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmsurge.metrics.checked import request_rows, summary_problem
from llmsurge.metrics.model import Level, RunSummary
from llmsurge.metrics.records import RequestRecord, Status
from llmsurge.metrics.segment import RequestCounts
from llmsurge.metrics.stats import (
    DEFAULT_PERCENTILES,
    LENGTHS,
    PER_REQUEST,
    describe_ms,
    error_rate,
    length_figures,
    pooling_block,
    quantile_key,
    throughput,
)

BATCH_LINES = 2000
LOG_GAMMA = math.log1p(0.002)  # buckets 0.2% wide
ZERO_KEY = -(10**9)
RUN = 0  # the run's scope; segments are 1, 2, …


class ReportError(ValueError):
    """A results folder that cannot be read; the message names the fix."""


def _keys(values: np.ndarray) -> np.ndarray:
    """Bucket of each value (the same function in both passes, so a value always lands in the same bucket)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        keys = np.ceil(np.log(values) / LOG_GAMMA)
    keys[~(values > 0)] = ZERO_KEY
    return keys.astype(np.int64)


@dataclass(kw_only=True)
class _Scope(RequestCounts):
    """One segment's (or the run's) counts — the live bus's :class:`RequestCounts`, fed the same records — and
    the exact values the percentiles are read from."""

    values: dict[str, array[float]] = field(default_factory=lambda: {m: array("d") for m in PER_REQUEST})
    itl_count: int = 0
    itl_sum: float = 0.0
    itl_sumsq: float = 0.0
    itl_buckets: Counter[int] = field(default_factory=Counter)
    itl_wanted: dict[int, list[float]] = field(default_factory=dict)  # bucket → its values (second pass)
    lengths: dict[str, array[float]] = field(default_factory=lambda: {m: array("d") for m in LENGTHS})


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    for _n, row in request_rows(path):
        if not row.get("warmup"):
            yield row


def _batches(path: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in _lines(path):
        batch.append(row)
        if len(batch) >= BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _itl_by_scope(batch: list[dict[str, Any]]) -> dict[int, np.ndarray]:
    """The batch's successful ITLs (seconds) per segment, and all of them under :data:`RUN`."""
    per: dict[int, list[float]] = {}
    for row in batch:
        if row["status"] == "ok" and row.get("itl_ms"):
            per.setdefault(int(row["segment"]), []).extend(row["itl_ms"])
    out = {seg: np.asarray(v, dtype=np.float64) / 1000.0 for seg, v in per.items()}
    if out:
        out[RUN] = np.concatenate(list(out.values()))
    return out


def _first_pass(path: Path, scopes: dict[int, _Scope]) -> None:
    for batch in _batches(path):
        for row in batch:
            rec = RequestRecord.from_json(row)
            for key in (RUN, rec.segment):
                _count(scopes.setdefault(key, _Scope()), row, rec)
        for seg, itl in _itl_by_scope(batch).items():
            s = scopes[seg]
            s.itl_count += len(itl)
            s.itl_sum += float(itl.sum())
            s.itl_sumsq += float((itl * itl).sum())
            keys, counts = np.unique(_keys(itl), return_counts=True)
            s.itl_buckets.update(dict(zip(keys.tolist(), counts.tolist(), strict=True)))


def _count(s: _Scope, row: dict[str, Any], rec: RequestRecord) -> None:
    s.add(rec)
    if rec.status is Status.OK:
        s.lengths["input_tokens"].append(rec.prompt_tokens)
        s.lengths["output_tokens"].append(rec.output_tokens)
        for m in PER_REQUEST:  # the values exactly as written (a TPOT recomputed from rounded times could differ)
            v = row.get(f"{m}_ms")
            if v is not None:
                s.values[m].append(v / 1000.0)


def _ranks(n: int, percentiles: tuple[float, ...]) -> list[int]:
    """0-based order statistics numpy's linear method reads for these percentiles (and the median)."""
    out: set[int] = set()
    for q in (*percentiles, 50.0):
        h = (n - 1) * q / 100.0
        out.update((math.floor(h), math.ceil(h)))
    return sorted(out)


def _wanted_buckets(s: _Scope, percentiles: tuple[float, ...]) -> set[int]:
    ranks = _ranks(s.itl_count, percentiles)
    wanted: set[int] = set()
    below = 0
    i = 0
    for key in sorted(s.itl_buckets):
        count = s.itl_buckets[key]
        while i < len(ranks) and ranks[i] < below + count:
            wanted.add(key)
            i += 1
        below += count
    return wanted


def _second_pass(path: Path, scopes: dict[int, _Scope], percentiles: tuple[float, ...]) -> None:
    wanted = {seg: _wanted_buckets(s, percentiles) for seg, s in scopes.items() if s.itl_count}
    for seg, keys in wanted.items():
        scopes[seg].itl_wanted = {k: [] for k in keys}
    for batch in _batches(path):
        for seg, itl in _itl_by_scope(batch).items():
            buckets = wanted.get(seg)
            if not buckets:
                continue
            bucket_of = _keys(itl)
            mask = np.isin(bucket_of, list(buckets))
            store = scopes[seg].itl_wanted
            for k, v in zip(bucket_of[mask].tolist(), itl[mask].tolist(), strict=True):
                store[k].append(v)


def _order_stat(s: _Scope, rank: int) -> float:
    below = 0
    for key in sorted(s.itl_buckets):
        count = s.itl_buckets[key]
        if rank < below + count:
            return sorted(s.itl_wanted[key])[rank - below]
        below += count
    raise AssertionError("rank past the count")


def _itl_block(s: _Scope, percentiles: tuple[float, ...]) -> dict[str, float]:
    if not s.itl_count:
        return describe_ms("itl", [], percentiles)
    n = s.itl_count
    mean = s.itl_sum / n

    def pct(q: float) -> float:
        h = (n - 1) * q / 100.0
        lo, hi = _order_stat(s, math.floor(h)), _order_stat(s, math.ceil(h))
        return (lo + (h - math.floor(h)) * (hi - lo)) * 1000.0

    out = {
        "mean_itl_ms": mean * 1000.0,
        "median_itl_ms": pct(50.0),
        "std_itl_ms": math.sqrt(max(0.0, s.itl_sumsq / n - mean * mean)) * 1000.0,
    }
    out.update({quantile_key(q, "itl"): pct(q) for q in percentiles})
    out["n_itl"] = n
    return out


COUNTED = (
    "completed", "failed", "cancelled", "error_rate", "total_input_tokens", "total_output_tokens",
    "output_tokens_estimated", "request_throughput", "output_throughput", "total_token_throughput",
)  # fmt: skip
"""A level's typed figures that requests.jsonl recomputes (its other figures: every one it computes)."""


def _level(s: _Scope, segment: int | None, duration: float, percentiles: tuple[float, ...], load: str = "run") -> Level:
    """A level's figures from its requests; throughputs only with a duration (the run's, from summary.json)."""
    figures: dict[str, float] = {}
    rates: dict[str, float] = {}
    if duration and segment is None:
        rates = throughput(s.ok, s.input_tokens, s.output_tokens, duration)
        figures.update(pooling_block(s.inputs, duration, s.inputs, s.input_tokens))  # the run's, as the summary
    for m in PER_REQUEST:
        figures.update(describe_ms(m, np.frombuffer(s.values[m], dtype=np.float64), percentiles))
        figures[f"n_{m}"] = len(s.values[m])
    figures.update(_itl_block(s, percentiles))
    figures.update(length_figures({m: np.frombuffer(v, dtype=np.float64) for m, v in s.lengths.items()}))
    return Level(
        segment=segment,
        load=load,
        duration=duration,
        completed=s.ok,
        failed=s.failed,
        cancelled=s.cancelled,
        errors=dict(s.errors),
        error_rate=error_rate(s.ok, s.failed),
        total_input_tokens=s.input_tokens,
        total_output_tokens=s.output_tokens,
        output_tokens_estimated=s.estimated_tokens,
        request_throughput=rates.get("request_throughput"),
        output_throughput=rates.get("output_throughput"),
        total_token_throughput=rates.get("total_token_throughput"),
        figures=figures,
    )


def recompute(folder: Path, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> RunSummary:
    """The summary's figures from ``folder/requests.jsonl`` alone (the run's duration from ``summary.json``
    when it is there, as throughputs are over the run's duration)."""
    path = folder / "requests.jsonl"
    if not path.is_file():
        saved = _saved_summary(folder) if (folder / "summary.json").is_file() else None
        if saved is not None and saved.trials is not None:
            first = folder / (saved.trials.folders[0] if saved.trials.folders else "trial-1")
            raise ReportError(f"{folder} is a repeated run ({saved.trials.n} trials): report a trial, e.g. {first}")
        raise ReportError(f"{folder}: no requests.jsonl here: name a results folder llmsurge wrote")
    scopes: dict[int, _Scope] = {}
    _first_pass(path, scopes)
    _second_pass(path, scopes, percentiles)
    saved = _saved_summary(folder)
    known = {s.segment: s for s in saved.segments} if saved is not None else {}
    run = _level(scopes.get(RUN, _Scope()), None, saved.run.duration if saved is not None else 0.0, percentiles)
    segments = tuple(
        _level(
            scopes[seg],
            seg,
            known[seg].duration if seg in known else 0.0,
            percentiles,
            known[seg].load if seg in known else "",
        )
        for seg in sorted(scopes)
        if seg != RUN
    )
    return RunSummary(run=run, segments=segments)


def figures_json(summary: RunSummary) -> dict[str, Any]:
    """The recomputed figures as ``report --json`` writes them: the run's, then each segment's."""
    return {**summary.run.to_json(), "segments": [s.to_json() for s in summary.segments]}


@dataclass(frozen=True, kw_only=True)
class PhaseStats:
    """One phase over the successful requests: how many values, median and p99 (ms)."""

    n: int
    p50: float
    p99: float

    @classmethod
    def of(cls, values: list[float]) -> PhaseStats | None:
        if not values:
            return None
        v = np.asarray(values, dtype=np.float64)
        return cls(n=len(values), p50=float(np.percentile(v, 50)), p99=float(np.percentile(v, 99)))

    def line(self) -> str:
        return f"p50 {self.p50:,.2f} / p99 {self.p99:,.2f} ms"


@dataclass(frozen=True, kw_only=True)
class Phases:
    """Where the successful requests' time before their first token went (``report``): new connections and
    pooled ones, each phase's median and p99, and how many requests were sent again."""

    new_connections: int
    pooled: int
    connect_ms: PhaseStats | None
    tls_ms: PhaseStats | None
    headers_ms: PhaseStats | None
    ttft_ms: PhaseStats | None
    resent: int

    def to_json(self) -> dict[str, Any]:
        """``report --json``'s ``phases``."""
        return {
            f.name: (dataclasses.asdict(v) if isinstance(v := getattr(self, f.name), PhaseStats) else v)
            for f in dataclasses.fields(self)
        }

    def line(self) -> str:
        """In one line (``''`` when the run kept no phase timings: runs before they were measured)."""
        if self.headers_ms is None:
            return ""

        def ms(s: PhaseStats | None) -> str:
            return "—" if s is None else s.line()

        tls = f", TLS {ms(self.tls_ms)}" if self.tls_ms is not None else ""
        return (
            f"phases: {self.new_connections:,} new connection(s) (connect {ms(self.connect_ms)}{tls}),"
            f" {self.pooled:,} pooled; request → headers {ms(self.headers_ms)}; TTFT {ms(self.ttft_ms)};"
            f" re-sent {self.resent:,}"
        )


def phases(folder: Path) -> Phases:
    """Where the successful requests' time before their first token went, from ``requests.jsonl``: how many came
    on a new connection (its TCP connect and TLS handshake) and how many on a pooled one, the time from the request
    written to the answer's headers, then TTFT — medians and p99 in ms — and how many were sent again."""
    fresh: dict[str, list[float]] = {"connect_ms": [], "tls_ms": []}
    headers: list[float] = []
    ttft: list[float] = []
    pooled = resent = 0
    for row in _lines(folder / "requests.jsonl"):
        resent += bool(row.get("resent") or row.get("retries"))
        if row["status"] != "ok" or row.get("reused") is None:
            continue
        if row["reused"]:
            pooled += 1
        else:
            for key, values in fresh.items():
                if row.get(key) is not None:
                    values.append(row[key])
        if row.get("headers_ms") is not None:
            headers.append(row["headers_ms"])
        if row.get("ttft_ms") is not None:
            ttft.append(row["ttft_ms"])
    return Phases(
        new_connections=len(fresh["connect_ms"]),
        pooled=pooled,
        connect_ms=PhaseStats.of(fresh["connect_ms"]),
        tls_ms=PhaseStats.of(fresh["tls_ms"]),
        headers_ms=PhaseStats.of(headers),
        ttft_ms=PhaseStats.of(ttft),
        resent=resent,
    )


def _saved_summary(folder: Path) -> RunSummary | None:
    path = folder / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    why = summary_problem(data)
    if why:
        raise ReportError(f"{path}: {why}")
    return RunSummary.from_json(data)


NO_SUMMARY = "no summary.json to compare with"
"""What :func:`compare_with_saved` says of a run that has none (killed before it was written): nothing disagrees."""


def compare_with_saved(folder: Path, recomputed: RunSummary) -> list[str]:
    """Lines naming each figure of ``summary.json`` that differs from the recomputed one by more than its
    storage allows: 0.01% (float32 values, 0.1 µs rounding), 1% for ITL percentiles (the sketch)."""
    saved = _saved_summary(folder)
    if saved is None:
        return [NO_SUMMARY]
    out = []
    pairs: list[tuple[str, Level, Level | None]] = [("run", saved.run, recomputed.run)]
    by_index = {s.segment: s for s in recomputed.segments}
    pairs += [(f"segment {s.segment}", s, by_index.get(s.segment)) for s in saved.segments]
    for where, a, b in pairs:
        if b is None:
            continue
        for key in (*COUNTED, *b.figures):
            mine, theirs = b.value(key), a.value(key)
            if mine is None or theirs is None or mine != mine or theirs != theirs:
                continue
            # The live figures come from float32 columns and a 1% ITL sketch; requests.jsonl rounds to 0.1 µs.
            tolerance = 0.0101 if "_itl_" in key and not key.startswith(("mean", "std")) else 1e-4
            if abs(theirs - mine) > tolerance * max(abs(mine), 1e-9) and abs(theirs - mine) > 1e-9:
                out.append(f"{where}: {key} is {theirs:,.4f} in summary.json, {mine:,.4f} from requests.jsonl")
    return out


CSV_COLUMNS = (
    "id", "segment", "worker", "warmup", "status", "error_kind", "error", "http_status", "start_time", "ttft_ms",
    "ttfc_ms", "tpot_ms", "e2el_ms", "latency_ms", "prompt_tokens", "cached_tokens", "output_tokens", "max_tokens",
    "finish_reason", "model", "target",
)  # fmt: skip
"""requests.jsonl's fields a spreadsheet gets, in this order; ITL as its count and mean (a list fits no cell)."""


def requests_csv(folder: Path) -> Iterator[str]:
    """A run's requests.jsonl as CSV lines (header first), read line by line: each field exact, ITL summarised."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([*CSV_COLUMNS, "itl_count", "itl_mean_ms"])
    yield out.getvalue()
    for _n, row in request_rows(Path(folder) / "requests.jsonl"):
        out.seek(0)
        out.truncate()
        gaps = row.get("itl_ms")
        itl = [v for v in gaps if isinstance(v, (int, float))] if isinstance(gaps, list) else []
        cells = ["" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS]
        w.writerow([*cells, len(itl), sum(itl) / len(itl) if itl else ""])
        yield out.getvalue()
