"""Flags to a run's config: URLs, shape flags held to their endpoint, the API, the roofline's inputs, a baseline,
a capacity search — one frozen ``RunConfig`` the run never writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmsurge.engine.endpoints import ENDPOINTS

if TYPE_CHECKING:
    from llmsurge.engine.scenario import Scenario
    from llmsurge.engine.session import RunConfig
    from llmsurge.metrics.roofline import RooflineInputs

    SubParsers = argparse._SubParsersAction[Any]


def resolve_urls(args: argparse.Namespace) -> None:
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
