"""Command line: ``llmsurge [URL]`` (the TUI), ``demo``, ``run``, ``sim``, ``check``, ``presets``."""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from llmsurge import __version__
from llmsurge.engine import limits
from llmsurge.engine.endpoints import DEFAULT as DEFAULT_ENDPOINT
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.lifetime import ExitCode

if TYPE_CHECKING:  # imported where used: `llmsurge --help` stays fast
    from llmsurge.engine.launch import Launched
    from llmsurge.engine.lengths import LengthDist
    from llmsurge.engine.scenario import Scenario
    from llmsurge.engine.session import RunConfig
    from llmsurge.metrics.roofline import RooflineInputs
    from llmsurge.sim.server import SimConfig

    SubParsers = argparse._SubParsersAction[Any]

SUBCOMMANDS = ("run", "sim", "check", "presets", "demo", "tui", "web", "report", "compare", "runs", "steer")


def _whole(v: str, low: int, high: int) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a whole number") from None
    if not low <= n <= high:
        raise argparse.ArgumentTypeError(f"{v} is out of range: use {low:,}-{high:,}")
    return n


def _number(v: str, low: float, high: float, low_open: bool = False) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number") from None
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low):
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        raise argparse.ArgumentTypeError(f"{v} is out of range: use a finite number {bound} and at most {high:g}")
    return x


def _image_size(v: str) -> tuple[int, int]:
    from llmsurge.images import parse_size

    try:
        return parse_size(v)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(v: str) -> int:
    return _whole(v, 1, limits.MAX_COUNT)


def _concurrency(v: str) -> int:
    return _whole(v, 1, limits.MAX_CONCURRENCY)


def _positive_float(v: str) -> float:
    return _number(v, 0.0, limits.MAX_SECONDS, low_open=True)


UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\S+?)\s*(ms|s|m|h)?\s*$")


def _seconds(v: str, low_open: bool = True) -> float:
    """A duration: seconds as a number (``90``), or with a unit (``500ms``, ``10s``, ``5m``, ``1h``); a number out
    of range (``-5``, ``nan``) is said as such."""
    m = _DURATION.match(v)
    try:
        value = float(m.group(1)) if m else None
    except ValueError:
        value = None
    if m is None or value is None:
        raise argparse.ArgumentTypeError(f"{v!r} is not a duration: write seconds (90) or with a unit (10s, 5m, 1h)")
    return _number(repr(value * UNITS[m.group(2) or "s"]), 0.0, limits.MAX_SECONDS, low_open=low_open)


def _duration(v: str) -> float:
    return _seconds(v)


def _wait_duration(v: str) -> float:
    return _seconds(v, low_open=False)


def _rate(v: str) -> float:
    return _number(v, 0.0, limits.MAX_RATE, low_open=True)


def _temperature(v: str) -> float:
    return _number(v, 0.0, limits.MAX_TEMPERATURE)


def _wait(v: str) -> float:
    return _number(v, 0.0, limits.MAX_SECONDS)


def _port(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{v} is not a port: use 0-65535 (0 picks a free one)")
    return n


def _length(v: str) -> LengthDist:
    from llmsurge.engine.lengths import LengthDist, LengthError

    try:
        return LengthDist.parse(v)
    except LengthError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}


def _amount(v: str) -> float:
    """``16e9``, ``16G``, ``246.6M``, ``14B`` (billion): a positive amount."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgbt]?)(?:i?b)?\s*", v, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"{v!r} is not an amount: use e.g. 16e9, 16G, 246M or 14B")
    x = _number(m.group(1), 0.0, 1e18, low_open=True) * _SCALE[m.group(2).lower()]
    return x


def _workers(v: str) -> int | str:
    return "auto" if v == "auto" else _positive_int(v)


def add_tls_args(g: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--ca-bundle`` and ``--insecure``: an https server whose certificate the system does not trust."""
    g.add_argument("--ca-bundle", metavar="FILE", help="verify the server's TLS certificate against these CAs (PEM)")
    g.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate (said in the results)"
    )


