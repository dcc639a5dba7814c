"""``llmsurge check``: is a freshly launched server healthy? Each replica in turn; the worst verdict is the exit
status."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    from llmsurge.checkup import check_main
    from llmsurge.engine.session import read_api_key

    key = read_api_key(args.api_key_env)
    quality = None if args.no_quality else args.quality_threshold
    status = 0
    for url in args.url:
        if len(args.url) > 1:
            from llmsurge.net import normalize_base_url
            from llmsurge.redaction import shown

            print(f"── {shown(normalize_base_url(url))}", flush=True)  # no user:password
        code = check_main(url, args.model, key, args.wait, args.max_tokens, quality, not args.no_quality, args.items)
        status = max(status, int(code))
    return status
