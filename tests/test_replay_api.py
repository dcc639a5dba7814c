"""Trace replay, schedule fidelity, and the live API (Prometheus /metrics, /api/snapshot, /api/steer), against the
simulated server over real sockets."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.engine.trace import BLOCK_TOKENS, TraceError, load_trace
from llmsurge.sim.model import EngineTiming
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig
from tests.helpers import CLI, free_port, rows, run_cli, summary, until


@pytest.fixture(scope="module")
def cache_sim() -> Iterator[str]:
    """A simulated server whose prefill costs time (so a cache hit shows) and whose prefix cache is on."""
    timing = EngineTiming(step_base=0.002, step_per_seq=0.0, prefill_per_token=0.00002, max_seqs=64)
    with SimProcess(SimConfig(timing=timing)) as sim:
        yield sim.url


def _trace(path: Path, n: int = 200, every_ms: float = 50.0, bad: tuple[str, ...] = ()) -> Path:
    """``n`` requests ``every_ms`` apart: four shared system blocks (ids 0-3), then each its own block."""
    lines = []
    for i in range(n):
        ids = [i % 4, 1000 + i]
        lines.append(
            json.dumps(
                {"timestamp": i * every_ms, "input_length": BLOCK_TOKENS + 100, "output_length": 16, "hash_ids": ids}
            )
        )
    for j, line in enumerate(bad):
        lines.insert(2 + j, line)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_trace_is_read_and_bad_lines_are_named(tmp_path: Path) -> None:
    t = load_trace(str(_trace(tmp_path / "t.jsonl", n=10, bad=("{nope", '{"timestamp": 5, "input_length": 0}'))))
    assert len(t.entries) == 10 and t.bad == 2 and t.shares_blocks
    assert t.bad_examples[0] == "t.jsonl:3: not JSON" and "input_length must be a whole number ≥ 1" in t.bad_examples[1]
    assert t.entries[1].at == pytest.approx(0.05) and t.entries[0].hash_ids == (0, 1000)
    sample = load_trace("sample")
    assert len(sample.entries) == 200 and sample.shares_blocks
    (tmp_path / "bad.jsonl").write_text("{}\n")
    r = run_cli("run", "--trace", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "no request in it could be read" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_trace_has_limits_each_bad_line_named(tmp_path: Path) -> None:
    huge = (
        '{"timestamp": 1e308, "input_length": 5, "output_length": 5}',
        '{"timestamp": Infinity, "input_length": 5, "output_length": 5}',
        '{"timestamp": NaN, "input_length": 5, "output_length": 5}',
        '{"timestamp": 7, "input_length": 1e9, "output_length": 5}',
        '{"timestamp": 8, "input_length": 5, "output_length": Infinity}',
    )
    t = load_trace(str(_trace(tmp_path / "t.jsonl", n=4, bad=huge)))
    assert len(t.entries) == 4 and t.bad == 5
    assert "more than a day from the start" in t.bad_examples[0] and t.bad_examples[0].startswith("t.jsonl:3:")
    assert "finite time" in t.bad_examples[1] and "finite time" in t.bad_examples[2]
    assert t.entries[-1].line == 9 and t.span < 1  # lines counted as in the file, the bad ones too
    assert t.beyond(None) == ""  # the server's context unknown: the hard cap alone
    assert t.beyond(1000) == ""
    assert t.beyond(600) == (
        "t.jsonl:1: input_length 612 + output_length 16 is more than the server's context of 600 tokens:"
        " cut such lines from the trace"
    )
    one = tmp_path / "long.jsonl"
    one.write_text('{"timestamp": 0, "input_length": 9, "output_length": 9}\n')
    assert load_trace(str(one)).beyond(100) == ""
    with pytest.raises(TraceError, match="a trace may last a day"):
        spread = tmp_path / "spread.jsonl"
        spread.write_text(
            '{"timestamp": 0, "input_length": 5, "output_length": 5}\n'
            '{"timestamp": 86000000, "input_length": 5, "output_length": 5}\n'
            '{"start_time": 1000000.0, "prompt_tokens": 5, "max_tokens": 5}\n'
        )
        load_trace(str(spread))
    r = run_cli("run", "--trace", "sample", "--speedup", "0.0001", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "a replay may last a day" in r.stderr, r.stderr


@pytest.mark.slow
def test_a_200_line_trace_is_replayed_on_time_with_its_shared_blocks(cache_sim: str, tmp_path: Path) -> None:
    trace = _trace(tmp_path / "t.jsonl", bad=('{"timestamp": "soon"}',))
    out = tmp_path / "r"
    r = run_cli("run", cache_sim, "--trace", str(trace), "--speedup", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = summary(out)
    sent = [q for q in rows(out) if not q["warmup"]]
    assert len(sent) == 200 and s["completed"] + s["failed"] == 200  # every request of the trace, once
    assert s["segments"][0]["load"] == "trace t.jsonl ×2"
    schedule = s["schedule"]
    # On time: no lateness of our own (p50), and few late (a client that cannot keep up sends many late). A p99
    # bound failed on one stall of a busy machine: CI has seen one of ~180 ms, which makes the 7 requests due in it
    # late (3.5% of 200) and put the p99 at 136 ms.
    assert schedule["requests"] == 200 and schedule["lag_p50_ms"] < 5 and schedule["lag_max_ms"] < 1000, schedule
    late = [q["client_wait_ms"] for q in sent if q["client_wait_ms"] > 20]
    assert len(late) <= 20, (late, schedule)  # ≤ 10% more than 20 ms late
    assert abs(schedule["mean_gap_ms"] - 25.0) < 10  # 50 ms apart at twice the speed
    starts = sorted(q["start_time"] for q in sent)
    assert 4.5 < starts[-1] - starts[0] < 5.5  # 199 gaps of 25 ms
    assert s["prefix_cache_hit_rate"] > 0.3  # the shared blocks hit the server's prefix cache
    prompt = s["total_input_tokens"] / s["completed"]
    assert abs(prompt - (BLOCK_TOKENS + 100)) < 0.15 * (BLOCK_TOKENS + 100)  # the lengths the trace asked for
    assert any("skipped t.jsonl:" in n for n in s["notes"])
    again = tmp_path / "again"  # a run's own requests.jsonl is a trace too: the same arrivals and lengths
    r = run_cli("run", cache_sim, "--trace", str(out / "requests.jsonl"), "--speedup", "4", "-o", str(again))
    assert r.returncode == 0, r.stderr
    assert summary(again)["completed"] + summary(again)["failed"] == 200


BURSTGPT_HEAD = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"


def _burstgpt(path: Path, n: int = 20) -> Path:
    """BurstGPT's CSV: ``n`` requests 0.1 s apart, then a failed one (no response) and a bad line."""
    lines = [BURSTGPT_HEAD]
    lines += [f"{i * 0.1:.1f},ChatGPT,{200 + i},{8 + i % 3},{208 + i + i % 3},Conversation log" for i in range(n)]
    lines += ["5.0,ChatGPT,300,0,300,Conversation log", "6.0,GPT-4,lots,8,8,API log"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _bodies(path: Path, n: int = 12) -> Path:
    """Request bodies as production sent them: a system prompt, tools on some, each its own max_tokens."""
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    lines = []
    for i in range(n):
        body: dict[str, object] = {
            "model": "production-model",
            "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"Q{i} " * 40}],
            "max_tokens": 6 + i,
            "temperature": 0.7,
        }
        if i % 3 == 0:
            body["tools"] = [tool]
        lines.append(json.dumps({"timestamp": i * 100, "body": body}))
    lines.append(json.dumps({"timestamp": 5, "body": {"max_tokens": 5}}))  # neither messages nor prompt
    path.write_text("\n".join(lines) + "\n")
    return path


def test_burstgpt_and_request_body_traces_are_read_by_their_content(tmp_path: Path) -> None:
    t = load_trace(str(_burstgpt(tmp_path / "burst.csv")))
    assert (len(t.entries), t.bad, t.form, t.endpoint) == (20, 2, "burstgpt", "")
    assert t.entries[3].at == pytest.approx(0.3) and (t.entries[3].input_tokens, t.entries[3].output_tokens) == (203, 8)
    assert t.bad_examples[0] == "burst.csv:22: Response tokens 0: a request that failed in production"
    assert t.bad_examples[1].startswith("burst.csv:23: ")
    b = load_trace(str(_bodies(tmp_path / "bodies.jsonl")))
    assert (len(b.entries), b.bad, b.form, b.endpoint) == (12, 1, "bodies", "chat")
    first = json.loads(b.entries[0].body)
    assert first["tools"][0]["function"]["name"] == "lookup" and b.entries[0].output_tokens == 6
    assert "neither messages (chat) nor prompt (completions)" in b.bad_examples[0]
    assert b.beyond(100) == ""  # a body's prompt length is the server's to count
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        json.dumps({"timestamp": 0, "body": {"prompt": "hi", "max_tokens": 4}})
        + "\n"
        + json.dumps({"timestamp": 1, "input_length": 5, "output_length": 5})
        + "\n"
    )
    with pytest.raises(TraceError, match="request bodies mixed with lengths"):
        load_trace(str(mixed))
    r = run_cli(
        "run", "--trace", str(tmp_path / "bodies.jsonl"), "--endpoint", "completions", "-o", str(tmp_path / "x")
    )
    assert r.returncode == 2 and "use --endpoint chat" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