def add_load_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    """The flags shared by ``run`` and the TUI: target, preset, load, request shape, output."""
    p.add_argument(
        "url",
        nargs="*",
        help="server base URL (e.g. http://127.0.0.1:8000); several: replicas of one model, requests spread over"
        " them; none: the simulated server",
    )
    p.add_argument("--targets", metavar="FILE", help="replicas' base URLs, one per line (after any given as arguments)")
    p.add_argument(
        "--balance",
        choices=("rr", "least"),
        default="rr",
        help="over replicas: each in turn (rr, default) or the least busy (least)",
    )
    p.add_argument(
        "--preset",
        default=default_preset,
        metavar="NAME|FILE",
        help=f"preset scenario (default: {default_preset}); `llmsurge presets` lists them",
    )
    g = p.add_argument_group("load (overrides the preset)")
    g.add_argument("--concurrency", "-c", type=_concurrency, help="closed loop: N requests in flight")
    g.add_argument("--rate", "-r", type=_rate, help="open loop: R requests per second")
    g.add_argument("--arrival", choices=("constant", "poisson", "gamma"), help="arrival law for --rate")
    g.add_argument("--burstiness", type=_positive_float, help="gamma shape (1 = Poisson, <1 burstier)")
    g.add_argument("--requests", "-n", type=_positive_int, help="stop after N requests")
    g.add_argument("--duration", "-d", type=_duration, help="stop after this long: seconds, or 10s, 5m, 1h")
    g.add_argument(
        "--trace",
        metavar="FILE|sample",
        help="replay a trace, each request at its own time (-c caps what is in flight): Mooncake JSONL (timestamp"
        " ms, input_length, output_length, hash_ids), BurstGPT's CSV, JSONL of request bodies ({timestamp, body})"
        " or a run's requests.jsonl",
    )
    g.add_argument("--speedup", type=_positive_float, metavar="X", help="replay a trace X times faster")
    g = p.add_argument_group("requests (override the preset)")
    g.add_argument(
        "--input-tokens",
        type=_length,
        metavar="N|DIST",
        help="prompt length in tokens (calibrated): 512, uniform:A,B, normal:MEAN,SD, lognormal:MEDIAN,SIGMA,"
        " empirical:LEN=WEIGHT,…",
    )
    g.add_argument(
        "--output-tokens",
        type=_length,
        metavar="N|DIST",
        help="max_tokens (with ignore_eos: exact length); a distribution as for --input-tokens",
    )
    g.add_argument(
        "--dataset",
        metavar="FILE|sample",
        help="prompts from a JSONL (messages or prompt, optional max_tokens) or ShareGPT JSON file; sample: bundled",
    )
    g.add_argument(
        "--shared-prefix-tokens",
        type=lambda v: _whole(v, 0, limits.MAX_COUNT),
        metavar="N",
        help="each prompt starts with one of --prefix-groups shared system prompts of N tokens (prefix caching)",
    )
    g.add_argument("--prefix-groups", type=_concurrency, metavar="K", help="how many shared prefixes (default 1)")
    g.add_argument(
        "--turns",
        type=lambda v: _whole(v, 1, limits.MAX_TURNS),
        help="multi-turn chats: each user sends N turns, the growing history each time (closed loop)",
    )
    g.add_argument("--think-time", type=_wait_duration, metavar="SECONDS", help="pause between a user's turns")
    g.add_argument(
        "--endpoint",
        choices=tuple(ENDPOINTS),
        help="; ".join(f"{e.name}: {e.summary}, {e.path}" for e in ENDPOINTS.values())
        + f" (default {DEFAULT_ENDPOINT})",
    )
    g.add_argument(
        "--batch", type=lambda v: _whole(v, 1, 4096), metavar="N", help="embeddings: inputs per request (default 1)"
    )
    g.add_argument(
        "--documents", type=lambda v: _whole(v, 1, 4096), metavar="N", help="rerank: documents per query (default 8)"
    )
    g.add_argument(
        "--images", type=lambda v: _whole(v, 1, 64), metavar="N", help="chat: attach N synthetic PNG images per request"
    )
    g.add_argument("--image-size", type=_image_size, metavar="WxH", help="the images' size in pixels (default 512x512)")
    g.add_argument(
        "--tools",
        type=lambda v: _whole(v, 1, 128),
        metavar="N",
        help="chat: send N tool definitions and ask for a call (arguments that are not JSON count as degenerate)",
    )
    g.add_argument("--no-stream", action="store_true", help="ask for whole responses instead of SSE")
    g.add_argument("--no-ignore-eos", action="store_true", help="let the model stop early")
    g.add_argument("--temperature", type=_temperature, help="sampling temperature (0-2)")
    g.add_argument("--timeout", type=_duration, help="per-request timeout: seconds, or 30s, 2m")
    g.add_argument(
        "--slo",
        metavar="THRESHOLDS",
        help="a request is good when it meets every one, e.g. ttft=500ms,tpot=50ms,e2el=20s (goodput)",
    )
    g = p.add_argument_group("target")
    g.add_argument("--model", "-m", default="", help="model id (default: the server's first)")
    g.add_argument("--api-key-env", metavar="VAR", help="read the API key from this environment variable")
    add_tls_args(g)
    g.add_argument(
        "--wait",
        type=_wait_duration,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the server to answer (default 600)",
    )
    g.add_argument("--gpu-metrics-url", help="a DCGM exporter /metrics URL for a GPU on another machine")
    g.add_argument(
        "--reset-cache",
        action="store_true",
        help="empty the server's prefix cache before each stage (vLLM /reset_prefix_cache with"
        " VLLM_SERVER_DEV_MODE=1, SGLang /flush_cache, llama.cpp slot erase): every level starts cold",
    )
    g.add_argument(
        "--profile",
        action="store_true",
        help="run the server's profiler around the first measured segment (vLLM /start_profile and /stop_profile,"
        " with VLLM_TORCH_PROFILER_DIR set; SGLang)",
    )
    g = p.add_argument_group("roofline (the decode ceiling; each found from the server or the GPU when it says)")
    g.add_argument("--model-bytes", type=_amount, metavar="BYTES", help="weight bytes read per decode step, e.g. 16G")
    g.add_argument("--model-params", type=_amount, metavar="N", help="parameters, e.g. 8B (for the compute ceiling)")
    g.add_argument("--mem-bandwidth", type=_amount, metavar="GB/S", help="memory bandwidth in GB/s, e.g. 3350")
    g.add_argument("--peak-tflops", type=_amount, metavar="TFLOPS", help="dense FP16/BF16 peak in TFLOPS")
    g.add_argument("--kv-bytes-per-token", type=_amount, metavar="BYTES", help="KV cache bytes per token")
    g.add_argument("--no-telemetry", action="store_true", help="do not sample GPU, host or server metrics")
    g = p.add_argument_group("client")
    g.add_argument("--workers", "-w", type=_workers, default="auto", help="worker processes, or auto")
    g.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run the workers as Ray actors on a cluster (auto: the one this machine is in); pip install"
        " 'llmsurge[ray]'",
    )
    g.add_argument("--output", "-o", type=Path, help="results folder (default: llmsurge-results/DATE-NAME)")
    g.add_argument("--name", default="", help="a label for this run (its folder and summary.json): runs, compare")
    g.add_argument(
        "--baseline",
        type=Path,
        metavar="RUN",
        help="TUI: a saved run (folder or JSON) shown beside this one, load by load",
    )
    g.add_argument(
        "--api",
        metavar="HOST:PORT",
        help="serve the live API: GET /metrics (Prometheus), GET /api/snapshot, POST /api/steer (loopback unless"
        " --api-token-env gives a token)",
    )
    g.add_argument("--api-token-env", metavar="VAR", help="the API's bearer token, read from $VAR (never a flag)")
    g.add_argument(
        "--seed",
        type=lambda v: _whole(v, 0, 2**63 - 1),
        help="random seed for prompts and arrivals (default: a fresh one per run, recorded in summary.json)",
    )
    g = p.add_argument_group("simulated server (when no URL is given)")
    g.add_argument("--faults", help="inject faults, e.g. http500=0.05,reset=0.02 (see `llmsurge sim --help`)")
    g.add_argument("--max-seqs", type=_positive_int, help="the simulated server's batch limit")


