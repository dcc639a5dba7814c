"""Drive the TUI headless against a server (or the simulated one) and save an SVG screenshot.

python bench/tui_screenshot.py [URL] --seconds 12 --keys "] ]" --out docs/screenshot.svg
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from llmsurge.engine.session import RunConfig
from llmsurge.presets import find_preset
from llmsurge.tui.app import make_app


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url", nargs="?")
    p.add_argument("--preset", default="demo")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--keys", default="", help="keys pressed one per second, space-separated (e.g. '] ]')")
    p.add_argument("--size", default="160x48")
    p.add_argument("--out", type=Path, default=Path("screenshot.svg"))
    p.add_argument("--results", type=Path)
    args = p.parse_args()
    scenario = find_preset(args.preset).with_overrides(concurrency=args.concurrency)
    cfg = RunConfig(scenario=scenario, url=args.url, keep_alive=True, output=args.results)
    app = make_app(cfg)
    w, h = (int(x) for x in args.size.split("x"))
    keys = args.keys.split()
    async with app.run_test(size=(w, h)) as pilot:
        waited = 0.0
        while app.session.controller is None and waited < 600:
            await pilot.pause(0.5)
            waited += 0.5
        for k in keys:
            await pilot.pause(1.0)
            await pilot.press(k)
        await pilot.pause(max(0.5, args.seconds - len(keys)))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=args.out.name, path=str(args.out.parent))
        print(f"saved {args.out}")
        await pilot.press("q")
        await pilot.pause(3)


if __name__ == "__main__":
    asyncio.run(main())
