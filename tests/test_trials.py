"""Repeated trials (``run --repeat N``) against the simulated server: a folder per trial, each figure's mean and 95%
interval over the trials, and compare taking the trials' spread as the noise."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest

from llmsurge.metrics.compare import compare
from llmsurge.metrics.model import RunSummary
from llmsurge.metrics.results import clean_floats
from llmsurge.metrics.runs import load_run
from llmsurge.metrics.stats import t_95
from tests.helpers import CLI, run_cli, sim_cli

LOAD = ("-c", "2", "-n", "12", "--input-tokens", "32", "--output-tokens", "16")


def _repeat(url: str, out: Path, *flags: str) -> None:
    r = run_cli("run", url, *LOAD, "--repeat", "3", "-o", str(out), *flags)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 trials: mean and 95% confidence interval" in r.stdout and r.stdout.count("trial ") >= 3


@pytest.mark.slow
def test_repeated_trials_report_each_figures_mean_and_interval(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _repeat(sim_url, out)
    trials = [json.loads((out / f"trial-{k}" / "summary.json").read_text()) for k in (1, 2, 3)]
    assert all((out / f"trial-{k}" / "requests.jsonl").is_file() for k in (1, 2, 3))  # each trial a whole run
    seeds = [t["config"]["seed"] for t in trials]
    assert len(set(seeds)) == 3 and seeds == sorted(seeds)  # fresh seeds, one after another
    data = json.loads((out / "summary.json").read_text())
    s = RunSummary.from_json(data)
    assert s.trials is not None and s.trials.n == 3 and list(s.trials.seeds) == seeds
    assert json.loads(json.dumps(clean_floats(s.to_json()))) == data  # the typed model round-trips the file
    assert s.run.completed == sum(t["completed"] for t in trials) == 36  # counts summed over the trials
    for key in ("request_throughput", "median_ttft_ms", "p99_e2el_ms"):
        values = [t[key] for t in trials]
        tf = s.trials.figures[key]
        mean = sum(values) / 3
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        assert tf.values == pytest.approx(values) and tf.mean == pytest.approx(mean)
        assert tf.high - tf.mean == pytest.approx(t_95(2) * sd / math.sqrt(3))
        assert data[key] == pytest.approx(mean)  # the summary's figure is the trials' mean
    r = run_cli("report", str(out))
    assert r.returncode == 2 and "repeated run (3 trials): report a trial" in r.stderr
    r = run_cli("runs", str(tmp_path))
    assert r.returncode == 0 and "36/0" in r.stdout, r.stdout


@pytest.mark.slow
def test_compare_takes_the_trials_spread_as_its_noise(sim_url: str, tmp_path: Path) -> None:
    """Two repeated runs of one setup: every row within noise, its interval from the trials; against a server
    that decodes three times slower, TPOT and E2EL are worse beyond that noise."""
    _repeat(sim_url, tmp_path / "a")
    _repeat(sim_url, tmp_path / "b")
    with sim_cli("--step-ms", "36") as slow:
        _repeat(slow, tmp_path / "slow")
    same = compare([load_run(tmp_path / "a"), load_run(tmp_path / "b")])
    rows = {row.metric.label: row for level in same.levels for row in level.rows}
    for label in ("TPOT p50", "E2EL p50", "output throughput"):
        change = rows[label].changes[1]
        assert change is not None and change.noise_known and change.interval is not None, (label, change)
    slower = compare([load_run(tmp_path / "a"), load_run(tmp_path / "slow")])
    rows = {row.metric.label: row for level in slower.levels for row in level.rows}
    for label in ("TPOT p50", "E2EL p50"):
        change = rows[label].changes[1]
        assert change is not None and change.noise_known and change.better is False, (label, change)


@pytest.mark.slow
def test_a_stop_signal_ends_the_trials_and_summarizes_those_finished(sim_url: str, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    argv = [*CLI, "run", sim_url, "-c", "2", "-d", "3", "--output-tokens", "16", "--repeat", "3", "-o", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (out / "trial-2" / "requests.jsonl").is_file():  # trial 2 is under way
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130
    assert "trial 2 was stopped (exit status 130)" in stdout and "1 trial: mean" in stdout
    s = RunSummary.from_json(json.loads((out / "summary.json").read_text()))
    assert s.trials is not None and s.trials.n == 1 and s.trials.folders == ("trial-1",)
    assert (out / "trial-2").is_dir() and not (out / "trial-3").exists()


def test_repeat_refuses_a_search_in_one_line() -> None:
    r = run_cli("run", "--repeat", "3", "--find-max", "concurrency", "--slo", "ttft=500ms")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--repeat with --find-max" in r.stderr, r.stderr
    r = run_cli("run", "--repeat", "1")
    assert r.returncode == 2 and "out of range: use 2-100" in r.stderr, r.stderr