def _urls(args: argparse.Namespace) -> None:
    """``args.url``: the first server (None: simulated); ``args.replicas``: the others (arguments, then
    ``--targets`` FILE, one URL per line, ``#`` comments)."""
    urls = list(args.url or []) if isinstance(args.url, list) else ([args.url] if args.url else [])
    if getattr(args, "targets", None):
        try:
            text = Path(args.targets).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--targets {args.targets}: cannot read it ({exc.strerror or exc})") from None
        urls += [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]
        if not urls:
            raise ValueError(f"--targets {args.targets}: no URL in it (one per line)")
    from llmsurge.net import without_endpoint
    from llmsurge.redaction import shown

    for url in urls:  # a URL pasted with an endpoint's path: its server, said once (the endpoint is --endpoint's)
        server, path = without_endpoint(url)
        if path:
            name = next((e.name for e in ENDPOINTS.values() if e.path == path), "")
            which = f" (the endpoint is --endpoint {name})" if name else ""
            print(f"llmsurge: note: {shown(url)} ends in {path}: using the server at {shown(server)}{which}",
                  file=sys.stderr)  # fmt: skip
    args.url = urls[0] if urls else None
    args.replicas = tuple(dict.fromkeys(urls[1:]))


def _check_shape_flags(args: argparse.Namespace, endpoint: str) -> None:
    """Flags that shape one endpoint's requests, given with another: one line naming the fix, never ignored."""
    for wanted, attr, flag in ((e.name, attr, flag) for e in ENDPOINTS.values() for attr, flag in e.options):
        if getattr(args, attr, None) and endpoint != wanted:
            raise ValueError(
                f"{flag} applies to --endpoint {wanted} (this run sends {endpoint}): add it, or drop {flag}"
            )
    if getattr(args, "image_size", None) and not getattr(args, "images", None):
        raise ValueError("--image-size sizes the images of --images N: add --images")


