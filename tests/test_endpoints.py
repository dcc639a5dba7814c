"""Beyond chat completions: embeddings, rerank and the Responses API through the same engine, panes and results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmsurge.engine.client import build_body, make_client, one_request
from llmsurge.engine.scenario import RequestShape
from llmsurge.engine.session import RunConfig
from llmsurge.metrics.records import Failure
from llmsurge.net import Target
from llmsurge.presets import find_preset
from llmsurge.tui.app import make_app
from tests.helpers import pilot_until, rows, run_cli, summary


def _run(tmp_path: Path, *flags: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    out = tmp_path / "r"
    r = run_cli("run", "-c", "4", "-n", "24", "--output-tokens", "12", "--input-tokens", "32", *flags, "-o", str(out))
    assert r.returncode == 0, r.stderr
    return summary(out), rows(out, warmup=False), r.stdout


def test_embeddings_measure_latency_and_inputs(tmp_path: Path) -> None:
    s, reqs, out = _run(tmp_path, "--endpoint", "embeddings", "--batch", "4")
    assert s["completed"] == 24 and s["failed"] == 0
    assert s["total_inputs"] == 96 and s["total_output_tokens"] == 0
    assert s["n_ttft"] == 0 and s["n_e2el"] == 24  # no first token to time: the latency of the whole answer
    per_input = s["total_input_tokens"] / 96
    assert 30 <= per_input <= 40  # calibrated to 32 tokens an input
    assert abs(s["input_throughput"] - 96 / s["duration"]) < 1e-6
    assert all(r["inputs"] == 4 and r["ttft_ms"] is None and r["e2el_ms"] > 0 for r in reqs)
    assert "Input throughput (inputs/s)" in out and "Total inputs" in out


def test_rerank_sends_a_query_and_its_documents(tmp_path: Path) -> None:
    s, reqs, _out = _run(tmp_path, "--endpoint", "rerank", "--documents", "6")
    assert s["completed"] == 24 and s["total_inputs"] == 144 and s["n_e2el"] == 24
    assert all(r["inputs"] == 6 for r in reqs)
    assert any("rerank: prompt lengths are not calibrated" in n for n in s["notes"])


def test_responses_api_streams_ttft_and_usage(tmp_path: Path) -> None:
    s, reqs, _out = _run(tmp_path, "--endpoint", "responses")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and "total_inputs" not in s
    assert s["total_output_tokens"] == 24 * 12  # from response.incomplete's usage (max_output_tokens reached)
    assert all(r["finish_reason"] == "length" and not r["tokens_estimated"] and len(r["itl_ms"]) == 11 for r in reqs)


def test_bodies_have_each_endpoints_shape() -> None:
    emb = json.loads(build_body(RequestShape(endpoint="embeddings", batch=3), "m", "a b c", 9))
    assert emb["input"] == ["0 a b c", "1 a b c", "2 a b c"] and "max_tokens" not in emb and "stream" not in emb
    rr = json.loads(build_body(RequestShape(endpoint="rerank", documents=2), "m", "q w e", 9))
    assert rr["query"] == "q w e" and rr["documents"] == ["0 q w e", "1 q w e"] and rr["top_n"] == 2
    system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    resp = json.loads(build_body(RequestShape(endpoint="responses"), "m", system, 9))
    assert resp["instructions"] == "be brief" and resp["input"] == system[1:] and resp["max_output_tokens"] == 9
    assert resp["stream"] is True and "stream_options" not in resp


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """Answers that do not match what was asked: two vectors for three inputs, a rerank result without a score, a
    Responses stream that fails."""

    async def embeddings(_r: web.Request) -> web.Response:
        return web.json_response({"data": [{"embedding": [0.1]}, {"embedding": [0.2]}], "usage": {"prompt_tokens": 3}})

    async def rerank(_r: web.Request) -> web.Response:
        return web.json_response({"results": [{"index": 0}]})

    async def responses(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        delta = {"type": "response.output_text.delta", "delta": " hi"}
        failed = {"type": "response.failed", "response": {"error": {"message": "engine died"}}}
        await resp.write(b"data: " + json.dumps(delta).encode() + b"\n\n")
        await resp.write(b"data: " + json.dumps(failed).encode() + b"\n\n")
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:  # a tool call whose arguments are not JSON
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, piece in enumerate(('{"query": ', "oops")):
            call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
            if i == 0:
                call.update(id="call_1", type="function", function={"name": "lookup_0", "arguments": piece})
            choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls" if i else None}
            await resp.write(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.add_routes(
        [
            web.post("/v1/chat/completions", chat),
            web.post("/v1/embeddings", embeddings),
            web.post("/v1/rerank", rerank),
            web.post("/v1/responses", responses),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_answers_that_do_not_match_the_request_are_failures(odd_server: str) -> None:
    target = Target(odd_server, "m")
    async with make_client() as c:
        emb = await one_request(c, target, RequestShape(endpoint="embeddings", batch=3), "a b", 1)
        rr = await one_request(c, target, RequestShape(endpoint="rerank", documents=1), "a b", 1)
        resp = await one_request(c, target, RequestShape(endpoint="responses"), "a b", 4)
    assert emb.error_kind == Failure.PROTOCOL.value and "2 embeddings for 3 inputs" in emb.error
    assert rr.error_kind == Failure.PROTOCOL.value and "without a vector or score" in rr.error
    assert resp.error_kind == Failure.STREAM_ERROR.value and "engine died" in resp.error and resp.ttft is not None


def test_tool_calls_are_output_and_their_arguments_are_checked(tmp_path: Path) -> None:
    s, reqs, _out = _run(tmp_path, "--tools", "3")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and s["total_output_tokens"] == 24 * 12
    assert all(r["finish_reason"] == "tool_calls" and not r.get("degenerate") for r in reqs)


async def test_tool_call_arguments_that_are_not_json_are_degenerate(odd_server: str) -> None:
    from llmsurge.engine.worker import judge_answer

    async with make_client() as c:
        rec = await one_request(c, Target(odd_server, "m"), RequestShape(tools=1, ignore_eos=False), "a b", 8)
    assert rec.ok and rec.ttft is not None and rec.finish_reason == "tool_calls"
    judge_answer(rec, None)
    assert "arguments are not JSON" in rec.degenerate


def test_check_says_which_endpoints_and_tools_a_server_offers(sim_url: str) -> None:
    r = run_cli("check", sim_url, "--no-quality", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ("responses: yes", "embeddings: yes", "rerank: yes", "tool calls: yes (a call with JSON arguments)"):
        assert line in r.stdout, r.stdout


async def test_the_tui_shows_inputs_and_latency_for_embeddings(tmp_path: Path) -> None:
    scenario = find_preset("demo").with_overrides(endpoint="embeddings", batch=2, input_tokens=32, concurrency=2)
    app = make_app(RunConfig(scenario=scenario, output=tmp_path / "t", keep_alive=True))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: app.snapshots.snapshot().segment_figures["e2el"].n >= 4, 60)
        app.refresh_panes(True)
        await pilot.pause()
        load = app.screen.query_one("#load")
        text = "\n".join(line.text for line in load.render_lines(load.region.reset_offset))  # type: ignore[attr-defined]
        assert "inputs/s" in text and "lat. p50/p99" in text and "TTFT p50/p99" not in text, text
        await pilot.press("q")


def test_images_are_real_pngs_each_different() -> None:
    import random
    import struct
    import zlib

    from llmsurge.images import png_size, synthetic_png, with_images

    rng = random.Random(3)
    a, b = synthetic_png(64, 32, rng), synthetic_png(64, 32, rng)
    assert a != b and png_size(a) == (64, 32)
    length = struct.unpack(">I", a[33:37])[0]  # the IDAT chunk after the 8-byte signature and 25-byte IHDR
    assert a[37:41] == b"IDAT" and len(zlib.decompress(a[41 : 41 + length])) == 32 * (1 + 3 * 64)
    messages = with_images("describe", 2, (8, 8), rng)
    parts = messages[0]["content"]
    assert parts[0] == {"type": "text", "text": "describe"} and len(parts) == 3
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[1:])


def test_images_count_as_prompt_tokens(tmp_path: Path) -> None:
    s, reqs, _out = _run(tmp_path, "--images", "2", "--image-size", "448x448")
    assert s["completed"] == 24 and s["failed"] == 0
    assert all(r["prompt_tokens"] >= 2 * 16 * 16 for r in reqs)  # the server counted 256 tokens an image
    r = run_cli("run", "--images", "1", "--image-size", "big", timeout=60)
    assert r.returncode == 2 and "use WIDTHxHEIGHT" in r.stderr and "Traceback" not in r.stderr
