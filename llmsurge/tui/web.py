"""``llmsurge web``: the same TUI in a browser, served by textual-serve.

textual-serve starts the app as a process per page; for a load tester a second page would be a second run sending
its own load, so one page at a time holds the run and another is told so (HTTP 409) until it closes.

Who may watch and steer: only a browser that opened the URL printed at start, with its random token (as Jupyter
does). The token sets a cookie (HttpOnly, SameSite=Strict) that the page's own requests and its websocket carry;
every request is also checked for the server's own Host and Origin (``guard.py``), so neither another local user
nor a page on another site can open the screen or send it keys. textual-serve checks none of this: its aiohttp app
is wrapped with a middleware, not forked.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from llmsurge.guard import is_loopback, new_token, own_hosts, refusal, same_token


def web_command(tui_args: list[str]) -> str:
    """The command textual-serve runs for a page: this Python's ``llmsurge tui`` with the user's flags."""
    return shlex.join([sys.executable, "-m", "llmsurge", "tui", *tui_args])


def open_warning(host: str, port: int) -> str:
    """What to say when the page is reachable from other machines ('' on loopback)."""
    if is_loopback(host):
        return ""
    return (
        f"warning: serving on {host}:{port} over plain HTTP: anyone who can read your traffic can take the token and"
        " watch and steer the load (bind to 127.0.0.1 and tunnel over SSH to keep it private)"
    )


PAGE = Path(__file__).parent / "web_page"
"""Our page: textual-serve's, with its font served from here (no request leaves for another host) and plain words
when the run has ended or another page holds it."""
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0c181f"/>'
    '<path d="M2 12 L6 7 L9 10 L14 3" stroke="#4ec9b0" stroke-width="2" fill="none"/></svg>'
)


def cookie_name(port: int) -> str:
    """The cookie that carries the token (cookies ignore ports: one name per port)."""
    return f"llmsurge_web_{port}"


def make_server(tui_args: list[str], host: str, port: int, token: str) -> Any:
    """A textual-serve server for the TUI that holds one page (one run) at a time, for the holder of ``token``."""
    try:
        import textual_serve
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:  # pragma: no cover - textual-serve is a dependency; a broken install says so
        raise RuntimeError("llmsurge web needs textual-serve: pip install textual-serve") from None

    busy_page = (PAGE / "busy.html").read_text(encoding="utf-8")

    hosts = own_hosts(host, port)
    cookie = cookie_name(port)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        """The page's own host and origin, and the token (in the URL once, then its cookie), or nothing."""
        headers = request.headers
        why = refusal(hosts, headers.get("Host"), headers.get("Origin"), headers.get("Sec-Fetch-Site"))
        if why is not None:
            return web.Response(text=f"llmsurge: {why[1]}\n", status=why[0])
        given = request.query.get("token")
        if same_token(given, token):
            response = await handler(request)
            if not response.prepared:
                response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return response  # type: ignore[no-any-return]
        if not same_token(request.cookies.get(cookie), token):
            return web.Response(
                text="llmsurge: open the URL printed when `llmsurge web` started (it holds the page's token)\n",
                status=403,
            )
        return await handler(request)  # type: ignore[no-any-return]

    class OneRunServer(Server):  # type: ignore[misc]
        active = False

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            app.router.add_get("/favicon.ico", self.handle_favicon)
            return app

        async def handle_favicon(self, _request: web.Request) -> web.Response:
            return web.Response(text=FAVICON, content_type="image/svg+xml")

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            if self.active:  # say so in words: the page would otherwise show only "Session ended."
                return web.Response(text=busy_page, content_type="text/html", status=409)
            self.public_url = f"http://{request.host}"  # the websocket goes where the page came from (its cookie)
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
    token = new_token()
    server = make_server(tui_args, host, port, token)
    shown = f"[{host}]" if ":" in host else host
    if shown in ("0.0.0.0", "[::]"):
        shown = "127.0.0.1"
    print(f"llmsurge web: open http://{shown}:{port}/?token={token} (one page at a time; Ctrl-C stops)", flush=True)
    server.serve()
    return 0
