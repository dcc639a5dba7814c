"""The TUI as a process on a real pseudo-terminal: a stop signal, or the terminal going away, saves the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from llmsurge.tui.driver import TerminalOutput


def _start_tui(out: Path) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"}
    p = subprocess.Popen(
        [sys.executable, "-m", "llmsurge", "demo", "-o", str(out), "-c", "4"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)

    def drain() -> None:  # a terminal reads what the app draws
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    return p, master


def _wait_for_requests(p: subprocess.Popen[bytes], out: Path, n: int = 8) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = out / "requests.jsonl"
        if f.exists() and f.read_text().count("\n") >= n:
            return [c.pid for c in psutil.Process(p.pid).children(recursive=True)]
        assert p.poll() is None, "the TUI exited early"
        time.sleep(0.2)
    raise AssertionError("no requests finished")


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "terminal closed"])
def test_tui_saves_on_sigterm_and_when_its_terminal_goes_away(tmp_path: Path, how: str) -> None:
    out = tmp_path / "tui"
    p, master = _start_tui(out)
    children = _wait_for_requests(p, out)
    if how == "SIGTERM":
        p.send_signal(signal.SIGTERM)
    else:
        os.close(master)  # the window closes: writes fail, and the session gets SIGHUP
        os.killpg(p.pid, signal.SIGHUP)
    rc = p.wait(60)
    assert rc == (143 if how == "SIGTERM" else 129)
    s = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    assert s["cancelled"] == 4 and s["completed"] + s["failed"] + s["cancelled"] == len(rows)
    assert _gone(children), "a worker or the simulated server outlived the TUI"
    if how == "SIGTERM":
        os.close(master)


def test_terminal_output_stops_quietly_and_says_so_once() -> None:
    r, w = os.pipe()
    lost: list[bool] = []
    out = TerminalOutput(os.fdopen(w, "w", buffering=1), on_lost=lambda: lost.append(True))
    out.write("frame\n")
    os.close(r)  # the reader (the terminal) is gone
    for _ in range(3):
        out.write("another frame\n")
        out.flush()
    assert out.lost and lost == [True]
