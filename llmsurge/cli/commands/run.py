"""``llmsurge run``: a headless run (or ``--repeat N`` trials), its tables and result files."""

from __future__ import annotations

import argparse
import asyncio

from llmsurge.cli.config import build_config, resolve_urls


def main(args: argparse.Namespace) -> int:
    from llmsurge.engine.session import RunSession
    from llmsurge.headless import run_headless
    from llmsurge.metrics.thresholds import parse_thresholds
    from llmsurge.render.console import make_console

    resolve_urls(args)
    fail_on = parse_thresholds(args.fail_on)
    config = build_config(args, keep_alive=False)
    if args.repeat:
        from llmsurge.headless import run_trials

        if args.find_max:
            raise ValueError("--repeat with --find-max: a search is not a workload to repeat: give one")
        return asyncio.run(run_trials(config, make_console(), args.progress_interval, fail_on, args.repeat))
    session = RunSession(config)
    return asyncio.run(run_headless(session, make_console(), args.progress_interval, fail_on))
