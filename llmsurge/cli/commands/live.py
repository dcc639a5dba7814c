"""``llmsurge`` / ``tui``, ``demo`` and ``web``: the live TUI — its simulated server and workers started before the
heavy imports, the session prepared while Textual draws — or the same served to a browser."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from llmsurge.cli.config import build_config, resolve_urls

if TYPE_CHECKING:
    from llmsurge.engine.launch import Launched


def web(args: argparse.Namespace) -> int:
    """``llmsurge web``: bad flags fail here, in one line, not in the page."""
    resolve_urls(args)
    build_config(args, keep_alive=True)
    from llmsurge.tui.web import serve

    return serve(without(args.raw_argv, ("--host", "--port")), args.host, args.port)


def demo(args: argparse.Namespace) -> int:
    """``llmsurge demo``: the TUI against the embedded simulated server, whatever URL was given."""
    args.url, args.replicas = None, ()
    return _tui(args)


def tui(args: argparse.Namespace) -> int:
    """``llmsurge [URL]``: the TUI."""
    resolve_urls(args)
    return _tui(args)


def _tui(args: argparse.Namespace) -> int:
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


def without(argv: list[str], options: tuple[str, ...]) -> list[str]:
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
