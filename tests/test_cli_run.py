"""`llmsurge run` end to end, as a user runs it: a server in one process, the CLI in another."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.helpers import CLI, run_cli


def _free_sim(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([*CLI, "sim", "--port", "0", "--step-ms", "2", *extra], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    url = line.split(" on ")[1].split(" ")[0]
    return p, url


@pytest.fixture(scope="module")
def cli_sim() -> Iterator[str]:
    p, url = _free_sim([])
    yield url
    p.terminate()
    p.wait(5)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "requests.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_max_throughput_preset_summary_agrees_with_requests(cli_sim: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run(
        [*CLI, "run", cli_sim, "--preset", "max-throughput", "--output-tokens", "32", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Successful requests" in r.stdout
    # stdout is a pipe here, as in CI or `> run.log`: tables sized to their content, no number cut to "713…"
    # … and latencies as a matrix (a row per metric, a column per statistic), as a log reads them best
    assert "…" not in r.stdout and re.search(r"TTFT \(ms\)\s*│\s*160\s*│", r.stdout), r.stdout
    s = json.loads((out / "summary.json").read_text())
    rows = [x for x in _rows(out) if not x["warmup"]]
    assert s["completed"] == 160 and s["failed"] == 0 and len(rows) == 160
    ok = [x for x in rows if x["status"] == "ok"]
    assert s["total_output_tokens"] == sum(x["output_tokens"] for x in ok) == 160 * 32
    assert s["total_input_tokens"] == sum(x["prompt_tokens"] for x in ok)
    ttft = np.array([x["ttft_ms"] for x in ok])
    assert s["mean_ttft_ms"] == pytest.approx(ttft.mean(), rel=1e-4)
    assert s["p99_ttft_ms"] == pytest.approx(np.percentile(ttft, 99), rel=1e-4)
    itl = np.array([v for x in ok for v in x["itl_ms"]])
    assert s["median_itl_ms"] == pytest.approx(np.median(itl), rel=1e-3)
    tpot = np.array([x["tpot_ms"] for x in ok])
    assert s["mean_tpot_ms"] == pytest.approx(tpot.mean(), rel=1e-4)
    assert s["output_throughput"] == pytest.approx(s["total_output_tokens"] / s["duration"])
    # input lengths were calibrated against the server's own count
    assert abs(np.mean([x["prompt_tokens"] for x in ok]) - 512) < 10
    # resolving cost the server little: short calibration prompts, and a short warm-up, each said in the summary
    assert s["resolving"]["requests"] == 3 and 0 < s["resolving"]["prompt_tokens"] < 512, s["resolving"]
    warm = [x for x in _rows(out) if x["warmup"]]
    assert warm and s["warmup"]["completed"] == len(warm)
    assert all(x["prompt_tokens"] <= 48 and x["output_tokens"] <= 16 for x in warm), warm
    assert (s["warmup"]["input_tokens"], s["warmup"]["output_tokens"]) == (32, 16)
    assert "api_key" not in json.dumps(s["config"]).replace("api_key_env", "")


@pytest.mark.slow
def test_faulty_server_every_request_accounted(tmp_path: Path) -> None:
    p, url = _free_sim(
        ["--faults", "http500=0.05,http429=0.03,http503=0.03,reset=0.04,stall=0.02,malformed=0.04,no_usage=0.05"]
    )
    try:
        out = tmp_path / "f"
        r = subprocess.run(
            [
                *CLI,
                "run",
                url,
                "-c",
                "16",
                "-n",
                "300",
                "--output-tokens",
                "20",
                "--timeout",
                "2",
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        p.terminate()
        p.wait(5)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    rows = [x for x in _rows(out) if not x["warmup"]]
    assert len(rows) == 300
    assert s["completed"] + s["failed"] + s["cancelled"] == 300
    assert s["failed"] == sum(1 for x in rows if x["status"] == "failed") > 0
    assert sum(s["errors"].values()) == s["failed"]
    assert {"http_500", "reset", "protocol"} <= set(s["errors"])
    assert s["output_tokens_estimated"] > 0


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_saves_everything_and_leaves_no_process(sig: int, tmp_path: Path) -> None:
    """SIGINT, SIGTERM (timeout, docker stop, systemd) and SIGHUP all cancel, record and save; the exit status
    says which; no worker or simulated server survives."""
    out = tmp_path / "c"
    p = subprocess.Popen(
        [*CLI, "run", "-c", "8", "--duration", "60", "--output-tokens", "400", "--output", str(out), "-w", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = out / "requests.jsonl"
        if f.exists() and len(f.read_text().splitlines()) > 10:
            break
        time.sleep(0.2)
    children = [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
    assert len(children) >= 3  # two workers and the simulated server (plus multiprocessing's tracker)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, stderr
    assert f"stopped by {signal.Signals(sig).name}" in stdout
    s = json.loads((out / "summary.json").read_text())
    rows = [x for x in _rows(out) if not x["warmup"]]
    assert s["cancelled"] == 8  # the in-flight ones, recorded as cancelled
    assert s["completed"] + s["failed"] + s["cancelled"] == len(rows)
    assert not _wait_gone(children), "a worker or the simulated server outlived the run"


@pytest.mark.slow
def test_children_die_with_a_sigkilled_parent(tmp_path: Path) -> None:
    """Even SIGKILL of the run (nothing can be saved) leaves no load generator behind."""
    out = tmp_path / "k"
    p = subprocess.Popen(
        [*CLI, "run", "-c", "4", "--duration", "60", "--output", str(out), "-w", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = out / "requests.jsonl"
        if f.exists() and f.read_text().count("\n") > 4:
            break
        time.sleep(0.2)
    children = [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
    assert len(children) >= 3
    p.kill()
    p.wait(10)
    assert not _wait_gone(children), "processes outlived a SIGKILLed run"


@pytest.mark.slow
def test_bad_input_is_one_clear_line(cli_sim: str) -> None:
    r = subprocess.run([*CLI, "run", cli_sim, "--model", "gpt-9"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("llmsurge: error: model 'gpt-9' is not served")
    assert "Traceback" not in r.stderr
    r = subprocess.run([*CLI, "run", "http://127.0.0.1:9", "--wait", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "did not answer within 1s" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [*CLI, "run", "--api-key-env", "LLMSURGE_NO_SUCH_VAR"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LLMSURGE_NO_SUCH_VAR": ""},
    )
    assert r.returncode == 2 and "LLMSURGE_NO_SUCH_VAR" in r.stderr


def test_api_key_never_written(cli_sim: str, tmp_path: Path) -> None:
    out = tmp_path / "k"
    secret = "sk-test-SECRET-123456"
    r = subprocess.run(
        [
            *CLI,
            "run",
            cli_sim,
            "-c",
            "2",
            "-n",
            "4",
            "--output-tokens",
            "4",
            "--api-key-env",
            "MY_KEY",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MY_KEY": secret},
    )
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    for f in out.iterdir():
        assert secret not in f.read_text()
    assert json.loads((out / "summary.json").read_text())["config"]["api_key_env"] == "MY_KEY"


@pytest.mark.slow
def test_check_healthy_and_unhealthy(cli_sim: str) -> None:
    r = subprocess.run([*CLI, "check", cli_sim], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "HEALTHY" in r.stdout and "TTFT" in r.stdout and "usage reported" in r.stdout
    assert "telemetry server /metrics: available (vLLM" in r.stdout and "telemetry gpu: available" in r.stdout
    r = subprocess.run([*CLI, "check", "http://127.0.0.1:9", "--wait", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "UNHEALTHY" in r.stdout  # not reachable


def test_bad_url_and_port_are_one_line() -> None:
    for args in (["check", "notaurl::", "--wait", "1"], ["run", "ftp://x", "--wait", "1"], ["sim", "--port", "99999"]):
        r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and "error" in r.stderr


def test_a_url_with_an_endpoints_path_is_its_server(cli_sim: str, tmp_path: Path) -> None:
    """A URL pasted with /v1/chat/completions (or /v1/messages, /v1/models …) is its server's, said in one note —
    not a missing model."""
    from llmsurge.net import normalize_base_url, without_endpoint

    assert without_endpoint("http://h:8000/v1/chat/completions/") == ("http://h:8000", "/v1/chat/completions")
    assert without_endpoint("http://h:8000/v1/messages")[1] == "/v1/messages"
    assert without_endpoint("http://h:8000") == ("http://h:8000", "")
    assert normalize_base_url("h:8000/v1/models") == "http://h:8000"
    r = subprocess.run(
        [*CLI, "run", cli_sim + "/v1/chat/completions", "-n", "3", "-o", str(tmp_path / "u")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        f"note: {cli_sim}/v1/chat/completions ends in /v1/chat/completions: using the server at {cli_sim}" in r.stderr
    )


@pytest.mark.slow
def test_a_bounded_run_says_how_far_it_has_come(cli_sim: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [*CLI, "run", cli_sim, "-c", "2", "-d", "3", "--progress-interval", "0.5", "-o", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"  0:0[0-3]/0:03 \d+%", r.stdout), r.stdout  # seconds run of the planned three
    args = ["-c", "2", "-n", "30", "--output-tokens", "64", "--progress-interval", "0.5", "-o", str(tmp_path / "n")]
    r = subprocess.run(
        [*CLI, "run", cli_sim, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert re.search(r"  \d+/30 \d+% ETA \d+:\d\d", r.stdout), r.stdout  # requests ended of 30, and time left
    lines = [line for line in r.stdout.splitlines() if "ETA" in line]
    assert lines and all(re.match(r"done \d+/30  \d+/30 \d+% ETA", line) for line in lines), lines  # how far, first


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "-c", "0"], "argument --concurrency/-c: 0 is out of range: use 1-100,000 (see llmsurge run --help)"),
        (["run", "-n", "-5"], "(see llmsurge run --help)"),
        (["run", "--concurency", "8"], "unrecognized arguments: --concurency; did you mean --concurrency?"),
        (["run", "--endpoint", "embedding"], "did you mean 'embeddings'? (see llmsurge run --help)"),
        (["rnu"], "unknown command 'rnu'; did you mean 'run'? (see llmsurge --help)"),
        (["run", "-d", "ten"], "'ten' is not a duration: write seconds (90) or with a unit (10s, 5m, 1h)"),
        (["run", "--fail-on", "p99_ttft_ms"], "became a redirection: quote it, --fail-on 'p99_ttft_ms>500'"),
    ],
)
def test_a_bad_flag_is_one_line_with_the_fix(argv: list[str], said: str, tmp_path: Path) -> None:
    r = run_cli(*argv, "-o", str(tmp_path / "x"), timeout=60) if argv[0] == "run" else run_cli(*argv, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("llmsurge: error: "), r.stderr
    assert said in lines[0], lines[0]
    assert "usage:" not in r.stderr and not (tmp_path / "x").exists()


def test_durations_take_units() -> None:
    from llmsurge.cli import make_parser

    args = make_parser().parse_args(["run", "-d", "10s", "--timeout", "2m", "--wait", "1h"])
    assert (args.duration, args.timeout, args.wait) == (10.0, 120.0, 3600.0)
    assert make_parser().parse_args(["run", "-d", "90"]).duration == 90.0
    assert make_parser().parse_args(["run", "-d", "500ms"]).duration == 0.5


def test_waiting_in_a_log_is_a_line_every_few_seconds_naming_its_cause() -> None:
    """A server that is down: polled twice a second, but a log gets a waiting line every 5 s (or when the cause
    changes), each saying why — not a line per poll."""
    from llmsurge.headless import WAIT_LINE_EVERY_S, sparing

    said: list[str] = []
    now = [0.0]
    say = sparing(said.append, every=WAIT_LINE_EVERY_S, clock=lambda: now[0])
    for i in range(13):  # six seconds of polls, twice a second, the cause the same
        now[0] = i / 2
        say(f"waiting for http://127.0.0.1:9 to answer ({now[0]:.0f}s): connection refused")
    say("waiting for http://127.0.0.1:9 to answer (6s): HTTP 503: loading")  # a new cause: at once
    say("calibrating")
    assert said == [
        "waiting for http://127.0.0.1:9 to answer (0s): connection refused",
        "waiting for http://127.0.0.1:9 to answer (5s): connection refused",
        "waiting for http://127.0.0.1:9 to answer (6s): HTTP 503: loading",
        "calibrating",
    ]
    r = subprocess.run([*CLI, "run", "http://127.0.0.1:9", "--wait", "6"], capture_output=True, text=True, timeout=60)
    waits = [line for line in r.stderr.splitlines() if line.startswith("waiting for")]
    assert r.returncode == 3 and 1 <= len(waits) <= 3, r.stderr  # 12 polls, at most a line per 5 s
    assert all(line.endswith("connection refused") for line in waits), waits
