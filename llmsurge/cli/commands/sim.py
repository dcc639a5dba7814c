"""``llmsurge sim``: the simulated server, in one process or several on one port."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmsurge.sim.server import SimConfig

    SubParsers = argparse._SubParsersAction[Any]


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


def main(args: argparse.Namespace) -> int:
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
