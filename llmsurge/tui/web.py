"""``llmsurge web``: the same TUI in a browser, served by textual-serve.

textual-serve starts the app as a process per page; for a load tester a second page would be a second run sending
its own load, so one page at a time holds the run and another is told so (HTTP 409) until it closes.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
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


PAGE = Path(__file__).parent / "web_page"
"""Our page: textual-serve's, with its font served from here (no request leaves for another host) and plain words
when the run has ended or another page holds it."""
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0c181f"/>'
    '<path d="M2 12 L6 7 L9 10 L14 3" stroke="#4ec9b0" stroke-width="2" fill="none"/></svg>'
)


def make_server(tui_args: list[str], host: str, port: int) -> Any:
    """A textual-serve server for the TUI that holds one page (one run) at a time."""
    try:
        import textual_serve
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:  # pragma: no cover - textual-serve is a dependency; a broken install says so
        raise RuntimeError("llmsurge web needs textual-serve: pip install textual-serve") from None

    busy_page = (PAGE / "busy.html").read_text(encoding="utf-8")

    class OneRunServer(Server):  # type: ignore[misc]
        active = False

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.router.add_get("/favicon.ico", self.handle_favicon)
            return app

        async def handle_favicon(self, _request: web.Request) -> web.Response:
            return web.Response(text=FAVICON, content_type="image/svg+xml")

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            if self.active:  # say so in words: the page would otherwise show only "Session ended."
                return web.Response(text=busy_page, content_type="text/html", status=409)
            return await super().handle_index(request)  # type: ignore[no-any-return]

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

    return OneRunServer(
        web_command(tui_args),
        host=host,
        port=port,
        title="llmsurge",
        templates_path=PAGE,
        statics_path=Path(textual_serve.__file__).parent / "static",
    )


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
