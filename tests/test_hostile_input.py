"""The third hostile-input round: text from a server is data, every probe has a deadline, causes are named, inputs
are checked before anything is sent, and no child outlives its run — each against a hostile server of our own."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmsurge.engine.client import one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.net import Target
from llmsurge.redaction import shown, visible
from llmsurge.sim.process import SimProcess
from tests.conftest import _hostile, quick_timing
from tests.helpers import CLI, rows, run_cli, summary
from tests.hostile import EVIL, EVIL_RAW


@pytest.fixture(scope="module")
def escapes_url() -> Iterator[str]:
    yield from _hostile("--profile", "escapes")


@pytest.fixture(scope="module")
def trickle_url() -> Iterator[str]:
    yield from _hostile("--profile", "trickle")


@pytest.fixture(scope="module")
def many_models_url() -> Iterator[str]:
    yield from _hostile("--profile", "many-models")


@pytest.fixture(scope="module")
def big_metrics_url() -> Iterator[str]:
    yield from _hostile("--profile", "big-metrics")


def test_the_one_escaping_function() -> None:
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("\x9b31m\u202e\u2066\x7f\x00") == "\\x9b31m\\u202e\\u2066\\x7f\\x00"
    assert visible("two\nlines", newlines=True) == "two\nlines" and visible("two\nlines") == "two\\x0alines"
    assert shown("é ü 中文 emoji 🙂") == "é ü 中文 emoji 🙂"  # text is not controls
    long = shown("m" * 10_240)
    assert len(long) < 140 and long.endswith("(10,240 chars)")
    assert not any(raw.decode() in shown(EVIL, newlines=True, limit=None) for raw in EVIL_RAW)


# ---- escapes: nothing injected reaches a terminal, under a pseudo-terminal ---------------------------------------


def _in_pty(args: list[str], until: bytes, keys: bytes = b"", timeout: float = 90.0) -> bytes:
    """Run ``llmsurge ARGS`` on a pseudo-terminal (120x40); once ``until`` was written, type ``keys``; return every
    byte it wrote until it exited."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: llmsurge on the terminal
        os.environ.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        os.execvp(sys.executable, [*CLI, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = bytearray()
    typed = not keys
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal: it ended
                    break
                if not chunk:
                    break
                out.extend(chunk)
            if not typed and until in out:
                time.sleep(1.0)  # a few repaints with the server's text on screen
                os.write(fd, keys)
                typed = True
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done and not ready:
                break
        else:
            pytest.fail(f"llmsurge {' '.join(args[:2])} did not end within {timeout:g}s: {bytes(out[-400:])!r}")
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return bytes(out)


def _no_injection(out: bytes) -> None:
    for raw in EVIL_RAW:
        assert raw not in out, f"{raw!r} reached the terminal"
    assert b"PWNED" in out  # the server's text was shown, as text


def test_run_shows_server_text_without_its_controls(escapes_url: str, tmp_path: Path) -> None:
    out = _in_pty(["run", escapes_url, "-n", "6", "-c", "2", "-o", str(tmp_path / "r")], until=b"results:")
    _no_injection(out)
    assert b"\\x1b[2JPWNED" in out and b"the server refused a request (http_400)" in out
    s = summary(tmp_path / "r")
    assert s["model_id"] == EVIL  # the files keep the exact text
    assert any(EVIL in (q["error"] or "") for q in rows(tmp_path / "r"))


def test_check_shows_server_text_without_its_controls(escapes_url: str) -> None:
    out = _in_pty(["check", escapes_url, "--no-quality"], until=b"HEALTHY")
    _no_injection(out)
    assert b"models:" in out and b"2JPWNED" in out  # Rich colours parts of the line on a terminal


@pytest.mark.slow
def test_the_tui_shows_server_text_without_its_controls(escapes_url: str, tmp_path: Path) -> None:
    out = _in_pty([escapes_url, "-c", "2", "-o", str(tmp_path / "t")], until=b"PWNED", keys=b"q", timeout=120)
    _no_injection(out)
    assert (tmp_path / "t" / "summary.json").exists()  # q saved the run


# ---- every probe has a deadline and a size cap -------------------------------------------------------------------


@pytest.mark.slow
def test_a_server_whose_every_path_trickles_forever_still_gets_a_run(trickle_url: str, tmp_path: Path) -> None:
    r = run_cli("run", trickle_url, "--model", "m", "--timeout", "5", "-n", "4", "-c", "2", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "r")
    assert s["failed"] == 4 and s["errors"] == {"timeout": 4}  # each request ended at --timeout
    notes = "\n".join(s["notes"])
    assert "/metrics was not used: gave up after" in notes and "/props was not used: gave up after" in notes
    assert "GET /v1/models gave up after" in notes and "going on with --model m" in notes


async def test_one_probe_ends_within_its_deadline_whatever_the_server_does(trickle_url: str) -> None:
    from llmsurge.net import fetch, fetch_sync

    async with make_client() as client:
        ans = await fetch(client, trickle_url + "/v1/models", deadline=1.5)
    assert ans.status == 200 and not ans.ok and "gave up after 1.5s" in ans.problem and ans.seconds < 5
    with httpx.Client() as sync_client:
        ans = fetch_sync(sync_client, trickle_url + "/metrics", deadline=1.5)
    assert not ans.ok and "gave up after 1.5s" in ans.problem and ans.seconds < 5


def test_a_50_mb_metrics_is_not_read(big_metrics_url: str, tmp_path: Path) -> None:
    r = run_cli("run", big_metrics_url, "--model", "normal", "-n", "4", "-c", "2", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "r")
    assert s["completed"] == 4
    assert any("/metrics was not used: larger than 16 MiB: not read" in n for n in s["notes"])


def test_ray_address_where_no_cluster_listens_is_one_line_at_once(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("run", "--ray", f"127.0.0.1:{port}", "-n", "2", "-o", str(tmp_path / "r"), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"no Ray cluster at 127.0.0.1:{port}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# ---- compressed streams, causes named, sizes bounded -------------------------------------------------------------


async def _one(url: str, model: str) -> object:
    async with make_client() as c:
        return await one_request(c, Target(url, model), RequestShape(endpoint="chat", stream=True), "hi", 4)


async def test_a_gzip_encoded_stream_is_decoded(hostile_url: str) -> None:
    rec = await _one(hostile_url, "gzip")
    assert rec.ok, rec.error  # type: ignore[attr-defined]
    assert rec.output_tokens == 2 and not rec.tokens_estimated  # type: ignore[attr-defined]


async def test_a_redirect_says_where_to(hostile_url: str) -> None:
    rec = await _one(hostile_url, "redirect")
    assert rec.error_kind == "http_307"  # type: ignore[attr-defined]
    assert rec.error == (  # type: ignore[attr-defined]
        "redirected to http://127.0.0.2:9/v1/chat/completions; redirects are not followed: use that URL"
    )


async def test_json_where_a_stream_was_asked_is_named(hostile_url: str) -> None:
    rec = await _one(hostile_url, "json-answer")
    assert rec.error_kind == "protocol"  # type: ignore[attr-defined]
    assert rec.error.startswith("the server answered JSON, not an event stream")  # type: ignore[attr-defined]


@pytest.mark.slow
def test_twenty_thousand_models_are_listed_briefly(many_models_url: str, tmp_path: Path) -> None:
    r = run_cli("run", many_models_url, "--model", "nope", "-n", "1", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and len(r.stderr) < 2000, len(r.stderr)
    assert "… and 19,992 more" in r.stderr and "(pass one with --model)" in r.stderr
    r = run_cli("run", many_models_url, "-n", "2", "-c", "1", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) < 400  # the 10 KB id is shortened on screen
    assert "(10,240 chars)" in r.stdout
    assert summary(tmp_path / "r")["model_id"] == "m" * 10_240  # and whole in the files


# ---- the results folder is checked before anything is sent --------------------------------------------------------


def _arrivals(url: str, model: str) -> int:
    return len(httpx.get(url + "/stats", timeout=5).json().get(model, []))


@pytest.mark.parametrize("where", ["cannot-be-created", "read-only"])
def test_an_unwritable_results_folder_sends_nothing(hostile_url: str, tmp_path: Path, where: str) -> None:
    if where == "cannot-be-created":
        folder = Path("/proc/llmsurge-results")  # no one may create a folder there, root included
    elif os.geteuid() == 0:
        folder = Path("/sys/kernel")  # an existing folder root cannot write in either
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    before = _arrivals(hostile_url, "counted")
    r = run_cli("run", hostile_url, "--model", "counted", "-n", "3", "-o", str(folder))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("llmsurge: error: --output") and "name a folder you can write to" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _arrivals(hostile_url, "counted") == before  # not one request went out


# ---- Retry-After ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_retry_after_is_honoured_per_slot_and_calibration_waits_for_a_success(hostile_url: str, tmp_path: Path) -> None:
    args = ["--model", "busy", "--preset", "demo", "-c", "1", "-n", "6"]
    r = run_cli("run", hostile_url, *args, "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "r")
    assert s["calibration"]["measured"], s["notes"]  # calibrated on the first successes, after the 429s
    arrivals = httpx.get(hostile_url + "/stats", timeout=5).json()["busy"]
    refused = [i for i, t in enumerate(arrivals) if t < 0]
    assert len(refused) >= 4
    for i in refused[:-1]:  # one slot: after each 429 with Retry-After: 1, the next request came a second later
        gap = abs(arrivals[i + 1]) - abs(arrivals[i])
        assert gap >= 0.9, (i, gap, arrivals)
    assert s["failed"] == s["errors"]["http_429"] and s["completed"] == 6 - s["failed"]
    assert any("Retry-After 1s" in n for n in s["notes"])
    assert all(q["retry_after_s"] == 1.0 for q in rows(tmp_path / "r") if q["error_kind"] == "http_429")


# ---- an interrupted capacity search -----------------------------------------------------------------------------


@pytest.mark.slow
def test_an_interrupted_capacity_search_keeps_what_it_found(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    args = ["run", "--find-max", "concurrency", "--slo", "e2el=60s", "-d", "2", "--output-tokens", "8"]
    p = subprocess.Popen([*CLI, *args, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (out / "requests.jsonl").exists() or '"segment": 2' not in (out / "requests.jsonl").read_text():
            assert time.monotonic() < deadline and p.poll() is None, "the second level never started"
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        stdout, _ = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 143
    cap = summary(out)["capacity"]
    assert cap["partial"] is True and cap["levels"][0]["load"] == "c=1" and cap["max_held"] == 1
    assert "capacity search interrupted after 1 level(s): c=1 is the most that held 95% good so far" in stdout


# ---- children that cannot be left behind -------------------------------------------------------------------------

_MIDDLE = textwrap.dedent(
    """
    import sys
    from llmsurge.sim.process import SimProcess
    from tests.conftest import quick_timing
    from llmsurge.sim.server import SimConfig

    if __name__ == "__main__":
        sim = SimProcess(SimConfig(timing=quick_timing()))
        sim.start()
        print(sim.pids[0], flush=True)
        if sys.argv[1] == "wait":
            sys.stdin.read()
        # "exit": leave without stopping it: multiprocessing's exit handler terminates it (SIGTERM), then joins
    """
)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _middle(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "middle.py"
    script.write_text(_MIDDLE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    p = subprocess.Popen(
        [sys.executable, str(script), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None
    return p, int(p.stdout.readline())


def test_a_child_obeys_its_parent_and_the_exit_handler(tmp_path: Path) -> None:
    p, child = _middle(tmp_path, "exit")
    assert p.wait(timeout=20) == 0  # the exit handler's SIGTERM ended the child, so the parent could exit
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def test_a_group_sigterm_is_the_parents_to_handle_and_an_orphan_leaves(tmp_path: Path) -> None:
    p, child = _middle(tmp_path, "wait")
    try:
        os.kill(child, signal.SIGTERM)  # not from its parent: left to the parent (which saves, then ends it)
        time.sleep(1.0)
        assert _alive(child)
        p.kill()  # the parent is gone, however it went: the child leaves at once
        p.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child):
            assert time.monotonic() < deadline, "the orphan did not leave"
            time.sleep(0.05)
    finally:
        p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_the_sim_stops_on_its_parents_terminate() -> None:
    from llmsurge.sim.server import SimConfig

    sim = SimProcess(SimConfig(timing=quick_timing()))
    sim.start()
    proc = sim._proc
    assert proc is not None
    proc.terminate()  # SIGTERM from its parent: obeyed
    proc.join(10)
    assert not proc.is_alive()
    sim.stop()


def test_json_of_an_evil_answer_is_exact(escapes_url: str, tmp_path: Path) -> None:
    """requests.jsonl and summary.json are JSON: the server's text is kept exactly, as data."""
    r = run_cli("run", escapes_url, "-n", "3", "-c", "1", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    raw = (tmp_path / "r" / "summary.json").read_text()
    assert json.loads(raw)["model_id"] == EVIL and "\x1b" not in raw  # escaped by JSON, not by us


@pytest.mark.parametrize("flag", ["--preset", "--trace", "--dataset"])
def test_a_fifo_or_a_device_named_as_input_is_one_line_not_a_hang(flag: str, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # no writer ever comes: opening it for reading would wait for ever
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        r = run_cli("run", flag, str(path), "-n", "1", "-o", str(tmp_path / "out"), timeout=60)
        assert r.returncode == 2, r.stderr
        errors = [line for line in r.stderr.splitlines() if "error" in line]  # (a dataset is read once a server is up)
        assert len(errors) == 1 and f"is {kind}" in errors[0] and str(path) in errors[0], r.stderr
    assert not (tmp_path / "out").exists()


def test_input_files_are_read_only_when_regular_and_within_their_cap(tmp_path: Path) -> None:
    from llmsurge.inputs import InputFileError, open_regular, read_regular

    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 2048)
    assert read_regular(big, "preset", 4096) == b"#" * 2048
    with pytest.raises(InputFileError, match="more than the"):
        open_regular(big, "preset", 1024)
    with pytest.raises(InputFileError, match="is a folder"):
        open_regular(tmp_path, "preset", 1024)
    with pytest.raises(InputFileError, match="no such file"):
        open_regular(tmp_path / "nope", "preset", 1024)
