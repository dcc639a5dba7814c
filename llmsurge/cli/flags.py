"""The command line's value types (each refuses bad input in one line naming the fix) and the flags every load
command shares."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmsurge.engine import limits
from llmsurge.engine.endpoints import DEFAULT as DEFAULT_ENDPOINT
from llmsurge.engine.endpoints import ENDPOINTS

if TYPE_CHECKING:
    from llmsurge.engine.lengths import LengthDist

    SubParsers = argparse._SubParsersAction[Any]


def parse_whole(v: str, low: int, high: int) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a whole number") from None
    if not low <= n <= high:
        raise argparse.ArgumentTypeError(f"{v} is out of range: use {low:,}-{high:,}")
    return n


def parse_number(v: str, low: float, high: float, low_open: bool = False) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number") from None
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low):
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        raise argparse.ArgumentTypeError(f"{v} is out of range: use a finite number {bound} and at most {high:g}")
    return x


def parse_image_size(v: str) -> tuple[int, int]:
    from llmsurge.images import parse_size

    try:
        return parse_size(v)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_positive_int(v: str) -> int:
    return parse_whole(v, 1, limits.MAX_COUNT)


def parse_concurrency(v: str) -> int:
    return parse_whole(v, 1, limits.MAX_CONCURRENCY)


def parse_positive_float(v: str) -> float:
    return parse_number(v, 0.0, limits.MAX_SECONDS, low_open=True)


UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\S+?)\s*(ms|s|m|h)?\s*$")


def parse_seconds(v: str, low_open: bool = True) -> float:
    """A duration: seconds as a number (``90``), or with a unit (``500ms``, ``10s``, ``5m``, ``1h``); a number out
    of range (``-5``, ``nan``) is said as such."""
    m = _DURATION.match(v)
    try:
        value = float(m.group(1)) if m else None
    except ValueError:
        value = None
    if m is None or value is None:
        raise argparse.ArgumentTypeError(f"{v!r} is not a duration: write seconds (90) or with a unit (10s, 5m, 1h)")
    return parse_number(repr(value * UNITS[m.group(2) or "s"]), 0.0, limits.MAX_SECONDS, low_open=low_open)


def parse_duration(v: str) -> float:
    return parse_seconds(v)


def parse_wait_duration(v: str) -> float:
    return parse_seconds(v, low_open=False)


def parse_rate(v: str) -> float:
    return parse_number(v, 0.0, limits.MAX_RATE, low_open=True)


def parse_temperature(v: str) -> float:
    return parse_number(v, 0.0, limits.MAX_TEMPERATURE)


def parse_wait(v: str) -> float:
    return parse_number(v, 0.0, limits.MAX_SECONDS)


def parse_port(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{v} is not a port: use 0-65535 (0 picks a free one)")
    return n


def parse_length(v: str) -> LengthDist:
    from llmsurge.engine.lengths import LengthDist, LengthError

    try:
        return LengthDist.parse(v)
    except LengthError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}


def parse_amount(v: str) -> float:
    """``16e9``, ``16G``, ``246.6M``, ``14B`` (billion): a positive amount."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgbt]?)(?:i?b)?\s*", v, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"{v!r} is not an amount: use e.g. 16e9, 16G, 246M or 14B")
    x = parse_number(m.group(1), 0.0, 1e18, low_open=True) * _SCALE[m.group(2).lower()]
    return x


