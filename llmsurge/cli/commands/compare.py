"""``llmsurge compare``: a baseline against candidates, per load level, with the noise stated."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmsurge.lifetime import ExitCode

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


def main(args: argparse.Namespace) -> int:
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