@pytest.mark.slow
def test_burstgpt_and_request_bodies_are_replayed(cache_sim: str, tmp_path: Path) -> None:
    out = tmp_path / "burst"
    r = run_cli("run", cache_sim, "--trace", str(_burstgpt(tmp_path / "burst.csv")), "-o", str(out))
    assert r.returncode == 0, r.stderr
    sent = sorted((q for q in rows(out) if not q["warmup"]), key=lambda q: q["start_time"])
    assert len(sent) == 20 and all(q["status"] == "ok" for q in sent)
    assert [q["max_tokens"] for q in sent] == [8 + i % 3 for i in range(20)]  # each its own response length
    prompts = [q["prompt_tokens"] for q in sent]
    assert all(abs(p - (200 + i)) <= 0.15 * (200 + i) for i, p in enumerate(prompts)), prompts  # calibrated
    assert summary(out)["segments"][0]["load"] == "trace burst.csv"
    out = tmp_path / "bodies"
    r = run_cli("run", cache_sim, "--trace", str(_bodies(tmp_path / "bodies.jsonl")), "-o", str(out))
    assert r.returncode == 0, r.stderr
    sent = sorted((q for q in rows(out) if not q["warmup"]), key=lambda q: q["start_time"])
    assert len(sent) == 12 and all(q["status"] == "ok" for q in sent), [q["error"] for q in sent]
    assert [q["max_tokens"] for q in sent] == [6 + i for i in range(12)]
    assert all(0 < q["output_tokens"] <= q["max_tokens"] and q["ttft_ms"] for q in sent)  # streamed and timed
    assert all(q["prompt_tokens"] > 40 for q in sent)  # the bodies' own messages, counted by the server
    assert not any(q["ignore_eos"] for q in sent)  # sent as production sent them


