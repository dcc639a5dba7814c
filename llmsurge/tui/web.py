"""``llmsurge web``: the same TUI in a browser, served by textual-serve.

textual-serve starts the app as a process per page; for a load tester a second page would be a second run sending
its own load, so one page at a time holds the run and another is told so (HTTP 409) until it closes.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def web_command(tui_args: list[str]) -> str:
    """The command textual-serve runs for a page: this Python's ``llmsurge tui`` with the user's flags."""
    return shlex.join([sys.executable, "-m", "llmsurge", "tui", *tui_args])


def open_warning(host: str, port: int) -> str:
    """What to say when the page is reachable from other machines ('' on loopback)."""
    if host in LOOPBACK:
        return ""
    return (
        f"warning: serving on {host}:{port}: the page has no authentication — anyone who can reach it can watch and"
        " steer the load (bind to 127.0.0.1 and tunnel over SSH to keep it private)"
    )


def make_server(tui_args: list[str], host: str, port: int) -> Any:
    """A textual-serve server for the TUI that holds one page (one run) at a time."""
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:  # pragma: no cover - textual-serve is a dependency; a broken install says so
        raise RuntimeError("llmsurge web needs textual-serve: pip install textual-serve") from None

    class OneRunServer(Server):  # type: ignore[misc]
        active = False

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            if self.active:
                raise web.HTTPConflict(
                    text="llmsurge: another page holds this run (each page would be its own load); close it first"
                )
            self.active = True
            try:
                return await super().handle_websocket(request)  # type: ignore[no-any-return]
            finally:
                self.active = False

    return OneRunServer(web_command(tui_args), host=host, port=port, title="llmsurge")


def serve(tui_args: list[str], host: str, port: int) -> int:
    """Serve until interrupted."""
    warning = open_warning(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    server = make_server(tui_args, host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"llmsurge web: open http://{shown}:{port} (one page at a time; Ctrl-C stops)", flush=True)
    server.serve()
    return 0
