"""The whole command line: one-line errors that name the fix, and a parser per command, each with its handler
(``set_defaults(handler=…)``)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from llmsurge import __version__
from llmsurge.cli.commands import check, compare, live, presets, report, runs, steer
from llmsurge.cli.commands import run as run_command
from llmsurge.cli.commands import sim as sim_command
from llmsurge.cli.flags import (
    add_load_args,
    add_tls_args,
    parse_number,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_wait,
    parse_wait_duration,
    parse_whole,
)
from llmsurge.engine import limits

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


SUBCOMMANDS = ("run", "sim", "check", "presets", "demo", "tui", "web", "report", "compare", "runs", "steer")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that name the fix: no usage block before the useful line, "did you mean" for
    a mistyped flag, and where the help is (``llmsurge run --help``)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"llmsurge: error: {message}{_hint(message, self)} (see {self.prog} --help)\n")
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = self._commands.get(getattr(parsed, "command", None) or "", self)
            command.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed

    _commands: dict[str, Parser] = {}


def _hint(message: str, parser: argparse.ArgumentParser) -> str:
    """``; did you mean --concurrency?`` for a mistyped flag, or the shell-quoting note for ``--fail-on``."""
    import difflib

    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'([^']*)'", choice.group(2))
        close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.6)
        return f"; did you mean {close[0]!r}?" if close else ""
    if "unrecognized arguments:" in message:
        known = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        for word in message.split(":", 1)[1].split():
            if word.startswith("-"):
                close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.7)
                if close:
                    return f"; did you mean {close[0]}?"
    return ""


def make_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    p = Parser(
        prog="llmsurge",
        description="Load test OpenAI-compatible LLM servers, live in the terminal. "
        "`llmsurge [URL]` opens the TUI (no URL: a simulated server).",
    )
    p.add_argument("--version", action="version", version=f"llmsurge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    Parser._commands = sub.choices  # type: ignore[assignment]  # each command's own parser names its flags
    tui = sub.add_parser("tui", help="the live TUI (the default command)", description="The live TUI.")
    tui.set_defaults(handler=live.tui)
    add_load_args(tui, "demo")
    demo = sub.add_parser(
        "demo",
        help="the TUI against the embedded simulated server",
        description="The TUI against the embedded simulated server.",
    )
    demo.set_defaults(handler=live.demo)
    add_load_args(demo, "demo")
    web = sub.add_parser(
        "web",
        help="the TUI in a browser (textual-serve), for a team watching a launch",
        description="Serve the TUI to a browser. Every flag of the TUI applies; the page holds the run.",
    )
    web.set_defaults(handler=live.web)
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    web.add_argument("--port", type=parse_port, default=8765, help="port (default 8765)")
    add_load_args(web, "demo")
    _add_run(sub)
    _add_sim(sub)
    _add_check(sub)
    pre = sub.add_parser(
        "presets",
        help="list presets; `presets show NAME` prints one",
        description="Built-in presets and the user's own.",
    )
    pre.set_defaults(handler=presets.main)
    pre.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    pre.add_argument("name", nargs="?")
    rep = sub.add_parser(
        "report",
        help="recompute a run's summary exactly from its requests.jsonl and check summary.json against it",
        description="Every figure recomputed from requests.jsonl (streaming, bounded memory), then held against"
        " summary.json.",
    )
    rep.set_defaults(handler=report.main)
    rep.add_argument("folder", type=Path, help="a results folder")
    rep.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table (default); json: the recomputed figures; csv: every request, a row each (for a spreadsheet)",
    )
    rep.add_argument("--json", action="store_true", help="the same as --format json")
    cmp = sub.add_parser(
        "compare",
        help="a baseline against one or more candidates, per load level, with the noise stated",
        description="Result folders, summary.json files or `vllm bench serve` JSON files: the first is the baseline.",
    )
    cmp.set_defaults(handler=compare.main)
    cmp.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="baseline, then candidates")
    cmp.add_argument("--format", choices=("table", "markdown", "json", "csv", "html"), default="table")
    cmp.add_argument(
        "--output",
        "-o",
        type=Path,
        help="write to this file (html on a terminal: default compare.html; to a pipe or file: stdout)",
    )
    cmp.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    st = sub.add_parser(
        "steer",
        help="steer a running llmsurge through its --api: concurrency N, rate R, pause, resume, stop, preset NAME,"
        " slo SPEC",
        description="Change a running llmsurge's load from a script (the run was started with --api HOST:PORT).",
    )
    st.set_defaults(handler=steer.main)
    st.add_argument("api_url", metavar="URL", help="the run's API, e.g. http://127.0.0.1:9000")
    st.add_argument("action", choices=("concurrency", "rate", "pause", "resume", "stop", "preset", "slo"))
    st.add_argument("value", nargs="?", help="N, R, NAME or SPEC (pause, resume and stop take none)")
    st.add_argument("--api-token-env", metavar="VAR", help="the API's bearer token, read from $VAR")
    saved = sub.add_parser("runs", help="list saved runs, newest first", description="Saved runs, newest first.")
    saved.set_defaults(handler=runs.main)
    saved.add_argument("folder", nargs="?", type=Path, default=Path("llmsurge-results"))
    return p


def _add_run(sub: SubParsers) -> None:
    run = sub.add_parser(
        "run",
        help="a headless run: progress, then a summary table and result files",
        description="A headless run. Without a URL it starts the simulated server.",
    )
    run.set_defaults(handler=run_command.main)
    add_load_args(run, "max-throughput")
    run.add_argument("--progress-interval", type=parse_positive_float, help="seconds between progress lines")
    run.add_argument(
        "--fail-on",
        metavar="THRESHOLDS",
        help="exit 1 when any is breached, e.g. p99_ttft_ms>500,error_rate>0.01 (segments.KEY: every segment)",
    )
    run.add_argument(
        "--find-max",
        choices=("concurrency", "rate"),
        help="search the highest load whose requests still meet --slo (doubling, then bisecting; -d per level)",
    )
    run.add_argument(
        "--target-good",
        type=lambda v: parse_number(v, 0.0, 1.0, low_open=True),
        help="--find-max: the share of requests that must meet the SLO (default 0.95)",
    )
    run.add_argument(
        "--repeat",
        type=lambda v: parse_whole(v, 2, 100),
        metavar="N",
        help="run the same workload N times (fresh seeds, a folder each) and report each figure's mean and 95%%"
        " interval across the trials; compare then uses the trials' spread as the noise",
    )


def _add_sim(sub: SubParsers) -> None:
    sim = sub.add_parser(
        "sim",
        help="run the simulated OpenAI-compatible server",
        description="The simulated server: continuous batching, vLLM /metrics, faults.",
    )
    sim.set_defaults(handler=sim_command.main)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=parse_port, default=8000)
    sim.add_argument("--max-seqs", type=parse_positive_int, default=64, help="running sequences per step (batch)")
    sim.add_argument("--model", default="llmsurge-sim", help="the model id it serves")
    sim.add_argument(
        "--faults",
        help="per-request probabilities, e.g. "
        "http500=0.05,http429=0.02,http503=0.02,reset=0.02,stall=0.01,malformed=0.02,no_usage=0.05",
    )
    sim.add_argument(
        "--stamp", action="store_true", help='add each chunk\'s send time (time.monotonic()) as "llmsurge_sent"'
    )
    sim.add_argument(
        "--timings",
        action="store_true",
        help="llama.cpp's per-request timings (prompt_ms, predicted_ms) with the usage",
    )
    sim.add_argument(
        "--request-metrics",
        action="store_true",
        help="vLLM's per-request metrics (queue, TTFT from scheduling, generation time) with the usage, as vLLM"
        " started with --enable-per-request-metrics sends them",
    )
    sim.add_argument(
        "--freeze-at",
        type=parse_wait,
        metavar="S",
        help="a fault: the whole engine stops producing tokens S seconds after it starts (requests stay running)",
    )
    sim.add_argument("--freeze-for", type=parse_wait, default=10.0, metavar="S", help="for this long (default 10)")
    sim.add_argument("--fast", action="store_true", help="no modelled compute: tokens as fast as the CPU goes")
    sim.add_argument(
        "--reasoning-tokens",
        type=lambda v: parse_whole(v, 0, limits.MAX_COUNT),
        default=0,
        metavar="N",
        help="a reasoning model: the first N output tokens stream as delta.reasoning_content",
    )
    sim.add_argument(
        "--answers",
        choices=("correct", "wrong", "degenerate", "words"),
        default="correct",
        help="how it answers llmsurge's quality set: correctly (default: a healthy model), fluently but wrongly,"
        " degenerately (every answer one word repeated), or with filler words like any prompt",
    )
    sim.add_argument(
        "--adapters",
        metavar="A,B",
        help="more model ids it serves with the same engine (LoRA adapters), for --model a,b,c runs",
    )
    sim.add_argument(
        "--max-model-len",
        type=parse_positive_int,
        default=32768,
        metavar="N",
        help="context length: prompt + max_tokens beyond it get HTTP 400 (default 32768)",
    )
    sim.add_argument("--step-ms", type=parse_wait, help="base decode step time in ms (default 12)")
    sim.add_argument(
        "--kv-tokens",
        type=parse_positive_int,
        metavar="N",
        help="the KV cache's size in tokens (default 262144): when the running requests hold it all, the next waits"
        " and the newest is preempted; exported as vLLM's cache_config_info",
    )
    sim.add_argument(
        "--prefill-us",
        type=parse_wait,
        metavar="US",
        help="prefill time per prompt token in µs (default 20): a slower prefill, for calibrating compare",
    )
    sim.add_argument(
        "--processes",
        type=parse_positive_int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT), for more than one core of --fast",
    )


def _add_check(sub: SubParsers) -> None:
    chk = sub.add_parser(
        "check",
        help="is a freshly launched server healthy? (exit 0 if so)",
        description="Wait for the server, list models, stream one chat and one completion.",
    )
    chk.set_defaults(handler=check.main)
    chk.add_argument("url", nargs="+", help="the server's base URL (several: each replica is checked)")
    chk.add_argument("--model", "-m", default="")
    chk.add_argument("--api-key-env", metavar="VAR")
    add_tls_args(chk)
    chk.add_argument(
        "--wait",
        type=parse_wait_duration,
        default=900.0,
        metavar="SECONDS",
        help="how long to wait for it to answer (default 900: vLLM takes minutes to load)",
    )
    chk.add_argument("--max-tokens", type=parse_positive_int, default=64)
    chk.add_argument(
        "--quality-threshold",
        type=lambda v: parse_number(v, 0.0, 1.0),
        default=None,
        metavar="SHARE",
        help="DEGRADED when fewer answers of the quality set are right (default 0.8)",
    )
    chk.add_argument("--no-quality", action="store_true", help="skip the quality set (30 short prompts)")
    chk.add_argument("--items", action="store_true", help="list every quality item with its verdict")
