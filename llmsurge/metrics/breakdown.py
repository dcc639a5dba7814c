"""Figures per model and per server: a run that spreads requests over several models (``--model a,b,c``) or
replicas (``llmsurge run URL1 URL2``) keeps, for each, its counts and its TTFT and latency values.

Run-wide, next to the segments: one row per model or target in ``summary.json`` (``models``, ``targets``), the
screen and ``compare``. A failing replica's errors count against it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from llmsurge.metrics.columns import Column, ColumnView
from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.segment import RequestCounts
from llmsurge.metrics.stats import Distribution


@dataclass
class KeyStats:
    """One model's or one server's requests: counts, TTFT and end-to-end latency values (seconds)."""

    counts: RequestCounts = field(default_factory=RequestCounts)
    ttft: Column = field(default_factory=Column)
    e2el: Column = field(default_factory=Column)

    def add(self, rec: RequestRecord) -> None:
        """Count one finished request."""
        self.counts.add(rec)
        if rec.ok and rec.ttft is not None:
            self.ttft.append(rec.ttft)
        if rec.ok and rec.e2el is not None:
            self.e2el.append(rec.e2el)

    def view(self) -> KeyView:
        """Its counts copied and its columns as views: cheap under the bus lock, read without it."""
        return KeyView(copy.deepcopy(self.counts), self.ttft.view(), self.e2el.view())


@dataclass(frozen=True)
class KeyView:
    """A :class:`KeyStats` as readers see it."""

    counts: RequestCounts
    ttft: ColumnView
    e2el: ColumnView

    def figures(self) -> dict[str, Any]:
        """``summary.json``'s row: completed, failed, errors, tokens, TTFT and E2EL (ms)."""
        c = self.counts
        ttft = Distribution.of_seconds(self.ttft.values(), (50.0, 99.0))
        e2el = Distribution.of_seconds(self.e2el.values(), (50.0, 99.0))
        return {
            "completed": c.ok,
            "failed": c.failed,
            "errors": dict(c.errors),
            "total_input_tokens": c.input_tokens,
            "total_output_tokens": c.output_tokens,
            "n_ttft": ttft.n,
            "mean_ttft_ms": ttft.mean,
            "p50_ttft_ms": ttft.at(50.0) or 0.0,
            "p99_ttft_ms": ttft.at(99.0) or 0.0,
            "mean_e2el_ms": e2el.mean,
            "p99_e2el_ms": e2el.at(99.0) or 0.0,
        }


Views = dict[str, dict[str, KeyView]]
"""``{"models": {name: view}, "targets": {url: view}}`` (only the kinds the run has)."""


@dataclass
class Breakdown:
    """Per model and per target (written under the bus lock)."""

    models: dict[str, KeyStats] = field(default_factory=dict)
    targets: dict[str, KeyStats] = field(default_factory=dict)

    def add(self, rec: RequestRecord) -> None:
        """Count a finished request under its model and its server, when the run has several."""
        if rec.model:
            self.models.setdefault(rec.model, KeyStats()).add(rec)
        if rec.target:
            self.targets.setdefault(rec.target, KeyStats()).add(rec)

    def view(self) -> Views:
        """Every key's view (taken under the bus lock; :func:`figures` computes outside it)."""
        out: Views = {}
        if self.models:
            out["models"] = {k: v.view() for k, v in self.models.items()}
        if self.targets:
            out["targets"] = {k: v.view() for k, v in self.targets.items()}
        return out


def figures(views: Views) -> dict[str, dict[str, dict[str, Any]]]:
    """``summary.json``'s ``models`` and ``targets``: each key's row."""
    return {kind: {k: v.figures() for k, v in keys.items()} for kind, keys in views.items()}
