"""Saved runs made in code: requests.jsonl from seeded distributions, summary.json recomputed from it by the same
code `llmsurge report` uses. Deciding noise on these is deterministic; two timed runs on a busy machine are not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmsurge import __version__
from llmsurge.metrics.records import RequestRecord
from llmsurge.metrics.report import figures_json, recompute


def save_run(
    folder: Path,
    name: str,
    seed: int,
    ttft_ms: float = 40.0,
    tpot_ms: float = 20.0,
    n: int = 96,
    tokens: int = 40,
    load: str = "c=8",
    date: str = "2026-11-30T10:00:00",
    waves: float = 0.0,
) -> Path:
    """A results folder of ``n`` requests at ``load``: TTFT around ``ttft_ms``, gaps around ``tpot_ms`` (gamma
    spread, seeded), as a run of one segment writes it. ``waves``: each 8 consecutive requests' TTFT shares a factor
    (lognormal, this sigma) — as a batch's requests share its queue, so they are not independent."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = 0.0
    lines = []
    wave = 1.0
    for i in range(n):
        if i % 8 == 0 and waves:
            wave = float(rng.lognormal(0.0, waves))
        ttft = rng.gamma(16.0, ttft_ms / 16.0) / 1000.0 * wave
        gaps = (rng.gamma(16.0, tpot_ms / 16.0, tokens - 1) / 1000.0).tolist()
        rec = RequestRecord(f"0-{i}", 1, 0, start=t, wall_start=1_800_000_000.0 + t)
        rec.ttft = rec.ttfc = ttft
        rec.itl = gaps
        rec.e2el = ttft + sum(gaps)
        rec.end = t + rec.e2el
        rec.output_tokens = rec.max_tokens = tokens
        rec.prompt_tokens = 64
        rec.finish_reason = "length"
        lines.append(json.dumps(rec.to_json()))
        t += rec.e2el / 8
    (folder / "requests.jsonl").write_text("\n".join(lines) + "\n")
    duration = t + 1.0
    stub = {"duration": duration, "segments": [{"segment": 1, "duration": duration}]}
    (folder / "summary.json").write_text(json.dumps(stub))  # throughputs are over the run's duration
    figures = figures_json(recompute(folder))
    rates = {k: figures[k] for k in ("request_throughput", "output_throughput", "total_token_throughput")}
    segment = {
        **figures["segments"][0],
        **rates,
        "load": load,
        "duration": duration,
        "label": load,
        "start_time": 1_800_000_000.0,
    }
    summary = {
        **{k: v for k, v in figures.items() if k != "segments"},
        "duration": duration,
        "llmsurge_version": __version__,
        "name": name,
        "date": date,
        "model_id": "synthetic",
        "server": {"kind": "simulated"},
        "segments": [segment],
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder
