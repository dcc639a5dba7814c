"""Beyond chat completions: embeddings, rerank and the Responses API through the same engine, panes and results."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmsurge.engine.client import build_body, one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.engine.session import RunConfig
from llmsurge.metrics.records import Failure
from llmsurge.net import Target
from llmsurge.presets import find_preset
from llmsurge.tui.app import make_app
from tests.helpers import pilot_until, rows, run_cli, sim_cli, summary


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
    seg = s["segments"][0]  # a segment's rates count what arrived while it was open, as its request rate does
    assert abs(seg["input_throughput"] - 4 * seg["request_throughput"]) < 1e-6 * seg["input_throughput"]
    assert all(r["inputs"] == 4 and r["ttft_ms"] is None and r["e2el_ms"] > 0 for r in reqs)
    assert "Input throughput (inputs/s)" in out and "Total inputs" in out
    again = run_cli("report", str(tmp_path / "r"))  # recomputed from requests.jsonl: the same inputs and rates
    assert again.returncode == 0 and "agrees with requests.jsonl" in again.stdout, again.stdout
    assert "Input throughput (inputs/s)" in again.stdout and "Total inputs" in again.stdout


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


def test_anthropic_messages_api_streams_ttft_thinking_and_usage(tmp_path: Path) -> None:
    """``--endpoint messages`` against the simulated server's /v1/messages: typed events, no [DONE]; the usage from
    message_start and message_delta; a reasoning model's thinking_delta timed as TTFR."""
    s, reqs, _out = _run(tmp_path, "--endpoint", "messages")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and s["failed"] == 0
    assert s["total_output_tokens"] == 24 * 12 and abs(s["mean_input_tokens"] - 32) <= 4  # usage, calibrated
    assert all(r["finish_reason"] == "length" and not r["tokens_estimated"] and len(r["itl_ms"]) == 11 for r in reqs)
    out = tmp_path / "think"
    with sim_cli("--reasoning-tokens", "4") as url:  # a reasoning model: its first 4 tokens are thinking
        r = run_cli("run", url, "--endpoint", "messages", "-n", "8", "-c", "2", "--output-tokens", "12", "-o", str(out))
    assert r.returncode == 0, r.stderr
    thought = rows(out, warmup=False)
    assert all(q["ttfr_ms"] is not None and q["ttfc_ms"] > q["ttfr_ms"] for q in thought), thought[0]
    assert summary(out)["reasoning"]["completed"] == 8


