"""The docs cannot drift: every ``llmsurge …`` command in the code blocks of README.md and docs/*.md is run against
the simulated server, and must exit 0.

How a command is made runnable, and nothing more:

- a server's URL (``http://127.0.0.1:8000``, ``URL``) becomes the simulated server's; a results folder
  (``llmsurge-results/RUN``, ``BASE``, ``CAND``, ``runA``…) one saved here; a shell glob is expanded; a ``[…]`` of
  alternatives is left out; the commands of a block run in order, in one folder, ``&`` in the background;
- a load is bounded (``-n 8``; with ``--find-max``, ``-d 1`` a level) so the whole set takes a minute;
- what opens a terminal or a browser for a person (the TUI, ``llmsurge web``) or starts a Ray cluster is parsed and
  resolved to its run config — every flag checked as the command checks it — without opening anything.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import CLI, free_port, run_cli
from tests.synthetic import save_run

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = ("bash", "sh", "shell", "console", "")


@dataclass
class Command:
    where: str  # file:line
    argv: list[str]
    background: bool


def blocks(path: Path) -> list[list[Command]]:
    """The ``llmsurge`` commands of each shell code block of ``path``: in a ``console`` block the ``$`` lines, in
    a ``bash`` block every line that starts with ``llmsurge``."""
    out: list[list[Command]] = []
    lang: str | None = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang = line[3:].strip()
                out.append([])
            else:
                lang = None
            continue
        if lang not in SHELL_BLOCKS:
            continue
        text = line.strip()
        if lang == "console" or text.startswith("$ "):
            if not text.startswith("$ "):
                continue
            text = text[2:]
        if not re.match(r"^llmsurge(\s|$)", text):
            continue
        text = re.sub(r"\s+#\s.*$", "", text)  # a comment
        text = re.sub(r"\s\[[^\]]*\]", "", text)  # [--format a|b|c]: alternatives, not an argument
        background = text.rstrip().endswith("&")
        argv = shlex.split(text.rstrip().rstrip("&"))
        out[-1].append(Command(f"{path.name}:{n}", argv[1:], background))
    return [b for b in out if b]


ALL = [b for p in DOCS for b in blocks(p)]


def test_the_docs_hold_commands_to_run() -> None:
    """The collection itself: the front page's commands and the guides' are found (a changed fence would hide them)."""
    where = {c.where.split(":")[0] for b in ALL for c in b}
    assert {"README.md", "comparing.md", "live-api.md", "slo-capacity.md"} <= where, where
    assert sum(len(b) for b in ALL) >= 20


PERSONAL = ("tui", "demo", "web")
"""Commands that open a screen for a person."""


def _resolved(argv: list[str]) -> None:
    """Parse ``argv`` and resolve it to the run's config as the command does, without starting anything."""
    from llmsurge.cli import SUBCOMMANDS, build_config, make_parser, resolve_urls

    if not argv or argv[0] not in SUBCOMMANDS:
        argv = ["tui", *argv]
    args = make_parser().parse_args(argv)
    resolve_urls(args)
    build_config(args, keep_alive=args.command != "run")


def _prepared(
    argv: list[str], url: str, runs: dict[str, Path], cwd: Path, api: str, background: bool = False
) -> list[str]:
    out: list[str] = []
    for a in argv:
        if re.match(r"^https?://", a) or a == "URL":
            a = api if out[:1] == ["steer"] else url
        elif re.match(r"^\d+\.\d+\.\d+\.\d+:\d+$", a):  # --api HOST:PORT
            a = api.removeprefix("http://")
        elif a.startswith("llmsurge-results/"):
            name = a.removeprefix("llmsurge-results/")
            if any(c in name for c in "*?"):
                found = sorted(glob.glob(str(cwd / a)))
                assert found, (a, list(cwd.glob("llmsurge-results/*")))
                out += found
                continue
            a = str(runs.get(name, runs["RUN"]))
        out.append(a)
    if out and out[0] == "run":
        out += ["-d", "120"] if background else ["-d", "1"] if "--find-max" in out else ["-n", "8"]
    return out


@pytest.mark.parametrize("block", ALL, ids=[b[0].where for b in ALL])
def test_every_command_in_the_docs_runs(block: list[Command], sim_url: str, tmp_path: Path) -> None:
    runs = {"RUN": save_run(tmp_path / "saved" / "run", "run", seed=1)}
    for i, name in enumerate(("BASE", "CAND", "runA", "seqs4")):
        runs[name] = save_run(tmp_path / "saved" / name, name, seed=2 + i)
    api = f"http://127.0.0.1:{free_port()}"
    background: list[subprocess.Popen[str]] = []
    try:
        for cmd in block:
            argv = _prepared(cmd.argv, sim_url, runs, tmp_path, api, cmd.background)
            if not argv or argv[0] in PERSONAL or "--ray" in argv or not argv[0].isidentifier():
                _resolved(argv)  # the TUI, the browser, Ray: every flag checked, nothing opened
                continue
            if cmd.background:
                background.append(subprocess.Popen([*CLI, *argv], cwd=tmp_path, text=True))
                _wait_for_api(api)
                continue
            r = run_cli(*argv, cwd=tmp_path, timeout=120)
            assert r.returncode == 0, (cmd.where, argv, r.stdout[-2000:], r.stderr[-2000:])
        for proc in background:  # a block that starts a run in the background also ends it (`steer … stop`)
            assert proc.wait(60) == 0, block[0].where
    finally:
        for proc in background:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _wait_for_api(api: str) -> None:
    import time

    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        try:
            if httpx.get(api + "/api/snapshot", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the live API at {api} did not answer")
