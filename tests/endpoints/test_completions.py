"""Completions (llmsurge/engine/endpoints/completions.py): one prompt text, choices' texts streamed."""

from __future__ import annotations

import json
from pathlib import Path

from llmsurge.engine.client import build_body
from llmsurge.engine.scenario import RequestShape
from tests.endpoints.conftest import run_endpoint


def test_completions_stream_ttft_and_usage(tmp_path: Path) -> None:
    s, reqs, _out = run_endpoint(tmp_path, "--endpoint", "completions")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and s["failed"] == 0
    assert s["total_output_tokens"] == 24 * 12 and abs(s["mean_input_tokens"] - 32) <= 4  # usage, calibrated
    assert all(r["finish_reason"] == "length" and not r["tokens_estimated"] and len(r["itl_ms"]) == 11 for r in reqs)


def test_chat_messages_become_one_prompt_text() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    body = json.loads(build_body(RequestShape(endpoint="completions", output_tokens=9), "m", messages, 9))
    assert body["prompt"] == "be brief\n\nhi" and body["max_tokens"] == 9 and "messages" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True} and body["ignore_eos"] is True
