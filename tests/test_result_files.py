"""Result readers (``report``, ``compare``, ``runs``) on malformed files: one line naming the file, the line and the
field, exit 2 — never a traceback. Checked on a real run's files, mutated at random a thousand times."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmsurge.cli import main
from tests.helpers import run_cli

VALUES: list[object] = [[1], {"a": 1}, "str", float("nan"), float("inf"), -1, 1e308, None, True, 5, "", [], 2**70]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("runs") / "base"
    r = run_cli("run", "-n", "12", "-c", "2", "--input-tokens", "16", "--output-tokens", "8", "-o", str(out))
    assert r.returncode == 0, r.stderr
    yield out


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return int(code), err.getvalue()


def _mutate(base: Path, dst: Path, rng: random.Random) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    if rng.random() < 0.4:
        path = dst / "summary.json"
        data = json.loads(path.read_text())
        target = rng.choice(data["segments"]) if rng.random() < 0.5 else data
        key = rng.choice(list(target))
        if rng.random() < 0.1:
            del target[key]
        else:
            target[key] = rng.choice(VALUES)
        path.write_text(json.dumps(rng.choice(VALUES) if rng.random() < 0.03 else data))
        return
    path = dst / "requests.jsonl"
    lines = path.read_text().splitlines()
    i = rng.randrange(len(lines))
    row = json.loads(lines[i])
    op = rng.random()
    if op < 0.08:
        lines[i] = json.dumps(rng.choice(VALUES))
    elif op < 0.12:
        lines[i] = lines[i][: rng.randrange(len(lines[i]))]
    else:
        key = rng.choice(list(row))
        if op < 0.2:
            del row[key]
        else:
            row[key] = rng.choice(VALUES)
        lines[i] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_thousand_mutations_of_a_real_run_give_no_traceback(real_run: Path, tmp_path: Path) -> None:
    rng = random.Random(20261207)
    work = tmp_path / "m"
    refused = 0
    for k in range(1000):
        _mutate(real_run, work, rng)
        command = [("report", str(work)), ("compare", str(real_run), str(work)), ("runs", str(tmp_path))][k % 3]
        code, err = _cli(*command)  # an exception escaping here is the traceback a user would see
        assert code in (0, 1, 2), (command, code, err)
        lines = err.strip().splitlines()
        if command[0] == "runs" and lines and lines[0].startswith("llmsurge: skipped"):
            refused += 1  # the run is named as left out, with why
            assert str(work) in lines[0] and lines[-1].startswith("llmsurge: error: no saved runs"), err
        elif code == 2:
            refused += 1
            assert len(lines) == 1 and lines[0].startswith("llmsurge: error: ") and str(work) in lines[0], err
    assert refused > 100  # the mutations did reach the readers


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("[1, 2]", "requests.jsonl:3: a line must be a JSON object, not list"),
        ('{"output_tokens": [1]}', "requests.jsonl:3: field 'output_tokens' must be a whole number ≥ 0 or null"),
        ('{"ttft_ms": NaN}', "jsonl:3: field 'ttft_ms' must be a finite number (at most 1e15) or null, not nan"),
        ('{"ttft_ms": "12"}', "jsonl:3: field 'ttft_ms' must be a finite number (at most 1e15) or null, not '12'"),
        ('{"status": "weird"}', "requests.jsonl:3: field 'status' must be one of ok, failed, cancelled"),
    ],
)
def test_a_malformed_request_line_is_named_with_its_line_and_field(
    real_run: Path, tmp_path: Path, line: str, said: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(real_run, bad)
    lines = (bad / "requests.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    lines[2] = line if line.startswith("[") else json.dumps({**row, **json.loads(line)}).replace("NaN", "NaN")
    (bad / "requests.jsonl").write_text("\n".join(lines) + "\n")
    for command in (("report", str(bad)), ("compare", str(real_run), str(bad))):
        code, err = _cli(*command)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err


def test_a_malformed_summary_is_named_with_its_field(real_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(real_run, bad)
    shutil.copytree(real_run, tmp_path / "good")
    data = json.loads((bad / "summary.json").read_text())
    data["segments"] = 5
    (bad / "summary.json").write_text(json.dumps(data))
    for command in (("report", str(bad)), ("compare", str(real_run), str(bad))):
        code, err = _cli(*command)
        assert code == 2 and "summary.json: field 'segments' must be a list, not 5" in err, err
    code, err = _cli("runs", str(tmp_path))
    assert code == 0 and err.startswith(
        f"llmsurge: skipped {bad / 'summary.json'}: field 'segments'"
    )  # the others shown


def test_compare_says_when_the_runs_models_or_servers_differ(real_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(real_run, other)
    data = json.loads((other / "summary.json").read_text())
    data["model_id"] = "another/model"
    data["server"]["kind"] = "vllm"
    data["config"]["url"] = "http://127.0.0.1:8000"
    (other / "summary.json").write_text(json.dumps(data))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", str(real_run), str(other)]) == 0
    text = " ".join(out.getvalue().split())
    assert "the runs' models differ (llmsurge-sim vs another/model)" in text
    assert "the runs' servers differ (simulated at simulated vs vllm at http://127.0.0.1:8000)" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["compare", str(real_run), str(real_run)])
    assert "differ (" not in out.getvalue()


def test_report_on_a_run_killed_before_its_summary_recomputes_it_and_passes(real_run: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(real_run, killed)
    (killed / "summary.json").unlink()  # SIGKILL: requests.jsonl written, the summary not
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", str(killed)]) == 0  # nothing disagrees: exit 0, not 1
    assert "no summary.json to compare with" in out.getvalue()


def _file_round_trip(folder: Path) -> None:
    """summary.json read into the typed model and written back is the same file: nothing lost, nothing added."""
    from llmsurge.metrics.model import RunSummary
    from llmsurge.metrics.results import clean_floats

    data = json.loads((folder / "summary.json").read_text())
    again = json.loads(json.dumps(clean_floats(RunSummary.from_json(data).to_json())))
    assert again == data


def test_a_summary_round_trips_through_the_typed_model(real_run: Path, tmp_path: Path) -> None:
    _file_round_trip(real_run)
    out = tmp_path / "slo-turns"  # an SLO, multi-turn chats: goodput, turns, the SLO block
    r = run_cli(
        "run", "-n", "12", "-c", "2", "--turns", "2", "--output-tokens", "8", "--slo", "ttft:2000", "-o", str(out)
    )
    assert r.returncode == 0, r.stderr
    _file_round_trip(out)
    s = json.loads((out / "summary.json").read_text())
    assert s["turns"] and s["slo"] == {"ttft": 2000.0} and "good_share" in s["segments"][0]


def test_a_capacity_search_and_a_vllm_result_read_into_the_model() -> None:
    from llmsurge.metrics.model import RunSummary

    capacity = {
        "mode": "concurrency", "target_good_share": 0.95, "max_held": 8.0, "max_held_load": "c=8",
        "first_failed": 9.0, "partial": False,
        "levels": [{"load": "c=8", "level": 8.0, "good_share": 1.0, "held": True},
                   {"load": "c=9", "level": 9.0, "good_share": 0.88, "held": False}],
    }  # fmt: skip
    s = RunSummary.from_json({"llmsurge_version": "x", "completed": 3, "capacity": capacity, "segments": []})
    assert s.capacity is not None and s.capacity.first_failed_level is not None
    assert s.capacity.first_failed_level.load == "c=9" and s.to_json()["capacity"] == capacity
    vllm = RunSummary.from_json({"completed": 10, "max_concurrency": 8, "median_ttft_ms": 12.5, "ttfts": [0.01]})
    assert vllm.source == "vllm bench serve" and [lv.load for lv in vllm.levels] == ["c=8"]
    assert vllm.levels[0].value("median_ttft_ms") == 12.5 and vllm.extra["ttfts"] == [0.01]