def build_config(args: argparse.Namespace, keep_alive: bool) -> RunConfig:
    """Turn parsed flags into a RunConfig (preset first, then flags)."""
    from llmsurge.engine.session import RunConfig
    from llmsurge.presets import find_preset

    scenario = find_preset(args.preset)
    scenario = scenario.with_overrides(
        concurrency=args.concurrency,
        rate=args.rate,
        arrival=args.arrival,
        burstiness=args.burstiness,
        requests=args.requests,
        duration=args.duration,
        trace=args.trace,
        speedup=args.speedup,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        dataset=args.dataset,
        shared_prefix_tokens=args.shared_prefix_tokens,
        prefix_groups=args.prefix_groups,
        turns=args.turns,
        think_time=args.think_time,
        endpoint=args.endpoint,
        batch=args.batch,
        documents=args.documents,
        tools=args.tools,
        images=args.images,
        image_size=args.image_size,
        stream=False if args.no_stream else None,
        ignore_eos=False if args.no_ignore_eos else None,
        temperature=args.temperature,
        timeout=args.timeout,
    )
    _check_shape_flags(args, scenario.shape.endpoint)
    if args.faults and args.url:
        raise ValueError("--faults applies only to the simulated server: drop the URL or the flag")
    from llmsurge.metrics.slo import parse_slo
    from llmsurge.sim.server import Faults

    Faults.parse(args.faults)  # fail early with a clear message
    if args.trace and args.rate:
        raise ValueError("--trace sends each request at its own time: drop --rate (or the trace)")
    for st in scenario.stages:  # a bad trace is one line before anything starts
        if st.load.trace:
            from llmsurge.engine.trace import cached_trace

            problem = cached_trace(st.load.trace).endpoint_problem(scenario.shape.endpoint)
            if problem:
                raise ValueError(problem)
    slo = parse_slo(args.slo) if args.slo else parse_slo(scenario.slo)
    if getattr(args, "find_max", None):
        scenario = _capacity_search(scenario, args)
        if not slo:
            raise ValueError("--find-max needs a promise to hold: add --slo, e.g. --slo ttft=500ms,tpot=50ms")
    return RunConfig(
        scenario=scenario,
        url=args.url,
        replicas=getattr(args, "replicas", ()),
        balance=getattr(args, "balance", "rr"),
        model=args.model,
        api_key_env=args.api_key_env,
        workers=args.workers,
        output=args.output,
        sim_faults=args.faults,
        sim_max_seqs=args.max_seqs,
        wait_timeout=args.wait,
        seed=args.seed,
        keep_alive=keep_alive,
        telemetry=not args.no_telemetry,
        gpu_metrics_url=args.gpu_metrics_url,
        slo=slo,
        name=args.name,
        baseline=_checked_baseline(args.baseline),
        roofline=_roofline_flags(args),
        ray=getattr(args, "ray", None),
        api=_checked_api(args.api, args.api_token_env),
        api_token_env=args.api_token_env,
        reset_cache=args.reset_cache,
        profile=args.profile,
    )


def _checked_api(spec: str | None, token_env: str | None) -> str | None:
    """``--api``: an address, and a token where one is needed — checked before anything starts."""
    if spec is None:
        if token_env:
            raise ValueError("--api-token-env needs --api HOST:PORT")
        return None
    from llmsurge.api import api_token, parse_address

    host, _port = parse_address(spec)
    api_token(host, token_env)
    return spec


def _roofline_flags(args: argparse.Namespace) -> RooflineInputs:
    from llmsurge.metrics.roofline import GB, TERA, RooflineInputs

    values = {
        "weight_bytes": args.model_bytes,
        "params": args.model_params,
        "bandwidth": args.mem_bandwidth * GB if args.mem_bandwidth else None,
        "peak_flops": args.peak_tflops * TERA if args.peak_tflops else None,
        "kv_bytes_per_token": args.kv_bytes_per_token,
    }
    flags = {
        "weight_bytes": "--model-bytes",
        "params": "--model-params",
        "bandwidth": "--mem-bandwidth",
        "peak_flops": "--peak-tflops",
        "kv_bytes_per_token": "--kv-bytes-per-token",
    }
    return RooflineInputs(**values, sources={k: flags[k] for k, v in values.items() if v is not None})


def _checked_baseline(path: Path | None) -> Path | None:
    """``--baseline``: read now, so a wrong path is one line before anything starts."""
    if path is not None:
        from llmsurge.metrics.runs import load_run

        load_run(path)
    return path