def test_a_messages_stream_is_read_event_by_event() -> None:
    """A recorded-shape Messages stream: cached prompt tokens from cache_read_input_tokens, the stop reason as a
    finish reason, the end at message_stop, an error event as the request's failure."""
    from llmsurge.engine.client import ChunkCounter, _Stream
    from llmsurge.metrics.records import RequestRecord

    def event(data: dict[str, Any]) -> bytes:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()

    start = {"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_read_input_tokens": 12,
             "output_tokens": 1}}}  # fmt: skip
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in ("a", "b")
    ]
    end = [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    rec = RequestRecord("m", 1, 0, start=0.0, wall_start=0.0)
    stream = _Stream(rec, ChunkCounter())
    assert not stream.feed(event(start) + event({"type": "ping"}) + b"".join(event(d) for d in deltas))
    assert stream.feed(b"".join(event(d) for d in end))  # message_stop: the answer is whole
    assert stream.finish() and rec.ok
    assert (rec.prompt_tokens, rec.cached_tokens, rec.output_tokens) == (32, 12, 2)
    assert rec.finish_reason == "length" and rec.ttft is not None and len(rec.itl) == 1
    failed = RequestRecord("e", 1, 0, start=0.0, wall_start=0.0)
    bad = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert _Stream(failed, ChunkCounter()).feed(event(start) + event(bad))
    assert not failed.ok and failed.error == "Overloaded"


def test_bodies_have_each_endpoints_shape() -> None:
    emb = json.loads(build_body(RequestShape(endpoint="embeddings", batch=3), "m", "a b c", 9))
    assert emb["input"] == ["0 a b c", "1 a b c", "2 a b c"] and "max_tokens" not in emb and "stream" not in emb
    rr = json.loads(build_body(RequestShape(endpoint="rerank", documents=2), "m", "q w e", 9))
    assert rr["query"] == "q w e" and rr["documents"] == ["0 q w e", "1 q w e"] and rr["top_n"] == 2
    system = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    resp = json.loads(build_body(RequestShape(endpoint="responses"), "m", system, 9))
    assert resp["instructions"] == "be brief" and resp["input"] == system[1:] and resp["max_output_tokens"] == 9
    assert resp["stream"] is True and "stream_options" not in resp
    msg = json.loads(build_body(RequestShape(endpoint="messages"), "m", system, 9))
    assert msg["system"] == "be brief" and msg["messages"] == system[1:] and msg["max_tokens"] == 9
    assert msg["stream"] is True and "stream_options" not in msg
    assert Target("http://h", "m", api_key="k").headers("messages")["anthropic-version"] == "2023-06-01"
    assert Target("http://h", "m", api_key="k").headers("messages")["x-api-key"] == "k"
    assert "x-api-key" not in Target("http://h", "m", api_key="k").headers("chat")


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
    said = ("responses: yes", "messages: yes", "embeddings: yes", "rerank: yes", "tool calls: yes (a call with JSON")
    for line in said:
        assert line in r.stdout, r.stdout
    assert "– per-request timings: no (llama.cpp sends them; vLLM with --enable-per-request-metrics)" in r.stdout
    with sim_cli("--request-metrics") as url:  # a server that times each request on its own clock: check says so
        r = run_cli("check", url, "--no-quality", timeout=120)
    assert re.search(r"✓ per-request timings: yes \(vLLM per-request metrics: queue [\d.]+ ms, prefill", r.stdout), (
        r.stdout
    )


@pytest.mark.parametrize(
    ("endpoint", "said", "not_said"),
    [
        ({"endpoint": "embeddings", "batch": 2}, ("inputs/s", "lat. p50/p99"), "TTFT p50/p99"),
        ({"endpoint": "rerank", "documents": 3}, ("inputs/s", "lat. p50/p99"), "TTFT p50/p99"),
        ({"endpoint": "responses"}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
        ({"endpoint": "chat", "tools": 2}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
        ({"endpoint": "chat", "images": 1, "image_size": (56, 56)}, ("output tok/s", "TTFT p50/p99"), "inputs/s"),
    ],
    ids=["embeddings", "rerank", "responses", "tools", "images"],
)
async def test_the_tui_shows_what_each_endpoint_measures(
    tmp_path: Path, endpoint: dict[str, Any], said: tuple[str, ...], not_said: str
) -> None:
    scenario = find_preset("demo").with_overrides(input_tokens=32, output_tokens=8, concurrency=2, **endpoint)
    app = make_app(RunConfig(scenario=scenario, output=tmp_path / "t", keep_alive=True))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot_until(pilot, lambda: app.snapshots.snapshot().segment_figures["e2el"].n >= 4, 60)
        app.refresh_panes(True)
        await pilot.pause()
        load = app.screen.query_one("#load")
        text = "\n".join(line.text for line in load.render_lines(load.region.reset_offset))  # type: ignore[attr-defined]
        assert all(s in text for s in said) and not_said not in text, text
        assert app.snapshots.snapshot().failed == 0
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
    assert a[37:41] == b"IDAT" and len(zlib.decompress(a[41 : 41 + length])) == 32 * (1 + 3 * 64)  # Adler-32 holds
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(b))  # an image library reads it whole
    image.load()
    assert image.size == (64, 32) and image.mode == "RGB"
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


def test_several_models_are_spread_and_reported_each(tmp_path: Path) -> None:
    """``--model a,b,c`` against a server with adapters: each request takes the next model; summary.json, the
    headless tables and compare show each model's figures."""
    from llmsurge.metrics.compare import compare
    from llmsurge.metrics.runs import load_run
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import SimConfig
    from tests.conftest import quick_timing

    with SimProcess(SimConfig(timing=quick_timing(), adapters=("lora-a", "lora-b"))) as sim:
        out = tmp_path / "m"
        models = "llmsurge-sim,lora-a,lora-b"
        r = run_cli("run", sim.url, "--model", models, "-c", "3", "-n", "30", "--output-tokens", "6", "-o", str(out))
        assert r.returncode == 0, r.stderr
        bad = run_cli("run", sim.url, "--model", "llmsurge-sim,nope", "-n", "2", "-o", str(tmp_path / "x"))
    s = summary(out)
    assert set(s["models"]) == {"llmsurge-sim", "lora-a", "lora-b"}
    assert all(m["completed"] == 10 and m["failed"] == 0 and m["n_ttft"] == 10 for m in s["models"].values())
    assert {q["model"] for q in rows(out, warmup=False)} == set(s["models"])
    assert "per model" in r.stdout and "lora-b" in r.stdout
    assert bad.returncode == 2 and "does not list nope" in bad.stderr
    cmp = compare([load_run(str(out)), load_run(str(out))])
    level = next(lv for lv in cmp.levels if lv.load.startswith("per model"))
    assert {row.metric.label for row in level.rows} >= {"lora-a TTFT p50", "lora-b failed"}


def test_replicas_share_the_load_and_a_failing_one_is_named(tmp_path: Path) -> None:
    """Two servers, one failing a third of its requests: round-robin gives each half the load; the failures are
    counted against the one that failed them."""
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import Faults, SimConfig
    from tests.conftest import quick_timing

    with (
        SimProcess(SimConfig(timing=quick_timing())) as good,
        SimProcess(SimConfig(timing=quick_timing(), faults=Faults.parse("http500=0.34"))) as bad,
    ):
        out = tmp_path / "r"
        targets = tmp_path / "targets.txt"
        targets.write_text(f"# the second replica\n{bad.url}\n")
        r = run_cli("run", good.url, "--targets", str(targets), "-c", "4", "-n", "60", "-o", str(out))
        assert r.returncode in (0, 1), r.stderr
    s = summary(out)
    t = s["targets"]
    assert set(t) == {good.url, bad.url} and s["config"]["replicas"] == [bad.url]
    assert t[good.url]["failed"] == 0 and t[good.url]["completed"] == 30
    assert t[bad.url]["failed"] > 0 and t[bad.url]["completed"] + t[bad.url]["failed"] == 30
    assert t[bad.url]["errors"] == {"http_500": t[bad.url]["failed"]}
    assert "per server" in r.stdout


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--endpoint", "embeddings", "--tools", "2"), "--tools applies to --endpoint chat"),
        (("--batch", "4"), "--batch applies to --endpoint embeddings"),
        (("--endpoint", "chat", "--documents", "3"), "--documents applies to --endpoint rerank"),
        (("--image-size", "64x64"), "--image-size sizes the images of --images N"),
    ],
)
def test_a_flag_for_another_endpoint_is_one_line_not_ignored(flags: tuple[str, ...], said: str) -> None:
    r = run_cli("run", *flags, timeout=60)
    assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_least_busy_goes_to_the_idle_server_and_ties_take_turns() -> None:
    """``--balance least``: each request to the server with the fewest of this worker's requests in flight; among
    equals, each in turn (not always the first); ``rr``: each in turn whatever is in flight."""
    from llmsurge.engine.prompts import Calibration
    from llmsurge.engine.worker import Worker, WorkerSpec

    servers = tuple(Target(f"http://127.0.0.1:{port}", "m") for port in (8001, 8002, 8003))

    def worker(balance: str) -> Worker:
        spec = WorkerSpec(0, servers[0], Calibration(), replicas=servers[1:], balance=balance)
        return Worker(spec, None, [], None)  # type: ignore[arg-type]  # no commands, ticks or tickets needed

    least = worker("least")
    least.target_inflight = [2, 0, 1]
    assert least._pick_target() == 1
    least.target_inflight = [1, 1, 1]  # all equal, several times: each server in turn
    assert [least._pick_target() for _ in range(6)] == [2, 0, 1, 2, 0, 1]
    rr = worker("rr")
    rr.target_inflight = [0, 5, 5]
    assert [rr._pick_target() for _ in range(4)] == [1, 2, 0, 1]