def parse_workers(v: str) -> int | str:
    return "auto" if v == "auto" else parse_positive_int(v)


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
    g.add_argument("--concurrency", "-c", type=parse_concurrency, help="closed loop: N requests in flight")
    g.add_argument("--rate", "-r", type=parse_rate, help="open loop: R requests per second")
    g.add_argument("--arrival", choices=("constant", "poisson", "gamma"), help="arrival law for --rate")
    g.add_argument("--burstiness", type=parse_positive_float, help="gamma shape (1 = Poisson, <1 burstier)")
    g.add_argument("--requests", "-n", type=parse_positive_int, help="stop after N requests")
    g.add_argument("--duration", "-d", type=parse_duration, help="stop after this long: seconds, or 10s, 5m, 1h")
    g.add_argument(
        "--trace",
        metavar="FILE|sample",
        help="replay a trace, each request at its own time (-c caps what is in flight): Mooncake JSONL (timestamp"
        " ms, input_length, output_length, hash_ids), BurstGPT's CSV, JSONL of request bodies ({timestamp, body})"
        " or a run's requests.jsonl",
    )
    g.add_argument("--speedup", type=parse_positive_float, metavar="X", help="replay a trace X times faster")
    g = p.add_argument_group("requests (override the preset)")
    g.add_argument(
        "--input-tokens",
        type=parse_length,
        metavar="N|DIST",
        help="prompt length in tokens (calibrated): 512, uniform:A,B, normal:MEAN,SD, lognormal:MEDIAN,SIGMA,"
        " empirical:LEN=WEIGHT,…",
    )
    g.add_argument(
        "--output-tokens",
        type=parse_length,
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
        type=lambda v: parse_whole(v, 0, limits.MAX_COUNT),
        metavar="N",
        help="each prompt starts with one of --prefix-groups shared system prompts of N tokens (prefix caching)",
    )
    g.add_argument("--prefix-groups", type=parse_concurrency, metavar="K", help="how many shared prefixes (default 1)")
    g.add_argument(
        "--turns",
        type=lambda v: parse_whole(v, 1, limits.MAX_TURNS),
        help="multi-turn chats: each user sends N turns, the growing history each time (closed loop)",
    )
    g.add_argument("--think-time", type=parse_wait_duration, metavar="SECONDS", help="pause between a user's turns")
    g.add_argument(
        "--endpoint",
        choices=tuple(ENDPOINTS),
        help="; ".join(f"{e.name}: {e.summary}, {e.path}" for e in ENDPOINTS.values())
        + f" (default {DEFAULT_ENDPOINT})",
    )
    g.add_argument(
        "--batch",
        type=lambda v: parse_whole(v, 1, 4096),
        metavar="N",
        help="embeddings: inputs per request (default 1)",
    )
    g.add_argument(
        "--documents",
        type=lambda v: parse_whole(v, 1, 4096),
        metavar="N",
        help="rerank: documents per query (default 8)",
    )
    g.add_argument(
        "--images",
        type=lambda v: parse_whole(v, 1, 64),
        metavar="N",
        help="chat: attach N synthetic PNG images per request",
    )
    g.add_argument(
        "--image-size", type=parse_image_size, metavar="WxH", help="the images' size in pixels (default 512x512)"
    )
    g.add_argument(
        "--tools",
        type=lambda v: parse_whole(v, 1, 128),
        metavar="N",
        help="chat: send N tool definitions and ask for a call (arguments that are not JSON count as degenerate)",
    )
    g.add_argument("--no-stream", action="store_true", help="ask for whole responses instead of SSE")
    g.add_argument("--no-ignore-eos", action="store_true", help="let the model stop early")
    g.add_argument("--temperature", type=parse_temperature, help="sampling temperature (0-2)")
    g.add_argument("--timeout", type=parse_duration, help="per-request timeout: seconds, or 30s, 2m")
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
        type=parse_wait_duration,
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
    g.add_argument(
        "--model-bytes", type=parse_amount, metavar="BYTES", help="weight bytes read per decode step, e.g. 16G"
    )
    g.add_argument(
        "--model-params", type=parse_amount, metavar="N", help="parameters, e.g. 8B (for the compute ceiling)"
    )
    g.add_argument("--mem-bandwidth", type=parse_amount, metavar="GB/S", help="memory bandwidth in GB/s, e.g. 3350")
    g.add_argument("--peak-tflops", type=parse_amount, metavar="TFLOPS", help="dense FP16/BF16 peak in TFLOPS")
    g.add_argument("--kv-bytes-per-token", type=parse_amount, metavar="BYTES", help="KV cache bytes per token")
    g.add_argument("--no-telemetry", action="store_true", help="do not sample GPU, host or server metrics")
    g = p.add_argument_group("client")
    g.add_argument("--workers", "-w", type=parse_workers, default="auto", help="worker processes, or auto")
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
        type=lambda v: parse_whole(v, 0, 2**63 - 1),
        help="random seed for prompts and arrivals (default: a fresh one per run, recorded in summary.json)",
    )
    g = p.add_argument_group("simulated server (when no URL is given)")
    g.add_argument("--faults", help="inject faults, e.g. http500=0.05,reset=0.02 (see `llmsurge sim --help`)")
    g.add_argument("--max-seqs", type=parse_positive_int, help="the simulated server's batch limit")
