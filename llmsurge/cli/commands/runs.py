"""``llmsurge runs``: saved runs, newest first."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from llmsurge.lifetime import ExitCode

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


def main(args: argparse.Namespace) -> int:
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
