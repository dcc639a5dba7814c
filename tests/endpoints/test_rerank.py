"""Rerank (llmsurge/engine/endpoints/rerank.py): a query and its documents, a score each."""

from __future__ import annotations

import json
from pathlib import Path

from llmsurge.engine.client import build_body, one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import Failure
from llmsurge.net import Target
from tests.endpoints.conftest import run_endpoint


def test_rerank_sends_a_query_and_its_documents(tmp_path: Path) -> None:
    s, reqs, _out = run_endpoint(tmp_path, "--endpoint", "rerank", "--documents", "6")
    assert s["completed"] == 24 and s["total_inputs"] == 144 and s["n_e2el"] == 24
    assert all(r["inputs"] == 6 for r in reqs)
    assert any("rerank: prompt lengths are not calibrated" in n for n in s["notes"])


def test_the_body_is_a_query_and_numbered_documents() -> None:
    rr = json.loads(build_body(RequestShape(endpoint="rerank", documents=2), "m", "q w e", 9))
    assert rr["query"] == "q w e" and rr["documents"] == ["0 q w e", "1 q w e"] and rr["top_n"] == 2


async def test_a_result_without_a_score_is_a_failure(odd_server: str) -> None:
    async with make_client() as c:
        rr = await one_request(c, Target(odd_server, "m"), RequestShape(endpoint="rerank", documents=1), "a b", 1)
    assert rr.error_kind == Failure.PROTOCOL.value and "without a vector or score" in rr.error