# ---- the live API ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_api_is_scraped_by_prometheus_and_steers_the_run(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "r"
    args = ["run", "-c", "2", "-d", "12", "--output-tokens", "32", "--api", f"127.0.0.1:{port}", "-o", str(out)]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:

        def ok_so_far() -> float:
            try:
                text = httpx.get(base + "/metrics", timeout=5).text
            except httpx.HTTPError:
                return 0.0
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            return sum(s.value for s in fams["llmsurge_requests_ok"].samples if s.name.endswith("_total"))

        deadline = time.monotonic() + 60
        while ok_so_far() < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "no request completed"
            time.sleep(0.2)
        fams = {f.name: f for f in text_string_to_metric_families(httpx.get(base + "/metrics", timeout=5).text)}
        assert {"llmsurge_requests_in_flight", "llmsurge_ttft_seconds", "llmsurge_target_concurrency"} <= fams.keys()
        ttft = [s for s in fams["llmsurge_ttft_seconds"].samples if s.name.endswith("_count")]
        assert ttft and ttft[0].labels == {"segment": "1", "load": "c=2"} and ttft[0].value >= 2
        assert next(iter(fams["llmsurge_target_concurrency"].samples)).value == 2

        answer = httpx.post(base + "/api/steer", json={"concurrency": 3}, timeout=5)
        assert answer.status_code == 200 and answer.json()["target"] == "c=3" and answer.json()["segment"] == 2
        bad = httpx.post(base + "/api/steer", json={"concurrency": -1}, timeout=5)
        assert bad.status_code == 400 and "concurrency must be" in bad.json()["error"]
        _attacks_are_refused(base, port)
        snap = httpx.get(base + "/api/snapshot", timeout=5).json()
        assert snap["run"]["target"] == "c=3" and snap["snapshot"]["segment"] == 2
        r = run_cli("steer", base, "rate", "4")
        assert r.returncode == 0 and r.stdout.strip() == "segment 3: r=4/s poisson", r.stdout + r.stderr
        r = run_cli("steer", base, "stop")  # the run ends as by `q`: in flight cancelled, recorded, saved
        assert r.returncode == 0 and "stopping" in r.stdout, r.stdout + r.stderr
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    s = summary(out)
    loads = [seg["load"] for seg in s["segments"]]
    assert loads == ["c=2", "c=3", "r=4/s poisson"]  # each steer opened a segment, as a key does
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    rows = [r for r in rows if not r["warmup"]]
    assert s["cancelled"] == sum(r["status"] == "cancelled" for r in rows)
    assert s["completed"] + s["failed"] + s["cancelled"] == len(rows)
    assert s["duration"] < 12  # stopped, not run out


