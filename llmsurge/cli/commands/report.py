"""``llmsurge report``: a run recomputed from requests.jsonl and held against its summary.json."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from llmsurge.lifetime import ExitCode

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


def main(args: argparse.Namespace) -> int:
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