def _capacity_search(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """The scenario, its stages replaced by a capacity search over ``--find-max``."""
    from dataclasses import replace

    from llmsurge.engine.scenario import Search, Stage

    base = scenario.search or Search()
    search = replace(
        base,
        mode=args.find_max,
        target=args.target_good if args.target_good is not None else base.target,
        level_duration=args.duration or base.level_duration,
    )
    return replace(
        scenario, search=search, stages=(Stage(search.load_at(search.start), duration=search.level_duration),)
    )


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
    add_load_args(tui, "demo")
    demo = sub.add_parser(
        "demo",
        help="the TUI against the embedded simulated server",
        description="The TUI against the embedded simulated server.",
    )
    add_load_args(demo, "demo")
    web = sub.add_parser(
        "web",
        help="the TUI in a browser (textual-serve), for a team watching a launch",
        description="Serve the TUI to a browser. Every flag of the TUI applies; the page holds the run.",
    )
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    web.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    add_load_args(web, "demo")
    _add_run(sub)
    _add_sim(sub)
    _add_check(sub)
    pre = sub.add_parser(
        "presets",
        help="list presets; `presets show NAME` prints one",
        description="Built-in presets and the user's own.",
    )
    pre.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    pre.add_argument("name", nargs="?")
    rep = sub.add_parser(
        "report",
        help="recompute a run's summary exactly from its requests.jsonl and check summary.json against it",
        description="Every figure recomputed from requests.jsonl (streaming, bounded memory), then held against"
        " summary.json.",
    )
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
    st.add_argument("api_url", metavar="URL", help="the run's API, e.g. http://127.0.0.1:9000")
    st.add_argument("action", choices=("concurrency", "rate", "pause", "resume", "stop", "preset", "slo"))
    st.add_argument("value", nargs="?", help="N, R, NAME or SPEC (pause, resume and stop take none)")
    st.add_argument("--api-token-env", metavar="VAR", help="the API's bearer token, read from $VAR")
    runs = sub.add_parser("runs", help="list saved runs, newest first", description="Saved runs, newest first.")
    runs.add_argument("folder", nargs="?", type=Path, default=Path("llmsurge-results"))
    return p


def _add_run(sub: SubParsers) -> None:
    run = sub.add_parser(
        "run",
        help="a headless run: progress, then a summary table and result files",
        description="A headless run. Without a URL it starts the simulated server.",
    )
    add_load_args(run, "max-throughput")
    run.add_argument("--progress-interval", type=_positive_float, help="seconds between progress lines")
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
        type=lambda v: _number(v, 0.0, 1.0, low_open=True),
        help="--find-max: the share of requests that must meet the SLO (default 0.95)",
    )
    run.add_argument(
        "--repeat",
        type=lambda v: _whole(v, 2, 100),
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
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=_port, default=8000)
    sim.add_argument("--max-seqs", type=_positive_int, default=64, help="running sequences per step (batch)")
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
        type=_wait,
        metavar="S",
        help="a fault: the whole engine stops producing tokens S seconds after it starts (requests stay running)",
    )
    sim.add_argument("--freeze-for", type=_wait, default=10.0, metavar="S", help="for this long (default 10)")
    sim.add_argument("--fast", action="store_true", help="no modelled compute: tokens as fast as the CPU goes")
    sim.add_argument(
        "--reasoning-tokens",
        type=lambda v: _whole(v, 0, limits.MAX_COUNT),
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
        type=_positive_int,
        default=32768,
        metavar="N",
        help="context length: prompt + max_tokens beyond it get HTTP 400 (default 32768)",
    )
    sim.add_argument("--step-ms", type=_wait, help="base decode step time in ms (default 12)")
    sim.add_argument(
        "--kv-tokens",
        type=_positive_int,
        metavar="N",
        help="the KV cache's size in tokens (default 262144): when the running requests hold it all, the next waits"
        " and the newest is preempted; exported as vLLM's cache_config_info",
    )
    sim.add_argument(
        "--prefill-us",
        type=_wait,
        metavar="US",
        help="prefill time per prompt token in µs (default 20): a slower prefill, for calibrating compare",
    )
    sim.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT), for more than one core of --fast",
    )


