"""Embeddings (llmsurge/engine/endpoints/embeddings.py): inputs a request, latency of the whole answer, inputs/s."""

from __future__ import annotations

import json
from pathlib import Path

from llmsurge.engine.client import build_body, one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import Failure
from llmsurge.net import Target
from tests.endpoints.conftest import run_endpoint
from tests.helpers import run_cli


def test_embeddings_measure_latency_and_inputs(tmp_path: Path) -> None:
    s, reqs, out = run_endpoint(tmp_path, "--endpoint", "embeddings", "--batch", "4")
    assert s["completed"] == 24 and s["failed"] == 0
    assert s["total_inputs"] == 96 and s["total_output_tokens"] == 0
    assert s["n_ttft"] == 0 and s["n_e2el"] == 24  # no first token to time: the latency of the whole answer
    per_input = s["total_input_tokens"] / 96
    assert 30 <= per_input <= 40  # calibrated to 32 tokens an input
    assert abs(s["input_throughput"] - 96 / s["duration"]) < 1e-6
    seg = s["segments"][0]  # a segment's rates count what arrived while it was open, as its request rate does
    assert abs(seg["input_throughput"] - 4 * seg["request_throughput"]) < 1e-6 * seg["input_throughput"]
    assert all(r["inputs"] == 4 and r["ttft_ms"] is None and r["e2el_ms"] > 0 for r in reqs)
    assert "Input throughput (inputs/s)" in out and "Total inputs" in out
    again = run_cli("report", str(tmp_path / "r"))  # recomputed from requests.jsonl: the same inputs and rates
    assert again.returncode == 0 and "agrees with requests.jsonl" in again.stdout, again.stdout
    assert "Input throughput (inputs/s)" in again.stdout and "Total inputs" in again.stdout


def test_the_body_numbers_each_input() -> None:
    emb = json.loads(build_body(RequestShape(endpoint="embeddings", batch=3), "m", "a b c", 9))
    assert emb["input"] == ["0 a b c", "1 a b c", "2 a b c"] and "max_tokens" not in emb and "stream" not in emb


async def test_fewer_vectors_than_inputs_is_a_failure(odd_server: str) -> None:
    async with make_client() as c:
        emb = await one_request(c, Target(odd_server, "m"), RequestShape(endpoint="embeddings", batch=3), "a b", 1)
    assert emb.error_kind == Failure.PROTOCOL.value and "2 embeddings for 3 inputs" in emb.error
