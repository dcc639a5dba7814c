"""Is the output sane? The quality set (judged answers), degenerate text under load, and `check`'s verdict —
against the simulated server in its correct, wrong and degenerate modes, over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmsurge.presets import find_preset
from llmsurge.quality import ITEMS, degenerate_reason, judge
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import SimConfig
from tests.conftest import quick_timing
from tests.helpers import run_cli as _run


@pytest.fixture(scope="module", params=["correct", "wrong", "degenerate"])
def answering_sim(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with SimProcess(SimConfig(timing=quick_timing(), answers=request.param)) as sim:
        yield request.param, sim.url


def test_the_set_is_about_thirty_checkable_items_each_judged_both_ways() -> None:
    assert 25 <= len(ITEMS) <= 40 and len({i.name for i in ITEMS}) == len(ITEMS)
    assert {i.kind for i in ITEMS} == {"number", "contains", "json", "python"}
    for item in ITEMS:
        assert judge(item, item.answer()) == (True, ""), item.name
        assert judge(item, f"Sure! Here it is:\n{item.answer()}\nHope that helps.")[0], item.name  # chatty is fine
        ok, why = judge(item, item.wrong_answer())
        assert not ok and why, item.name
        assert not judge(item, f"{item.prompt}<|im_end|>\n")[0], item.name  # a base model's echo is no answer


@pytest.mark.parametrize(
    ("text", "tokens", "says"),
    [
        ("Paris is the capital. " + "the " * 30, 40, "'the' repeated"),
        ("Answer: " + "I think so. " * 12, 40, "'I think so.' repeated"),
        ("x" * 60, 60, "one character"),
        ("ok \ufffd\ufffd\ufffd done", 9, "replacement characters"),
        ("", 30, "no text in 30 output tokens"),
    ],
)
def test_degenerate_tails_are_named(text: str, tokens: int, says: str) -> None:
    assert says in degenerate_reason(text, tokens)


def test_prose_code_and_reasoning_only_answers_are_not_degenerate() -> None:
    prose = "The river of a model and in to is that it for on with as was at by an be this from or " * 6
    assert degenerate_reason(prose, 138) == ""  # the simulated server's filler: a 23-word cycle
    assert degenerate_reason("def f():\n    return 1\n\n\nprint(f())\n", 12) == ""
    assert degenerate_reason("", 30, reasoning=30) == ""  # all thinking, no answer yet: not garbage
    assert degenerate_reason("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12", 30) == ""


@pytest.mark.slow
def test_check_scores_the_set_and_says_degraded(answering_sim: tuple[str, str]) -> None:
    mode, url = answering_sim
    r = _run("check", url, "--wait", "20")
    out = r.stdout
    if mode == "correct":
        assert r.returncode == 0, out
        assert "quality: 30 of 30 answers right (100%" in out and "HEALTHY" in out and "quality 100%" in out
    else:
        assert r.returncode == 1, out
        assert "DEGRADED" in out and "quality: 0 of 30" in out
        assert "✗ arith 17+25: wrong:" in out  # the failing items, with what came back
    listed = _run("check", url, "--wait", "20", "--items", "--quality-threshold", "0")
    assert listed.returncode == 0 and listed.stdout.count("    ✓ ") + listed.stdout.count("    ✗ ") == 30
    skipped = _run("check", url, "--wait", "20", "--no-quality")
    assert skipped.returncode == 0 and "quality" not in skipped.stdout


def test_the_quality_preset_scores_each_segment_and_flags_degenerate_text(
    answering_sim: tuple[str, str], tmp_path: Path
) -> None:
    mode, url = answering_sim
    out = tmp_path / "q"
    r = _run("run", url, "--preset", "quality", "-c", "6", "-n", "30", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s: dict[str, Any] = json.loads((out / "summary.json").read_text())
    seg = s["segments"][0]
    assert seg["quality"]["asked"] == 30
    expected = {"correct": 1.0, "wrong": 0.0, "degenerate": 0.0}[mode]
    assert seg["quality"]["score"] == expected and s["quality"]["score"] == expected
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    if mode == "degenerate":
        assert s["degenerate"] == 30 and seg["degenerate"] == 30
        assert all("'the' repeated" in q["degenerate"] for q in rows if not q["warmup"])
        assert any("degenerate text" in n for n in s["notes"])
    else:
        assert s["degenerate"] == 0 and not any("degenerate" in q for q in rows)
        wrong = [q["quality"] for q in rows if not q["quality"]["correct"]]
        assert len(wrong) == (30 if mode == "wrong" else 0)
        assert all(w["why"] for w in wrong)


@pytest.mark.slow
def test_ordinary_runs_count_no_degenerate_answers(sim_url: str, tmp_path: Path) -> None:
    r = _run("run", sim_url, "-c", "4", "-n", "20", "--output-tokens", "64", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["degenerate"] == 0 and "quality" not in s


def test_the_quality_preset_is_the_set_at_temperature_zero() -> None:
    sc = find_preset("quality")
    assert len(sc.shape.cases) == len(ITEMS) and all(c.checked for c in sc.shape.cases)
    assert sc.shape.temperature == 0.0 and not sc.shape.ignore_eos


@pytest.mark.slow
async def test_quality_from_the_palette_runs_the_set_in_a_new_segment(tmp_path: Path) -> None:
    from llmsurge.engine.session import RunConfig
    from llmsurge.tui.app import make_app
    from llmsurge.widgets.segments_table import SegmentsTable
    from tests.helpers import palette
    from tests.helpers import pilot_until as _until

    cfg = RunConfig(
        scenario=find_preset("demo").with_overrides(concurrency=2, output_tokens=16, input_tokens=16),
        url=None,
        workers=1,
        output=tmp_path / "results",
        keep_alive=True,
        calibrate=False,
    )
    cfg.sim_config = SimConfig(timing=quick_timing(), answers="correct")
    app = make_app(cfg)
    async with app.run_test(size=(200, 50)) as pilot:
        await _until(pilot, lambda: app.session.bus.finished_total >= 2)
        await palette(pilot, "quality 5")
        await _until(pilot, lambda: len(app.session.bus.view().segments) >= 3, 90)  # the set, then back
        segs = app.session.bus.view().segments
        assert [s.label for s in segs[:3]] == ["c=2", "c=5", "c=2"]
        assert segs[1].quality_asked >= 10 and segs[1].quality_ok == segs[1].quality_asked
        assert app.session.bus.state == "running"  # the live run goes on: the set was a segment, not the end
        assert any("the quality set is done: back to c=2" in e.message for e in app.session.bus.events)
        table = app.screen.query_one(SegmentsTable)
        await _until(pilot, lambda: "quality" in table._shown)
        await pilot.press("q")
        await _until(pilot, lambda: not app.is_running)
