"""Saved runs, read back: llmsurge's result folders and ``summary.json`` files, and ``vllm bench serve`` result JSON
(its keys are ours, so a run can be held against an old vLLM benchmark).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmsurge.metrics.checked import request_rows, summary_problem
from llmsurge.metrics.model import LLMSURGE, VLLM, JsonObject, Level, RunSummary

PER_REQUEST_MS = ("ttft", "tpot", "e2el", "itl")
MAX_VALUES = 200_000
"""Per-request values read back for the noise estimate (a longer run is sampled evenly down to this many)."""


def vllm_problem(data: dict[str, Any]) -> str:
    """Why a ``vllm bench serve`` result cannot be compared ('' when it can): its figures are numbers."""
    for key, v in data.items():
        figure = key.endswith(("_ms", "_throughput")) or key in ("completed", "duration")  # request_rate: "inf"
        if figure and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"field {key!r} must be a number, not {v!r:.40}"
    return ""


class RunFileError(ValueError):
    """A path that is not a saved run; the message names the fix."""


@dataclass
class SavedRun:
    """One run's summary, and where its per-request values are."""

    path: Path
    summary: RunSummary
    label: str
    requests_file: Path | None = None
    _values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    _arrivals: dict[str, tuple[np.ndarray, np.ndarray, float, float] | None] = field(default_factory=dict, repr=False)

    @property
    def source(self) -> str:
        """``llmsurge`` or ``vllm bench serve``."""
        return self.summary.source

    @property
    def segments(self) -> tuple[Level, ...]:
        """One per load level (a vLLM result is one level)."""
        return self.summary.levels

    def level(self, load: str) -> Level | None:
        """The segment run at load ``load`` (``c=32``), the last one if several were."""
        return self.summary.level(load)

    def values(self, metric: str, load: str | None) -> np.ndarray | None:
        """Exact per-request values in ms (ITL: every gap) of the level ``load`` (None: the whole run), or None
        when the run kept none (a summary without its requests.jsonl)."""
        key = (metric, load or "")
        if key not in self._values:
            found = self._read_values(metric, load)
            if found is None:
                return None
            self._values[key] = found
        return self._values[key]

    def _read_values(self, metric: str, load: str | None) -> np.ndarray | None:
        if self.source == VLLM:
            return _vllm_values(self.summary.extra, metric)
        if self.requests_file is None or not self.requests_file.is_file():
            return None
        segments = None
        if load is not None:
            segments = {s.segment for s in self.segments if s.load == load}
        found: list[tuple[float, list[float]]] = []
        for row in _rows(self.requests_file):
            if row.get("warmup") or row.get("status") != "ok":
                continue
            if segments is not None and int(row.get("segment", 0)) not in segments:
                continue
            if metric == "itl":
                found.append((_start(row), row.get("itl_ms") or []))
            elif row.get(f"{metric}_ms") is not None:
                found.append((_start(row), [row[f"{metric}_ms"]]))
        found.sort(key=lambda f: f[0])  # in the order the requests were sent: the noise estimate keeps runs of them
        return _thin(np.asarray([v for _, vs in found for v in vs], dtype=np.float64))

    def arrivals(self, load: str | None) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        """When each successful request of the run ended (wall seconds) and its output tokens, with the span of the
        level ``load`` (None: the whole run) — what its throughputs count; None without a requests.jsonl. Read once
        per level (both throughput rows ask)."""
        key = load or ""
        if key not in self._arrivals:
            self._arrivals[key] = self._read_arrivals(load)
        return self._arrivals[key]

    def _read_arrivals(self, load: str | None) -> tuple[np.ndarray, np.ndarray, float, float] | None:
        if self.source != LLMSURGE or self.requests_file is None or not self.requests_file.is_file():
            return None
        level = self.level(load) if load is not None else None
        scope = [level] if level is not None else [] if load is not None else list(self.segments)
        spans = [(s.start_time, s.duration) for s in scope if s.start_time is not None]
        if not scope or len(spans) < len(scope):
            return None
        t0, t1 = min(t for t, _ in spans), max(t + d for t, d in spans)
        at, tokens = [], []
        for row in _rows(self.requests_file):
            if row.get("warmup") or row.get("status") != "ok" or not _number(row.get("latency_ms")):
                continue
            end = _start(row) + row["latency_ms"] / 1000.0
            if t0 <= end <= t1:
                at.append(end)
                tokens.append(row.get("output_tokens") or 0)
        return np.asarray(at, dtype=np.float64), np.asarray(tokens, dtype=np.float64), t0, t1


def _number(*values: object) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _start(row: dict[str, Any]) -> float:
    t = row.get("start_time")
    return float(t) if isinstance(t, (int, float)) else 0.0


def _thin(values: np.ndarray) -> np.ndarray:
    if len(values) <= MAX_VALUES:
        return values
    return values[np.linspace(0, len(values) - 1, MAX_VALUES).astype(np.int64)]


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    for _n, row in request_rows(path):
        yield row


def _vllm_values(summary: JsonObject, metric: str) -> np.ndarray | None:
    """vLLM's detailed results keep per-request lists in seconds: ``ttfts``, ``itls`` (lists), ``e2els``…"""
    key = {"ttft": "ttfts", "tpot": "tpots", "e2el": "e2els", "itl": "itls"}[metric]
    raw = summary.get(key)
    if not isinstance(raw, list) or not raw:
        return None
    flat = [v for x in raw for v in (x if isinstance(x, list) else [x]) if isinstance(v, (int, float)) and v > 0]
    return _thin(np.asarray(flat, dtype=np.float64) * 1000.0) if flat else None


def load_run(path: str | Path) -> SavedRun:
    """A result folder, a ``summary.json``, or a ``vllm bench serve`` JSON file."""
    p = Path(path)
    if p.is_dir():
        if not (p / "summary.json").is_file():
            raise RunFileError(f"{p}: no summary.json here: name a results folder llmsurge wrote")
        p = p / "summary.json"
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise RunFileError(f"{p}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{p}: not a JSON result file ({exc})") from None
    if not isinstance(data, dict) or "completed" not in data:
        raise RunFileError(f"{p}: not a benchmark result (no 'completed'): give a results folder or summary.json")
    why = summary_problem(data) if "llmsurge_version" in data else vllm_problem(data)
    if why:
        raise RunFileError(f"{p}: {why}")
    summary = RunSummary.from_json(data)
    if summary.source == LLMSURGE:
        return SavedRun(p, summary, summary.name or p.parent.name, p.parent / "requests.jsonl")
    return SavedRun(p, summary, p.stem)


def find_runs(root: Path, skipped: list[str] | None = None) -> list[SavedRun]:
    """Every llmsurge run under ``root`` (one level of folders, or ``root`` itself), newest first; a folder whose
    summary cannot be read is left out, and why appended to ``skipped``."""
    candidates = [root] if (root / "summary.json").is_file() else sorted(root.glob("*/summary.json"))
    runs = []
    for c in candidates:
        try:
            runs.append(load_run(c.parent if c.name == "summary.json" else c))
        except RunFileError as exc:
            if skipped is not None:
                skipped.append(str(exc))
            continue
    return sorted(runs, key=lambda r: r.summary.date, reverse=True)
