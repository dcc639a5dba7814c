"""The Responses API (llmsurge/engine/endpoints/responses.py): typed events, usage on its last event."""

from __future__ import annotations

import json
from pathlib import Path

from llmsurge.engine.client import build_body, one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import Failure
from llmsurge.net import Target
from tests.endpoints.conftest import run_endpoint


def test_responses_api_streams_ttft_and_usage(tmp_path: Path) -> None:
    s, reqs, _out = run_endpoint(tmp_path, "--endpoint", "responses")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and "total_inputs" not in s
    assert s["total_output_tokens"] == 24 * 12  # from response.incomplete's usage (max_output_tokens reached)
    assert all(r["finish_reason"] == "length" and not r["tokens_estimated"] and len(r["itl_ms"]) == 11 for r in reqs)


def test_the_system_prompt_is_its_instructions() -> None:
    system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    resp = json.loads(build_body(RequestShape(endpoint="responses"), "m", system, 9))
    assert resp["instructions"] == "be brief" and resp["input"] == system[1:] and resp["max_output_tokens"] == 9
    assert resp["stream"] is True and "stream_options" not in resp


async def test_a_failed_response_fails_the_request(odd_server: str) -> None:
    async with make_client() as c:
        resp = await one_request(c, Target(odd_server, "m"), RequestShape(endpoint="responses"), "a b", 4)
    assert resp.error_kind == Failure.STREAM_ERROR.value and "engine died" in resp.error and resp.ttft is not None
