"""What llmsurge promises whatever the server or the OS does (README: "What llmsurge promises").

Against the hostile server (tests/hostile.py) and the simulated one, over real sockets, with the CLI in its own
process as a user runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from llmsurge.engine.client import one_request
from llmsurge.engine.controller import Controller
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.pool import WorkerPool
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Load, RequestShape, Scenario, Stage
from llmsurge.engine.sse import SSEEventTooLarge, SSEParser
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.summary import summarize_run
from llmsurge.net import Target
from tests.helpers import CLI, free_port, sim_cli
from tests.helpers import run_cli as _run


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "requests.jsonl").read_text().splitlines()]


def _all_text(folder: Path) -> str:
    return "".join(f.read_text(errors="replace") for f in folder.iterdir())


# ---- 1. every request ends within its timeout, whatever the server does --------------------------------


@pytest.mark.parametrize("model", ["forever", "no-headers", "huge-line"])
async def test_a_request_ends_within_its_timeout(hostile_url: str, model: str) -> None:
    async with make_client() as c:
        t0 = time.monotonic()
        rec = await one_request(c, Target(hostile_url, model), RequestShape(timeout=1.5), "hi", 8)
        took = time.monotonic() - t0
    assert rec.status == "failed" and took < 1.5 + 1.5  # the deadline, plus at most the abandon grace
    if model == "huge-line":  # an endless SSE line is a protocol failure once past the event limit
        assert rec.error_kind in ("protocol", "timeout"), rec.error
    else:
        assert rec.error_kind == "timeout"


@pytest.mark.slow
def test_a_stream_that_never_ends_does_not_hang_the_run(hostile_url: str, tmp_path: Path) -> None:
    out = tmp_path / "f"
    t0 = time.monotonic()
    r = _run("run", hostile_url, "--model", "forever", "-c", "2", "-n", "4", "--timeout", "3", "-o", str(out))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 40, took  # one probe (3 s), no calibration after it failed, then 2 rounds of 3 s
    s = json.loads((out / "summary.json").read_text())
    assert s["failed"] == 4 and s["errors"] == {"timeout": 4}
    assert len([x for x in _rows(out) if not x["warmup"]]) == 4
    assert any("prompts are not calibrated" in n for n in s["notes"])
    ttft = next(line for line in r.stdout.splitlines() if line.startswith("│ TTFT (ms)"))  # the latency matrix
    assert "0.00" not in ttft and ttft.count("—") == 4, ttft  # nothing measured: n/a, not 0.00


def test_sse_parser_bounds_an_endless_event() -> None:
    p = SSEParser(max_event_bytes=1 << 20)
    p.feed(b'data: {"a": 1}\n\ndata: ' + b"z" * 1000)
    with pytest.raises(SSEEventTooLarge):
        for _ in range(2000):
            p.feed(b"z" * 1024)


async def test_streams_stuck_past_the_drain_are_timeouts_not_cancellations(hostile_url: str) -> None:
    sc = Scenario("d", "d", (Stage(Load(concurrency=2), duration=1.0),), RequestShape(timeout=60.0))
    bus = MetricsBus()
    pool = WorkerPool(Target(hostile_url, "forever"), Calibration(), bus, workers=1)
    pool.start()
    ctrl = Controller(pool, bus, sc, drain_grace=0.5)
    await asyncio.wait_for(ctrl.run(), 30)
    s = summarize_run(bus.view(with_stats=True))
    assert (s.run.failed, s.run.cancelled) == (2, 0) and s.run.errors == {"timeout": 2}
    assert any("after the run ended" in e.message for e in bus.events)


# ---- 2. a signal stops, records and saves; processes die with the run ----------------------------------
# (tests/test_cli_run.py: SIGINT/SIGTERM/SIGHUP with exit 130/143/129, and SIGKILL of the parent)


# ---- 3. a dead worker's requests are accounted, the load kept -------------------------------------------


def _workers(pid: int) -> list[psutil.Process]:
    return [c for c in psutil.Process(pid).children() if c.name() == "llmsurge-worker"]


@pytest.mark.slow
def test_a_killed_worker_is_noticed_accounted_and_replaced(tmp_path: Path) -> None:
    out = tmp_path / "w"
    p = subprocess.Popen(
        [*CLI, "run", "-c", "8", "-d", "12", "-w", "2", "--output-tokens", "200", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = out / "requests.jsonl"
        if f.exists() and f.read_text().count("\n") > 20:
            break
        time.sleep(0.2)
    workers = _workers(p.pid)
    assert len(workers) == 2
    t_kill = time.monotonic()
    workers[0].kill()
    stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 0, stderr
    assert time.monotonic() - t_kill < 20  # the run ends on time: no frozen "in flight" waiting for the dead
    s = json.loads((out / "summary.json").read_text())
    rows = _rows(out)
    assert s["completed"] + s["failed"] + s["cancelled"] == len([x for x in rows if not x["warmup"]])
    assert len({x["id"] for x in rows}) == len(rows)  # every request once
    lost = [x for x in rows if x["error_kind"] == "worker_lost"]
    assert len(lost) >= 4, "the dead worker's requests in flight were not recorded"  # its share: 4 of 8
    assert s["errors"].get("worker_lost") == len([x for x in lost if not x["warmup"]])
    assert any("worker_lost" in n for n in s["notes"]), s["notes"]
    assert any(x["worker"] == 2 for x in rows), "no replacement worker took over the load"
    assert "worker_lost" in stdout


# ---- 4. untrusted server text is data ---------------------------------------------------------------------


def test_an_echoed_key_never_reaches_a_file_or_the_screen(hostile_url: str, tmp_path: Path) -> None:
    secret = "sk-live-VERY-SECRET-9876"
    out = tmp_path / "e"
    r = _run(
        "run", hostile_url, "--model", "echo-headers", "-c", "1", "-n", "3", "--api-key-env", "K", "-o", str(out),
        env={"K": secret},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert any("Authorization: Bearer ***" in (x["error"] or "") for x in rows)  # it was echoed, and redacted
    assert secret not in _all_text(out) + r.stdout + r.stderr


def test_url_credentials_become_basic_auth_and_stay_secret(hostile_url: str, tmp_path: Path) -> None:
    password = "hunter2-PASSWORD"
    url = hostile_url.replace("http://", f"http://alice:{password}@")
    out = tmp_path / "b"
    r = _run("run", url, "--model", "echo-headers", "-c", "1", "-n", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert any("Authorization: Basic ***" in (x["error"] or "") for x in rows)
    text = _all_text(out) + r.stdout + r.stderr
    assert password not in text and "YWxpY2U6aHVudGVyMi1QQVNTV09SRA" not in text  # nor its base64 form
    assert "alice:" not in text


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "check"])
def test_server_markup_is_printed_as_text(hostile_url: str, tmp_path: Path, command: str) -> None:
    args = ["-c", "1", "-n", "2", "-o", str(tmp_path / "m")] if command == "run" else []
    r = _run(command, hostile_url, "--model", "markup", *args)
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr
    assert r.returncode == (0 if command == "run" else 1), r.stderr
    if command == "check":
        assert "[bold red]PWNED[/]" in r.stdout  # literally
    r = _run("run", hostile_url, "--model", "evil[/model]", "-c", "1", "-n", "2", "-o", str(tmp_path / "e"))
    assert r.returncode == 0, r.stderr
    assert "evil[/model]" in r.stdout


def test_check_keeps_our_own_brackets() -> None:
    from rich.console import Console

    from llmsurge.checkup import print_telemetry

    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    print_telemetry(console, {"gpu": "not available: nvidia-ml-py not installed (pip install 'llmsurge[nvidia]')"})
    assert "pip install 'llmsurge[nvidia]'" in console.export_text()


def test_a_preset_name_is_text_and_a_safe_folder_name(hostile_url: str, tmp_path: Path) -> None:
    preset = tmp_path / "p.toml"
    preset.write_text('name = "../../mine[/b]"\n[load]\nconcurrency = 1\n[length]\nrequests = 2\n')
    r = _run("run", hostile_url, "--model", "normal", "--preset", str(preset), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "../../mine[/b]" in r.stdout
    made = list((tmp_path / "llmsurge-results").iterdir())
    assert len(made) == 1 and made[0].name.endswith("-mine-b") and made[0].parent == tmp_path / "llmsurge-results"


# ---- 5. implausible usage is not a measurement ------------------------------------------------------------


def test_absurd_usage_falls_back_to_chunk_counts(hostile_url: str, tmp_path: Path) -> None:
    out = tmp_path / "u"
    r = _run("run", hostile_url, "--model", "absurd-usage", "-c", "2", "-n", "6", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["completed"] == 6 and s["total_output_tokens"] == 6 * 4  # the 4 chunks, not 10**12
    assert s["output_tokens_estimated"] == 6
    rows = [x for x in _rows(out) if not x["warmup"]]
    assert all("1000000000000" in x["usage_rejected"] and x["prompt_tokens"] >= 0 for x in rows)
    assert any("implausible usage" in n for n in s["notes"]), s["notes"]


def test_malformed_choices_and_usage_before_the_run_are_one_line(hostile_url: str, tmp_path: Path) -> None:
    r = _run("run", hostile_url, "--model", "bad-choices", "-c", "1", "-n", "2", "-o", str(tmp_path / "c"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert s["errors"] == {"protocol": 2}


# ---- 6 and 7. bad input is one line; the rest of the world -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-n", "18446744073709551616"], "out of range"),
        (["--timeout", "nan"], "out of range"),
        (["--rate", "inf"], "out of range"),
        (["--temperature", "nan"], "out of range"),
        (["--wait", "-5"], "out of range"),
        (["-c", "0"], "out of range"),
        (["--fail-on", "p99_bogus_ms>5"], "not a summary.json key"),
    ],
)
def test_numbers_are_checked_at_the_edge(args: list[str], needle: str) -> None:
    r = _run("run", "http://127.0.0.1:9", *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "body",
    [
        "[load]\nconcurrency = 0\n[length]\nrequests = 5\n",
        "[load]\nconcurrency = 1\n[length]\nduration = nan\n",
        "[load]\nrate = inf\n[length]\nrequests = 5\n",
        "[load]\nconcurrency = 1\n[length]\nrequests = 5\n[request]\ntimeout = nan\n",
    ],
)
def test_preset_values_that_make_a_run_endless_are_refused(tmp_path: Path, body: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    r = _run("run", "http://127.0.0.1:9", "--preset", str(f))
    assert r.returncode == 2 and str(f) in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bad_preset_files_are_named_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "x.toml").mkdir()
    (tmp_path / "latin.toml").write_bytes(b'name = "caf\xe9"\n')
    r = _run("presets", env={"LLMSURGE_PRESETS_DIR": str(tmp_path)})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "is a folder" in r.stdout and "not UTF-8" in r.stdout
    assert "max-throughput" in r.stdout


@pytest.mark.slow
def test_results_folders_are_each_runs_own(hostile_url: str, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = _run("run", hostile_url, "--model", "normal", "-n", "2", "-o", str(afile))
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "once"
    assert _run("run", hostile_url, "--model", "normal", "-n", "2", "-o", str(out)).returncode == 0
    r = _run("run", hostile_url, "--model", "normal", "-n", "2", "-o", str(out))
    assert r.returncode == 2 and "already holds" in r.stderr
    first = _rows(out)
    assert len({x["id"] for x in first}) == len(first)  # the first run's lines only, each once
    # two runs in the same second, default folders: each its own
    procs = [
        subprocess.Popen(
            [*CLI, "run", hostile_url, "--model", "normal", "-n", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    assert [p.wait(90) for p in procs] == [0, 0]
    folders = list((tmp_path / "llmsurge-results").iterdir())
    assert len(folders) == 2 and all(len([x for x in _rows(f) if not x["warmup"]]) == 2 for f in folders)


def test_workers_are_capped_to_what_the_run_can_use(hostile_url: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = _run("run", hostile_url, "--model", "normal", "-c", "2", "-n", "4", "-w", "999", "-o", str(tmp_path / "w"))
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    assert "--workers 999 capped at" in r.stdout + r.stderr
    client = json.loads((tmp_path / "w" / "summary.json").read_text())["client"]
    assert client["workers"] <= 2
    assert client["event_loop"] == "uvloop"  # the workers said which loop they ran on (uvloop: a dependency)


def test_a_wrong_key_is_named_as_refused(hostile_url: str) -> None:
    r = _run("run", hostile_url, "--api-key-env", "K", env={"K": "bad-key-123"})
    assert r.returncode == 2 and "refused the credentials" in r.stderr and "bad-key-123" not in r.stderr


def test_a_metrics_url_that_never_answers_is_not_available(hostile_url: str, tmp_path: Path) -> None:
    out = tmp_path / "g"
    r = _run(
        "run", hostile_url, "--model", "normal", "-c", "1", "-n", "1", "--gpu-metrics-url",
        f"{hostile_url}/hang", "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    gpu = json.loads((out / "summary.json").read_text())["telemetry"]["gpu"]
    assert gpu["available"] is False and gpu["reason"]


@pytest.mark.slow
def test_disk_full_stops_the_load_and_keeps_what_was_written(tmp_path: Path) -> None:
    """The results folder's files may not grow past 64 KB (RLIMIT_FSIZE: a write fails as on a full disk)."""

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "full"
    t0 = time.monotonic()
    r = subprocess.run(
        [*CLI, "run", "-c", "8", "-d", "60", "--output-tokens", "64", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
    )
    assert time.monotonic() - t0 < 60, "the load went on after the disk filled"
    assert r.returncode == 4, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert "could not be written" in r.stdout + r.stderr
    lines = (out / "requests.jsonl").read_text().splitlines()
    assert lines and all(json.loads(x)["id"] for x in lines[:-1])  # what was written is there and readable


@pytest.mark.slow
def test_exit_status_and_fail_on(hostile_url: str, tmp_path: Path) -> None:
    r = _run("run", hostile_url, "--model", "markup", "-n", "3", "-o", str(tmp_path / "a"))
    assert r.returncode == 0  # failures alone do not fail the run
    r = _run("run", hostile_url, "--model", "markup", "-n", "3", "-o", str(tmp_path / "b"), "--fail-on", "error_rate>0")
    assert r.returncode == 1
    assert "threshold breached: run: error_rate = 1, breaching --fail-on error_rate>0" in r.stdout
    r = _run(
        "run", hostile_url, "--model", "markup", "-n", "3", "-o", str(tmp_path / "c"), "--fail-on", "p99_ttft_ms>1"
    )
    assert r.returncode == 1 and "has no value" in r.stdout  # nothing succeeded: no latency to hold to a limit


def test_ipv6_urls_are_printed_so_they_can_be_used() -> None:
    from llmsurge.net import normalize_base_url
    from llmsurge.sim.process import url_for

    assert url_for("::1", 8000) == "http://[::1]:8000"
    assert normalize_base_url(url_for("::1", 8000)) == "http://[::1]:8000"
    assert url_for("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="port 89122"):
        normalize_base_url("http://127.0.0.1:89122")


def test_bunched_chunks_are_said_where_itl_is_shown(hostile_url: str, tmp_path: Path) -> None:
    """A server that writes four tokens per send: three gaps in four are zero. ITL is then per chunk — said, with
    the per-token figure (TPOT) beside it."""
    out = tmp_path / "b"
    r = _run("run", hostile_url, "--model", "bunched", "-c", "2", "-n", "6", "-o", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["completed"] == 6
    assert 0.6 <= s["itl_bunched_share"] <= 0.8, s["itl_bunched_share"]  # 12 of 16 gaps (the first: TTFT)
    assert s["segments"][0]["itl_bunched_share"] == s["itl_bunched_share"]
    assert s["median_tpot_ms"] > 3.0 and s["median_itl_ms"] < 0.1  # per token ~5 ms; the chunk view says 0
    said = " ".join(r.stdout.split())  # the caption wraps to the table's width
    assert "ITL (ms) †" in said and "ITL counts chunks, TPOT is per token" in said  # (the latency matrix: a pipe)
    assert re.search(r"ITL gaps < 0\.1 ms \(bunched\): (6\d|7\d|80)\.\d%", said), said


def test_workers_connect_from_their_own_loopback_addresses(hostile_url: str, tmp_path: Path) -> None:
    """Against a loopback server, each worker binds its own 127.0.0.N: every source address has its own ephemeral
    ports, so tens of thousands of streams from one machine do not run out of them."""
    out = tmp_path / "p"
    r = _run("run", hostile_url, "--model", "peers", "-w", "2", "-c", "4", "-n", "12", "-o", str(out))
    assert r.returncode == 0, r.stderr
    peers = httpx.get(hostile_url + "/peers", timeout=5).json()["peers"]
    assert {"127.0.0.2", "127.0.0.3"} <= set(peers), peers  # workers 0 and 1 (discovery came from the OS's pick)


@pytest.mark.slow
def test_a_frozen_server_is_named_a_stall_within_seconds_and_its_end_too(tmp_path: Path) -> None:
    """The whole engine stops producing tokens for 8 s (`sim --freeze-at 4 --freeze-for 8`), its requests still
    running: a line in the headless output within 5 s of silence, STALLED in /api/snapshot meanwhile, its end said,
    and both in summary.json's notes. One stream stuck while the others flow is not a server-wide stall."""
    out, port = tmp_path / "frozen", free_port()
    stalled: list[float] = []
    with sim_cli("--freeze-at", "4", "--freeze-for", "8") as url:
        proc = subprocess.Popen(
            [*CLI, "run", url, "-c", "4", "-d", "16s", "--output-tokens", "2000", "--api", f"127.0.0.1:{port}",
             "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not stalled and time.monotonic() < deadline and proc.poll() is None:
                try:
                    snap = httpx.get(f"http://127.0.0.1:{port}/api/snapshot", timeout=2).json()["snapshot"]
                    if snap["stalled_s"] is not None:
                        stalled.append(snap["stalled_s"])
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stalled and 2.0 <= stalled[0] < 8.0, stalled  # seen live, while it lasted
    said = [line for line in stdout.splitlines() if line.startswith("stall")]
    assert len(said) == 2 and said[0].startswith("stall: every answering stream (4) silent for"), said
    silent = float(said[0].split("silent for ")[1].split(" s")[0])
    assert 2.0 <= silent < 5.0, said  # named within 5 s of the silence
    over = float(said[1].split("after ")[1].split(" s")[0])
    assert said[1].startswith("stall over: tokens flow again after") and 7.0 < over < 10, said
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert sum(n.startswith("stall") for n in notes) == 2

    with sim_cli("--step-ms", "2", "--faults", "stall=0.05") as url:  # streams stuck one at a time, the rest flow
        _run("run", url, "-c", "8", "-d", "6s", "--output-tokens", "200", "--timeout", "3", "-o", str(tmp_path / "f"))
    s = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert s["errors"].get("timeout", 0) >= 1, s["errors"]  # some streams did stall (and timed out)
    assert not any(n.startswith("stall") for n in s["notes"]), s["notes"]
