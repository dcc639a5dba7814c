"""Workloads that look like real traffic: length distributions, prompt files, shared prefixes, multi-turn chats,
reasoning models and long context — against the simulated server over real sockets."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmsurge.engine import dataset as ds
from llmsurge.engine.dataset import DatasetError, DatasetReader, build_index, load_index, parse_entry
from llmsurge.engine.lengths import LengthDist, LengthError
from llmsurge.presets import PresetError, find_preset, load_preset_file
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig
from tests.conftest import FIXTURES, quick_timing
from tests.helpers import run_cli as _run


def _summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def _requests(folder: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines() if line]
    return [q for q in rows if not q["warmup"]]


# ---- 2. length distributions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "nominal"),
    [
        ("512", "fixed", 512),
        ("uniform:128,1024", "uniform", 576),
        ("normal:512,64", "normal", 512),
        ("lognormal:512,0.6", "lognormal", 512),
        ("empirical:100=3,1000=1", "empirical", 325),
    ],
)
def test_length_spellings_parse_and_draw_in_range(text: str, kind: str, nominal: int) -> None:
    dist = LengthDist.parse(text)
    assert dist.kind == kind and dist.nominal == nominal
    assert LengthDist.parse(str(dist)) == dist  # the spelling round-trips (summary.json, presets show)
    draws = np.array([dist.sample(random.Random(i)) for i in range(2000)])
    assert draws.min() >= 1
    if kind == "uniform":
        assert draws.min() >= 128 and draws.max() <= 1024 and abs(draws.mean() - 576) < 25
    if kind == "lognormal":
        assert abs(np.median(draws) - 512) < 40 and np.percentile(draws, 90) > 900  # a long right tail
    if kind == "empirical":
        assert set(draws) == {100, 1000} and 0.7 < (draws == 100).mean() < 0.8


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gamma:1,2", "unknown distribution"),
        ("uniform:10", "takes 2"),
        ("uniform:500,100", "low end comes first"),
        ("normal:0,5", "between 1 and"),
        ("lognormal:abc,1", "not a number"),
        ("empirical:5=0", "not all 0"),
    ],
)
def test_bad_length_spellings_name_the_fix(text: str, says: str) -> None:
    with pytest.raises(LengthError, match=says):
        LengthDist.parse(text)
    r = _run("run", "--input-tokens", text, "-n", "1")
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_distributions_reach_the_wire_and_the_segments_show_realised_lengths(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = _run(
        "run", sim_url, "-c", "4", "-n", "60", "--input-tokens", "uniform:40,400",
        "--output-tokens", "empirical:8=1,32=1", "--seed", "5", "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    reqs = _requests(out)
    prompts = np.array([q["prompt_tokens"] for q in reqs])
    outputs = {q["output_tokens"] for q in reqs}
    assert prompts.min() < 120 and prompts.max() > 320 and len(set(prompts)) > 30  # drawn, not one length
    assert outputs == {8, 32}
    s = _summary(out)
    assert s["mean_input_tokens"] == pytest.approx(prompts.mean(), rel=1e-3)
    assert s["p90_input_tokens"] == pytest.approx(np.percentile(prompts, 90), rel=1e-3)
    assert s["segments"][0]["p90_output_tokens"] == 32
    assert s["config"]["scenario"]["shape"]["input_dist"]["kind"] == "uniform"
    assert "Input / output tokens, mean (p90)" in r.stdout


# ---- 1. prompt files ---------------------------------------------------------------------------------------


def test_entries_of_every_format_parse() -> None:
    chat = parse_entry({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a b c d"}]})
    assert chat.messages == ({"role": "user", "content": "hi"},) and chat.max_tokens == 5  # 4 words × 1.3
    assert parse_entry({"prompt": "Once upon", "max_tokens": 7}).as_messages() == [
        {"role": "user", "content": "Once upon"}
    ]
    share = parse_entry(
        {
            "conversations": [
                {"from": "system", "value": "be brief"},
                {"from": "human", "value": "why?"},
                {"from": "gpt", "value": "because " * 10},
                {"from": "human", "value": "and then?"},
            ]
        }
    )
    assert [m["role"] for m in share.messages] == ["system", "user"] and share.max_tokens == 13
    for bad, says in [
        ([], "JSON object"),
        ({"prompt": ""}, "non-empty"),
        ({"messages": [{"content": "x"}]}, "role"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"conversations": [{"from": "gpt", "value": "x"}]}, "no human turn"),
        ({"text": "x"}, "no 'messages'"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_entry(bad)


def _write_jsonl(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"prompt {i} — naïve café ✓", "max_tokens": 1 + i % 50}) + "\n")


def test_a_jsonl_file_names_bad_lines_and_workers_share_it_without_repeats(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    _write_jsonl(path, 40)
    with open(path, "a") as f:
        f.write("{not json\n\n" + json.dumps({"messages": "no"}) + "\n")
    index = build_index(path)
    assert index.entries == 40 and index.bad == 2
    assert index.bad_examples == ("d.jsonl:41: not JSON (Expecting property name enclosed in double quotes)",
                                  "d.jsonl:43: messages must be a non-empty list")  # fmt: skip
    readers = [DatasetReader(index, seed=3, first=k, stride=2) for k in range(2)]
    seen = [[r.next().prompt for _ in range(20)] for r in readers]
    assert len(set(seen[0]) | set(seen[1])) == 40  # two workers, one pass: every entry once
    assert seen[0][:5] != [f"prompt {i} — naïve café ✓" for i in range(5)]  # shuffled, not file order
    again = DatasetReader(index, seed=3, first=0, stride=2)
    assert [again.next().prompt for _ in range(20)] == seen[0]  # the same seed, the same order
    for r in [*readers, again]:
        r.close()


def test_a_sharegpt_json_array_is_streamed_in_a_small_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "CHUNK", 64)  # elements straddle every read
    turns = [
        [{"from": "human", "value": f"question {i} ünïcode"}, {"from": "gpt", "value": "a " * i}] for i in range(30)
    ]
    conv: list[dict[str, Any]] = [{"id": str(i), "conversations": turns[i]} for i in range(1, 30)]
    conv.insert(5, {"id": "x", "conversations": [{"from": "gpt", "value": "no question"}]})
    path = tmp_path / "share.json"
    path.write_text(json.dumps(conv, indent=1, ensure_ascii=False), encoding="utf-8")
    index = build_index(path)
    assert index.json_array and index.entries == 29 and index.bad == 1
    assert index.bad_examples[0].startswith("share.json:") and "no human turn" in index.bad_examples[0]
    reader = DatasetReader(index, seed=1)
    got = {reader.read(i).messages[0]["content"] for i in range(index.entries)}
    assert got == {f"question {i} ünïcode" for i in range(1, 30)}  # byte offsets right past multi-byte text


def test_a_big_file_is_indexed_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        line = json.dumps({"prompt": "word " * 400}) + "\n"
        for _ in range(12_000):
            f.write(line)
    size = path.stat().st_size
    assert size > 20_000_000
    tracemalloc.start()
    index = build_index(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert index.entries == 12_000
    assert peak < size / 10  # streamed: the index and one line at a time, never the file


def test_unusable_datasets_fail_before_any_load(tmp_path: Path) -> None:
    r = _run("run", "--dataset", str(tmp_path / "missing.jsonl"), "-n", "1")
    assert r.returncode == 2 and "no such dataset file" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("nope\n")
    with pytest.raises(DatasetError, match=r"no usable entry.*empty.jsonl:1: not JSON"):
        load_index(str(empty))


@pytest.mark.slow
def test_the_bundled_sample_runs_with_its_own_lengths(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    r = _run("run", sim_url, "--preset", "dataset", "-n", "24", "--seed", "9", "-o", str(out))
    assert r.returncode == 0, r.stderr
    sample = [json.loads(x) for x in Path(load_index("sample").path).read_text().splitlines()]
    asked = {e["max_tokens"] for e in sample}
    reqs = _requests(out)
    assert {q["max_tokens"] for q in reqs} <= asked and len({q["max_tokens"] for q in reqs}) > 2
    assert all(q["output_tokens"] == q["max_tokens"] for q in reqs)  # ignore_eos: the entry's length exactly
    assert len({q["prompt_tokens"] for q in reqs}) > 5
    s = _summary(out)
    assert any("sample-chats.jsonl: 64 entries" in n for n in s["notes"])
    assert not any("meant to be cold" in n for n in s["notes"])  # the user's prompts share what they share


# ---- 3. shared prefixes, on purpose ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_sim() -> Iterator[str]:
    """A server whose prefill costs enough that cached prefixes show in TTFT."""
    timing = quick_timing()
    timing.prefill_per_token = 0.0001
    with SimProcess(SimConfig(timing=timing)) as sim:
        yield sim.url


@pytest.mark.slow
def test_shared_prefixes_hit_the_cache_and_the_cold_default_does_not(cache_sim: str, tmp_path: Path) -> None:
    common = ["-c", "4", "-n", "48", "--output-tokens", "8", "--seed", "21"]
    r = _run("run", cache_sim, "--preset", "prefix-cache", *common, "-o", str(tmp_path / "warm"))
    assert r.returncode == 0, r.stderr
    warm = _summary(tmp_path / "warm")
    r = _run("run", cache_sim, *common, "--input-tokens", str(1024 + 128), "-o", str(tmp_path / "cold"))
    assert r.returncode == 0, r.stderr
    cold = _summary(tmp_path / "cold")
    assert warm["mean_input_tokens"] == pytest.approx(cold["mean_input_tokens"], rel=0.05)  # same lengths
    assert warm["prefix_cache_hit_rate"] > 0.7 and cold["prefix_cache_hit_rate"] < 0.05
    assert warm["median_ttft_ms"] < cold["median_ttft_ms"]
    assert not any("meant to be cold" in n for n in warm["notes"])
    shape = find_preset("prefix-cache").shape
    assert shape.shared_prefix_tokens == 1024 and shape.prefix_groups == 4


# ---- 4. multi-turn chats -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_multi_turn_chats_resend_the_history_and_report_ttft_per_turn(cache_sim: str, tmp_path: Path) -> None:
    out = tmp_path / "chat"
    r = _run(
        "run", cache_sim, "--preset", "chat-sessions", "-c", "3", "-n", "27", "--turns", "3",
        "--think-time", "0.05", "--seed", "4", "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "turns" in r.stdout
    s = _summary(out)
    turns = {t["turn"]: t for t in s["turns"]}
    assert set(turns) == {1, 2, 3} and sum(t["completed"] for t in turns.values()) == 27
    assert turns[1]["mean_prompt_tokens"] < turns[2]["mean_prompt_tokens"] < turns[3]["mean_prompt_tokens"]
    assert turns[2]["mean_prompt_tokens"] > 96 * 2 + 96 - 20  # two user messages and an answer
    assert turns[1]["prefix_cache_hit_rate"] < 0.1 < 0.5 < turns[3]["prefix_cache_hit_rate"]
    assert sorted({q["turn"] for q in _requests(out)}) == [1, 2, 3]
    r = _run("run", cache_sim, "--turns", "3", "--rate", "2", "-n", "4")
    assert r.returncode == 2 and "closed loop" in r.stderr


# ---- 5. reasoning models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sse_chat_vllm_reasoning.txt", "sse_chat_reasoning_field.txt"])
async def test_reasoning_streams_count_as_output_with_their_own_first_token(name: str) -> None:
    from tests.test_client import _measure, _serve_bytes

    runner, url = await _serve_bytes((FIXTURES / name).read_bytes())
    try:
        rec = await _measure(url, "chat")
    finally:
        await runner.cleanup()
    assert rec.ok, rec.error
    assert rec.reasoning_chunks in (8, 6)
    assert rec.ttft is not None and rec.ttfr is not None and rec.ttfc is not None
    assert rec.ttft <= rec.ttfr <= rec.ttfc  # TTFT keeps vLLM's definition: the first choices message
    assert rec.output_tokens == (11 if "vllm" in name else 10)  # usage counts the reasoning
    assert rec.to_json()["ttfr_ms"] is not None


@pytest.mark.slow
def test_a_reasoning_model_on_the_simulated_server(tmp_path: Path) -> None:
    with SimProcess(SimConfig(timing=quick_timing(), reasoning_tokens=12)) as sim:
        out = tmp_path / "r"
        r = _run("run", sim.url, "-c", "2", "-n", "8", "--output-tokens", "32", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = _summary(out)
    block = s["reasoning"]
    assert block["completed"] == 8 and block["mean_reasoning_tokens"] == 12
    assert block["median_ttfr_ms"] < block["median_answer_ttfc_ms"]
    assert s["mean_output_tokens"] == 32  # reasoning tokens are output
    assert "│ first answer token (ms)" in r.stdout and "│ first reasoning token (ms)" in r.stdout  # the matrix


# ---- 6. long context ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_long_context_fills_the_servers_context_and_a_refusal_is_said_once(tmp_path: Path) -> None:
    with SimProcess(SimConfig(timing=quick_timing(), max_model_len=1024)) as sim:
        r = _run("run", sim.url, "--preset", "long-context", "-n", "4", "-o", str(tmp_path / "fill"))
        assert r.returncode == 0, r.stderr
        s = _summary(tmp_path / "fill")
        assert s["failed"] == 0 and 1024 * 0.9 - 64 - 40 < s["mean_input_tokens"] <= 1024 * 0.9 - 64
        assert any("context is 1,024 tokens" in n for n in s["notes"])
        r = _run("run", sim.url, "-c", "2", "-n", "12", "--input-tokens", "2000", "-o", str(tmp_path / "over"))
    s = _summary(tmp_path / "over")
    assert s["errors"] == {"http_400": 12}
    said = [n for n in s["notes"] if "too long for its context" in n]
    assert len(said) == 1 and "maximum context length is 1024" in said[0]
    assert r.stdout.count("maximum context length") == 1  # one line, not a flood


# ---- presets -----------------------------------------------------------------------------------------------


def test_presets_take_distributions_and_workload_keys(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "hello"}) + "\n")
    good = tmp_path / "mine.toml"
    good.write_text(
        'name = "mine"\n[load]\nconcurrency = 2\n[length]\nrequests = 4\n[request]\n'
        'input_tokens = "lognormal:300,0.5"\noutput_tokens = 64\ndataset = "p.jsonl"\nturns = 2\nthink_time = 0.5\n'
    )
    shape = load_preset_file(good).shape
    assert shape.input_dist == LengthDist.parse("lognormal:300,0.5") and shape.input_tokens == 300
    assert shape.dataset == str(tmp_path / "p.jsonl")  # relative to the preset's folder
    assert shape.turns == 2 and shape.think_time == 0.5 and shape.output_dist is None
    bad = tmp_path / "bad.toml"
    bad.write_text('[load]\nconcurrency = 1\n[length]\nrequests = 1\n[request]\ninput_tokens = "uniform:9"\n')
    with pytest.raises(PresetError, match=r"bad.toml: request.input_tokens: .*takes 2"):
        load_preset_file(bad)
    r = _run("presets", "show", "chat-sessions")
    assert "4 turns" in r.stdout
