"""Command line: ``llmsurge [URL]`` (the TUI), ``demo``, ``web``, ``run``, ``sim``, ``check``, ``presets``,
``report``, ``compare``, ``runs``, ``steer``.

``parser.py`` is the command line (``flags.py`` its value types and shared flags), ``config.py`` turns flags into a
run's config, and each command is a module of ``commands/`` whose handler its parser names
(``set_defaults(handler=…)``). Heavy imports happen inside the handlers: ``llmsurge --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from llmsurge.cli.commands.live import without
from llmsurge.cli.config import build_config, resolve_urls
from llmsurge.cli.parser import SUBCOMMANDS, make_parser
from llmsurge.lifetime import ExitCode, event_loop_asked


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
        _configure_tls(args)
        event_loop_asked()  # the workers' loop: a bad value is said here, before any worker starts
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
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


def _configure_tls(args: argparse.Namespace) -> None:
    """``--ca-bundle`` or ``--insecure``, for every process the command starts."""
    if getattr(args, "ca_bundle", None) or getattr(args, "insecure", False):
        if args.ca_bundle and args.insecure:
            raise ValueError("--ca-bundle and --insecure: give one (a bundle verifies; --insecure verifies nothing)")
        from llmsurge.net import configure_tls

        configure_tls(args.ca_bundle, args.insecure)


__all__ = ["SUBCOMMANDS", "build_config", "main", "make_parser", "resolve_urls", "without"]