def _add_check(sub: SubParsers) -> None:
    chk = sub.add_parser(
        "check",
        help="is a freshly launched server healthy? (exit 0 if so)",
        description="Wait for the server, list models, stream one chat and one completion.",
    )
    chk.add_argument("url", nargs="+", help="the server's base URL (several: each replica is checked)")
    chk.add_argument("--model", "-m", default="")
    chk.add_argument("--api-key-env", metavar="VAR")
    add_tls_args(chk)
    chk.add_argument(
        "--wait",
        type=_wait_duration,
        default=900.0,
        metavar="SECONDS",
        help="how long to wait for it to answer (default 900: vLLM takes minutes to load)",
    )
    chk.add_argument("--max-tokens", type=_positive_int, default=64)
    chk.add_argument(
        "--quality-threshold",
        type=lambda v: _number(v, 0.0, 1.0),
        default=None,
        metavar="SHARE",
        help="DEGRADED when fewer answers of the quality set are right (default 0.8)",
    )
    chk.add_argument("--no-quality", action="store_true", help="skip the quality set (30 short prompts)")
    chk.add_argument("--items", action="store_true", help="list every quality item with its verdict")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llmsurge`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and _mistyped_command(argv[0]):
        return ExitCode.BAD_INPUT
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]
    parser = make_parser()
    args = parser.parse_args(argv)
    args.raw_argv = argv[1:]
    try:
        return _dispatch(args, parser)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `llmsurge report RUN --format csv | head`: the reader had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error as Python flushes)
        return ExitCode.OK
    except Exception as exc:
        from llmsurge.engine.discovery import ServerError, ServerUnreachable
        from llmsurge.engine.session import ConfigError
        from llmsurge.metrics.report import ReportError
        from llmsurge.metrics.runs import RunFileError
        from llmsurge.presets import PresetError
        from llmsurge.redaction import shown

        if isinstance(exc, (PresetError, ServerError, ConfigError, ReportError, RunFileError, ValueError)):
            print(f"llmsurge: error: {shown(exc, limit=2000)}", file=sys.stderr)
            return ExitCode.UNREACHABLE if isinstance(exc, ServerUnreachable) else ExitCode.BAD_INPUT
        raise


def _mistyped_command(word: str) -> bool:
    """Whether ``word`` (where a command or a URL may stand) is a command mistyped: said in one line, with the
    closest; a URL (``localhost:8000``, ``10.0.0.5``) or a flag is not one."""
    import difflib

    if word.startswith("-") or any(c in word for c in ":./[") or word == "localhost":
        return False
    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1, cutoff=0.6)
    if not close:
        return False
    print(
        f"llmsurge: error: unknown command {word!r}; did you mean {close[0]!r}? (see llmsurge --help)", file=sys.stderr
    )
    return True


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cmd = args.command
    if getattr(args, "ca_bundle", None) or getattr(args, "insecure", False):
        if args.ca_bundle and args.insecure:
            raise ValueError("--ca-bundle and --insecure: give one (a bundle verifies; --insecure verifies nothing)")
        from llmsurge.net import configure_tls

        configure_tls(args.ca_bundle, args.insecure)
    if cmd in ("run", "tui", "web", "demo"):
        _urls(args)
    if cmd == "presets":
        return _presets(args)
    if cmd == "report":
        return _report(args)
    if cmd == "steer":
        return _steer(args)
    if cmd == "compare":
        return _compare(args)
    if cmd == "runs":
        return _runs(args)
    if cmd == "sim":
        return _sim(args)
    if cmd == "check":
        from llmsurge.checkup import check_main
        from llmsurge.engine.session import read_api_key

        key = read_api_key(args.api_key_env)
        quality = None if args.no_quality else args.quality_threshold
        status = 0
        for url in args.url:  # several: each replica checked in turn; the worst verdict is the exit status
            if len(args.url) > 1:
                from llmsurge.net import normalize_base_url
                from llmsurge.redaction import shown

                print(f"── {shown(normalize_base_url(url))}", flush=True)  # no user:password
            code = check_main(
                url, args.model, key, args.wait, args.max_tokens, quality, not args.no_quality, args.items
            )
            status = max(status, int(code))
        return status
    if cmd == "run":
        from llmsurge.engine.session import RunSession
        from llmsurge.headless import run_headless
        from llmsurge.metrics.thresholds import parse_thresholds
        from llmsurge.render.console import make_console

        fail_on = parse_thresholds(args.fail_on)
        config = build_config(args, keep_alive=False)
        if args.repeat:
            from llmsurge.headless import run_trials

            if args.find_max:
                raise ValueError("--repeat with --find-max: a search is not a workload to repeat: give one")
            return asyncio.run(run_trials(config, make_console(), args.progress_interval, fail_on, args.repeat))
        session = RunSession(config)
        return asyncio.run(run_headless(session, make_console(), args.progress_interval, fail_on))
    if cmd == "web":
        build_config(args, keep_alive=True)  # bad flags fail here, in one line, not in the page
        from llmsurge.tui.web import serve

        return serve(_without(args.raw_argv, ("--host", "--port")), args.host, args.port)
    if cmd == "demo":
        args.url, args.replicas = None, ()
    launched = _launch_early(args)
    try:
        from llmsurge.engine.session import RunSession

        session = RunSession(build_config(args, keep_alive=True), launched)
        if session.config.api is None:  # --api must bind first: a port taken is said before anything is sent
            session.prepare_early()  # discovery and calibration go on while Textual is imported and draws
    except BaseException:
        if launched is not None:
            launched.discard()
        raise
    from llmsurge.tui.app import run_tui

    return run_tui(session)


def _launch_early(args: argparse.Namespace) -> Launched | None:
    """The TUI's simulated server and local workers, started before the engine's and Textual's imports so that
    theirs overlap (first data on screen ~1 s sooner); the session adopts them, or ends them if its flags ask
    for others. None under Ray (the cluster decides)."""
    if getattr(args, "ray", None):
        return None
    from llmsurge.engine.launch import lighten_start

    lighten_start(args.url)
    from llmsurge.engine.backend import auto_workers, cap_workers
    from llmsurge.engine.launch import launch

    workers = auto_workers() if args.workers == "auto" else cap_workers(max(1, int(args.workers)), None)[0]
    return launch(args.url, workers, faults=args.faults if args.url is None else None, max_seqs=args.max_seqs)


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` less ``options`` and their values (``--port 1`` or ``--port=1``)."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in options:
            skip = True
            continue
        if a.split("=", 1)[0] in options:
            continue
        out.append(a)
    return out


def _report(args: argparse.Namespace) -> int:
    import json

    from llmsurge.metrics.report import (
        NO_SUMMARY,
        compare_with_saved,
        figures_json,
        phases,
        recompute,
    )
    from llmsurge.metrics.results import clean_floats
    from llmsurge.render.console import make_console
    from llmsurge.render.tables import result_tables, segments_table

    if args.format == "csv":  # the requests, read line by line: exact as written (a file keeps outside text)
        from llmsurge.metrics.report import requests_csv
        from llmsurge.redaction import visible

        tty = sys.stdout.isatty()
        for line in requests_csv(args.folder):
            sys.stdout.write(visible(line, newlines=True) if tty else line)
        return ExitCode.OK
    figures = recompute(args.folder)
    differences = compare_with_saved(args.folder, figures)
    disagree = differences and differences != [NO_SUMMARY]  # a run killed before its summary disagrees with nothing
    status = ExitCode.THRESHOLDS if disagree else ExitCode.OK  # a summary that disagrees fails the check
    if args.json or args.format == "json":
        out = {**figures_json(figures), "phases": phases(args.folder).to_json(), "disagreements": differences}
        print(json.dumps(clean_floats(out), indent=2))
        return status
    console = make_console(highlight=False)
    for table in result_tables(figures, console.width, console.is_terminal, "recomputed from requests.jsonl"):
        console.print(table)
    if len(figures.segments) > 1:
        console.print(segments_table(figures, console.width))
    line = phases(args.folder).line()
    if line:  # wrapped at words to the terminal (one line in a file)
        console.print(line, markup=False, highlight=False)
    for line in differences:
        console.print(line, markup=False)
    if not differences:
        console.print("summary.json agrees with requests.jsonl (to 0.01%; ITL percentiles within the sketch's 1%)")
    return status


