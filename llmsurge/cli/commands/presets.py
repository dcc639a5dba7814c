"""``llmsurge presets``: the presets, or one shown."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


def main(args: argparse.Namespace) -> int:
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