def _attacks_are_refused(base: str, port: int) -> None:
    """What a web page open elsewhere, or a rebound DNS name, can send to a run's API: each refused with one line,
    nothing applied (the caller checks the target is unchanged)."""
    steer = base + "/api/steer"
    body = json.dumps({"concurrency": 40})
    evil = {"Origin": "http://evil.example"}
    cases = [
        ("POST", steer, {"Content-Type": "text/plain", **evil}, body, 403, "only this server's own page"),
        ("POST", steer, {"Content-Type": "text/plain"}, body, 403, "Content-Type: application/json"),
        (
            "POST",
            steer,
            {"Content-Type": "application/x-www-form-urlencoded"},
            "concurrency=40",
            403,
            "application/json",
        ),
        ("POST", steer, {"Content-Type": "application/json", **evil}, body, 403, "evil.example"),
        (
            "POST",
            steer,
            {"Content-Type": "application/json", "Host": f"evil.example:{port}"},
            body,
            421,
            "DNS rebinding",
        ),
        ("POST", steer, {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, body, 403, "another web"),
        ("GET", base + "/api/snapshot", {"Host": f"evil.example:{port}"}, None, 421, "not this server's name"),
        ("GET", base + "/api/snapshot", evil, None, 403, "evil.example"),
        ("GET", base + "/metrics", {"Origin": "null"}, None, 403, "refused"),
    ]
    for method, url, headers, content, status, why in cases:
        r = httpx.request(method, url, headers=headers, content=content, timeout=5)
        assert r.status_code == status and why in r.json()["error"], (headers, r.status_code, r.text)
    for raw in (b'{"concurrency": Infinity}', b'{"concurrency": 1e300}', b'{"rate": NaN}'):  # JSON's extensions
        r = httpx.post(steer, content=raw, headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 400 and "must be" in r.json()["error"], r.text  # one line, not a 500
    for path in ("/dev/zero", "../../etc/passwd", "x.toml", ".hidden", ["demo"]):
        r = httpx.post(steer, json={"preset": path}, timeout=5)
        assert r.status_code == 400 and "not a path" in r.json()["error"], r.text
    own = httpx.get(base + "/api/snapshot", headers={"Origin": base, "Host": f"localhost:{port}"}, timeout=5)
    assert own.status_code == 200  # its own page and names are answered


def test_an_api_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    r = run_cli("run", "--api", "0.0.0.0:9", "-n", "1", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "give a token with --api-token-env VAR" in r.stderr
    assert not (tmp_path / "x").exists()
    r = run_cli("run", "--api", "127.0.0.1:9", "--api-token-env", "NO_SUCH_VAR_HERE", "-n", "1")
    assert r.returncode == 2 and "NO_SUCH_VAR_HERE" in r.stderr


async def test_a_token_is_asked_for_and_the_tui_says_when_the_api_steered_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmsurge.engine.session import RunConfig
    from llmsurge.presets import find_preset
    from llmsurge.tui.app import make_app
    from tests.conftest import quick_timing

    monkeypatch.setenv("LLMSURGE_API_TOKEN", "tok-123")
    port = free_port()
    scenario = find_preset("demo").with_overrides(concurrency=2, output_tokens=32, input_tokens=16)
    cfg = RunConfig(
        scenario=scenario, workers=1, output=tmp_path / "r", keep_alive=True, calibrate=False,
        api=f"127.0.0.1:{port}", api_token_env="LLMSURGE_API_TOKEN", sim_config=SimConfig(timing=quick_timing()),
    )  # fmt: skip
    app = make_app(cfg)
    base = f"http://127.0.0.1:{port}"
    async with app.run_test(size=(160, 48)) as pilot, httpx.AsyncClient() as client:
        await until(lambda: app.session.controller is not None and app.session.bus.inflight_total == 2, 60, pilot)
        refused = await client.post(base + "/api/steer", json={"concurrency": 4})
        assert refused.status_code == 401
        odd = await client.post(
            base + "/api/steer", json={"concurrency": 4}, headers={"Authorization": b"Bearer t\xc3\xb6k"}
        )
        assert odd.status_code == 400 and "must be ASCII" in odd.json()["error"]  # not a 500 with a traceback
        answer = await client.post(
            base + "/api/steer", json={"concurrency": 4}, headers={"Authorization": "Bearer tok-123"}
        )
        assert answer.status_code == 200 and answer.json()["target"] == "c=4"
        await until(lambda: app.session.bus.inflight_total == 4, 30, pilot)
        assert any("steered by the API: concurrency → c=4" in n.message for n in app._notifications)
        await pilot.press("q")
        await until(lambda: not app.is_running, 60, pilot)
    assert [seg["load"] for seg in summary(tmp_path / "r")["segments"]] == ["c=2", "c=4"]