def _compare(args: argparse.Namespace) -> int:
    import json

    from llmsurge.metrics.compare import compare
    from llmsurge.metrics.results import write_text_atomic
    from llmsurge.metrics.runs import load_run
    from llmsurge.redaction import shown, visible
    from llmsurge.render import compare as compare_render
    from llmsurge.render.console import make_console

    if len(args.runs) < 2:
        raise ValueError("compare needs a baseline and at least one candidate: llmsurge compare BASE CAND")
    cmp = compare([load_run(p) for p in args.runs])
    if args.format == "table":
        console = make_console(highlight=False)
        for table in compare_render.tables(cmp):
            console.print(table)
        for note in [*cmp.notes, f"▲ better, ▼ worse; {compare_render.NOISE_NOTE}"]:
            console.print(note, style="dim", markup=False)
        return ExitCode.OK
    text = {
        "markdown": compare_render.markdown,
        "json": lambda c: json.dumps(compare_render.to_json(c), indent=2) + "\n",
        "csv": compare_render.csv_text,
        "html": compare_render.html_page,
    }[args.format](cmp)
    out = args.output
    if out is None and args.format == "html" and sys.stdout.isatty():
        out = Path("compare.html")  # a page on a terminal is unreadable: a file, said on stderr
    if out is None:
        exact = args.format == "json" or (args.format == "csv" and not sys.stdout.isatty())
        sys.stdout.write(text if exact else visible(text, newlines=True))
        return ExitCode.OK
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists: name another with -o, or add --force to overwrite it")
    write_text_atomic(out, text)
    print(f"llmsurge: wrote {shown(out)}", file=sys.stderr)
    return ExitCode.OK


