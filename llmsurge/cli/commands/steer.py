"""``llmsurge steer``: a running llmsurge's load changed through its ``--api``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from llmsurge.lifetime import ExitCode

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[Any]


def main(args: argparse.Namespace) -> int:
    """``llmsurge steer URL ACTION [VALUE]``: one POST to the run's /api/steer; the new target, or why not."""
    import httpx

    action, value = args.action, args.value
    if (action in ("pause", "resume", "stop")) != (value is None):
        raise ValueError(f"steer {action}: " + ("takes no value" if value is not None else "give a value"))
    body: dict[str, object] = {action: True if value is None else value}
    if action in ("concurrency", "rate"):
        try:
            body[action] = int(value) if action == "concurrency" else float(value)
        except ValueError:
            raise ValueError(f"steer {action} {value}: give a number") from None
    headers = {}
    if args.api_token_env:
        from llmsurge.engine.session import read_api_key

        headers["Authorization"] = f"Bearer {read_api_key(args.api_token_env)}"
    base = args.api_url.rstrip("/")
    url = (base if "://" in base else f"http://{base}") + "/api/steer"  # 127.0.0.1:9000 works as --api took it
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        print(f"llmsurge: {url} did not answer ({type(exc).__name__}): is the run started with --api?", file=sys.stderr)
        return ExitCode.UNREACHABLE
    try:
        answer = resp.json()
    except ValueError:
        answer = {"error": f"HTTP {resp.status_code}"}
    if resp.status_code != 200:
        from llmsurge.redaction import shown

        print(f"llmsurge: error: {shown(answer.get('error', resp.status_code), limit=None)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    said = " (paused)" if answer.get("paused") else " (stopping: the run ends and saves)" if action == "stop" else ""
    print(f"segment {answer['segment']}: {answer['target']}{said}")
    return ExitCode.OK