def _steer(args: argparse.Namespace) -> int:
    """``llmsurge steer URL ACTION [VALUE]``: one POST to the run's /api/steer; the new target, or why not."""
    import httpx

    action, value = args.action, args.value
    if (action in ("pause", "resume", "stop")) != (value is None):
        raise ValueError(f"steer {action}: " + ("takes no value" if value is not None else "give a value"))
    body: dict[str, Any] = {action: True if value is None else value}
    if action in ("concurrency", "rate"):
        try:
            body[action] = int(value) if action == "concurrency" else float(value)
        except ValueError:
            raise ValueError(f"steer {action} {value}: give a number") from None
    headers = {}
    if args.api_token_env:
        from llmsurge.engine.session import read_api_key

        headers["Authorization"] = f"Bearer {read_api_key(args.api_token_env)}"
    base = args.api_url.rstrip("/")
    url = (base if "://" in base else f"http://{base}") + "/api/steer"  # 127.0.0.1:9000 works as --api took it
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        print(f"llmsurge: {url} did not answer ({type(exc).__name__}): is the run started with --api?", file=sys.stderr)
        return ExitCode.UNREACHABLE
    try:
        answer = resp.json()
    except ValueError:
        answer = {"error": f"HTTP {resp.status_code}"}
    if resp.status_code != 200:
        from llmsurge.redaction import shown

        print(f"llmsurge: error: {shown(answer.get('error', resp.status_code), limit=None)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    said = " (paused)" if answer.get("paused") else " (stopping: the run ends and saves)" if action == "stop" else ""
    print(f"segment {answer['segment']}: {answer['target']}{said}")
    return ExitCode.OK


def _runs(args: argparse.Namespace) -> int:
    from rich.text import Text

    from llmsurge.metrics.runs import find_runs
    from llmsurge.redaction import shown
    from llmsurge.render.console import make_console
    from llmsurge.render.format import MISSING
    from llmsurge.render.tables import fitted_table

    skipped: list[str] = []
    runs = find_runs(args.folder, skipped)
    for why in skipped:  # a run whose files are malformed is named, and the others listed
        print(f"llmsurge: skipped {shown(why, limit=None)}", file=sys.stderr)
    if not runs:
        raise ValueError(f"no saved runs in {args.folder}: name the folder that holds them (default llmsurge-results)")
    columns = [  # (name, justify, priority: higher is dropped sooner on a narrow terminal)
        ("name", "left", 0), ("date", "left", 2), ("server", "left", 4), ("model", "left", 3),
        ("preset", "left", 5), ("done/failed", "right", 0), ("out tok/s", "right", 1), ("TTFT p50 ms", "right", 1),
        ("folder", "left", 6),
    ]  # fmt: skip
    rows: list[list[Text | str]] = []
    for r in runs:
        s = r.summary
        ttft = s.run.value("median_ttft_ms")
        rows.append(
            [
                Text(shown(r.label)),
                Text(shown(s.date)),
                Text(shown(str(s.server.get("kind") or ""))),
                Text(shown(s.model_id, limit=60)),
                Text(shown(s.preset or "")),
                f"{s.run.completed}/{s.run.failed}",
                f"{s.run.output_throughput or 0:,.1f}",
                MISSING if ttft is None else f"{ttft:,.1f}",
                Text(shown(r.path.parent, limit=None)),
            ]
        )
    console = make_console(highlight=False)
    table, dropped = fitted_table(f"runs in {args.folder}", columns, rows, console.width)
    console.print(table)
    if dropped:
        console.print(f"(too narrow for {', '.join(dropped)}: a wider terminal shows them)", style="dim")
    return ExitCode.OK


def _presets(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from llmsurge.presets import find_preset, list_presets, user_presets_dir
    from llmsurge.redaction import markup_safe, shown
    from llmsurge.render.console import make_console

    console = make_console(highlight=False)
    if args.action == "show":
        if not args.name:
            raise ValueError("presets show NAME: name a preset (`llmsurge presets` lists them)")
        sc = find_preset(args.name)
        console.print(f"[bold]{markup_safe(sc.name)}[/bold]: {markup_safe(sc.description)}")
        if sc.reference:
            console.print(shown(sc.reference, newlines=True, limit=None), style="dim", markup=False)
        console.print(f"warm-up requests: {sc.warmup}")
        for i, st in enumerate(sc.stages, 1):
            length = " and ".join(
                x
                for x in (f"{st.requests} requests" if st.requests else "", f"{st.duration:g} s" if st.duration else "")
                if x
            )
            console.print(f"stage {i}: {st.load.describe()}, {length or 'every request of the trace'}")
        sh = sc.shape
        console.print(
            f"requests: {sh.endpoint}, {'stream' if sh.stream else 'no stream'}, "
            f"{sh.describe_lengths()}, ignore_eos={sh.ignore_eos}, "
            f"temperature={sh.temperature:g}, timeout={sh.timeout:g}s"
        )
        for case in sh.cases:
            console.print(
                shown(f"  case {case.name}: {case.output_tokens} tokens: {case.prompt}", limit=None), markup=False
            )
        if sc.stop_on_plateau:
            console.print("stops when output tokens/s stops growing")
        return 0
    t = Table(title="presets", caption=Text(f"your own: {user_presets_dir()}/NAME.toml"))
    t.add_column("name", style="bold")
    t.add_column("description")
    for preset, path, err in list_presets():
        if preset is None:
            t.add_row(Text(shown(path.stem)), Text(shown(err, limit=None), style="red"))
        else:
            t.add_row(Text(shown(preset.name)), Text(shown(preset.description, limit=None)))
    console.print(t)
    return 0


def _sim_processes(config: SimConfig, args: argparse.Namespace, ready: Callable[[int], None]) -> None:
    """Several server processes on one port until Ctrl-C."""
    import time

    from llmsurge.sim.process import SimProcess

    sim = SimProcess(config, args.host, args.port, processes=args.processes)
    sim.start()
    ready(sim.port)
    try:
        while sim.alive:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _sim(args: argparse.Namespace) -> int:
    from llmsurge.sim.model import EngineTiming
    from llmsurge.sim.process import url_for
    from llmsurge.sim.server import Faults, SimConfig, serve

    faults = Faults.parse(args.faults)
    timing = EngineTiming.fast() if args.fast else EngineTiming(max_seqs=args.max_seqs)
    if args.step_ms is not None:
        timing.step_base = args.step_ms / 1000.0
    if args.prefill_us is not None:
        timing.prefill_per_token = args.prefill_us / 1e6
    if args.freeze_at is not None:
        timing.freeze_at, timing.freeze_for = args.freeze_at, args.freeze_for
    if args.kv_tokens is not None:
        timing.kv_capacity_tokens = args.kv_tokens
    if not args.fast:
        timing.max_seqs = args.max_seqs
    config = SimConfig(
        model=args.model,
        timing=timing,
        faults=faults,
        stamp=args.stamp,
        timings=args.timings,
        request_metrics=args.request_metrics,
        reasoning_tokens=args.reasoning_tokens,
        max_model_len=args.max_model_len,
        answers="" if args.answers == "words" else args.answers,
        adapters=tuple(a.strip() for a in (args.adapters or "").split(",") if a.strip()),
    )

    def ready(port: int) -> None:
        extra = f", faults {faults.describe()}" if faults.describe() else ""
        print(
            f"llmsurge sim: serving {args.model} on {url_for(args.host, port)} (max-seqs {timing.max_seqs}"
            f"{', fast' if args.fast else ''}{extra}); Ctrl-C stops",
            flush=True,
        )

    try:
        if args.processes > 1:
            _sim_processes(config, args, ready)
        else:
            serve(config, args.host, args.port, on_ready=ready)
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {exc.strerror} (try --port)") from None
    return 0
