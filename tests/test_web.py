"""`llmsurge web`: the TUI served by textual-serve, driven in a real browser (Debian's chromium via Playwright)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from llmsurge.cli import without
from llmsurge.tui.web import open_warning, web_command
from tests.helpers import chromium, free_port


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    out = tmp_path / "run"
    args = ["-c", "2", "--input-tokens", "32", "--output-tokens", "32", "-o", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmsurge", "web", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"open http://127.0.0.1:{port}/?token=" in first, first
    deadline = time.monotonic() + 30
    while True:  # the line is printed just before the server listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "llmsurge web did not listen"
            time.sleep(0.05)
    yield first.split("open ", 1)[1].split()[0], out, proc
    proc.terminate()
    proc.wait(10)


def _pane_pixels(png: bytes) -> tuple[int, int]:
    """How many pixels are pane-border blue, and how many are the status line's RUNNING green."""
    import io

    import numpy as np
    from PIL import Image

    px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB").resize((800, 500))).astype(int)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    blue = int(((b > 150) & (r < 60) & (g > 80) & (g < 160)).sum())
    green = int(((g > 150) & (r < 120) & (b < 120)).sum())
    return blue, green


@pytest.mark.slow
async def test_the_page_shows_the_panes_and_its_keys_steer_the_run(
    web: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    from playwright.async_api import async_playwright

    url, out, _proc = web  # the URL printed at start, with the page's token
    base, token = url.split("/?token=")
    asked: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("request", lambda r: asked.append(r.url))
        await page.goto(url)
        deadline = time.monotonic() + 60
        blue = green = 0
        while time.monotonic() < deadline:  # the app starts, finds the simulated server and draws
            await page.wait_for_timeout(1000)
            blue, green = _pane_pixels(await page.screenshot())
            if blue > 3000 and green > 100:
                break
        assert blue > 3000 and green > 100, (blue, green)  # pane borders everywhere, the RUNNING badge

        async with aiohttp.ClientSession() as s:  # a second page would be a second run: refused while one holds it
            ws_url = base.replace("http", "ws") + f"/ws?width=80&height=24&token={token}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(ws_url)
            assert refused.value.status == 409

        second = await browser.new_page()  # a second page says, in words, that the run is open in another
        answer = await second.goto(url)
        assert answer is not None and answer.status == 409
        assert "This run is open in another page" in await second.inner_text("body")
        await second.close()
        async with aiohttp.ClientSession() as s, s.get(url.replace("/?", "/favicon.ico?")) as icon:
            assert icon.status == 200 and icon.content_type == "image/svg+xml"

        await page.mouse.click(800, 500)
        await page.wait_for_timeout(1000)
        await page.keyboard.press("+")  # one more in flight: a new segment at c=3
        requests_file = out / "requests.jsonl"
        for _ in range(120):  # until a request of segment 2 has finished
            if requests_file.exists() and '"segment": 2' in requests_file.read_text():
                break
            await asyncio.sleep(0.25)
        await page.keyboard.press("q")  # stop, save and quit
        summary = out / "summary.json"
        for _ in range(60):
            if summary.exists():
                break
            await asyncio.sleep(0.5)
        await browser.close()
    data = json.loads(summary.read_text())
    assert [s["load"] for s in data["segments"]][:2] == ["c=2", "c=3"]
    assert data["segments"][1]["completed"] > 0
    hosts = {urlsplit(u).hostname for u in asked if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, sorted(set(asked))  # nothing leaves this machine: the font is served here


def test_the_page_runs_the_tui_with_the_users_flags_and_warns_off_loopback() -> None:
    argv = ["--host", "0.0.0.0", "--port=9000", "http://127.0.0.1:8000", "-c", "4"]
    assert without(argv, ("--host", "--port")) == ["http://127.0.0.1:8000", "-c", "4"]
    cmd = web_command(["http://127.0.0.1:8000", "-c", "4"])
    assert cmd.endswith("-m llmsurge tui http://127.0.0.1:8000 -c 4") and cmd.startswith(sys.executable)
    assert open_warning("127.0.0.1", 8765) == ""
    assert "anyone who can read your traffic can take the token" in open_warning("0.0.0.0", 8765)
    r = subprocess.run(
        [sys.executable, "-m", "llmsurge", "web", "--preset", "nope"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "no preset named 'nope'" in r.stderr  # bad flags fail before serving


@pytest.mark.slow
async def test_only_the_holder_of_the_printed_url_may_watch_or_drive_the_page(
    web: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    url, _out, _proc = web
    base, token = url.split("/?token=")
    port = urlsplit(base).port
    ws = base.replace("http", "ws") + "/ws?width=80&height=24"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # a browser keeps IP cookies
        async with s.get(base) as bare:  # another local user, who does not have the token
            assert bare.status == 403 and "open the URL printed" in await bare.text()
        for path in ("/static/js/textual.js", "/favicon.ico"):
            async with s.get(base + path) as other:
                assert other.status == 403
        for headers, status in (
            ({"Origin": "http://evil.example"}, 403),  # a page on another site, even with the token
            ({"Host": f"evil.example:{port}"}, 421),  # DNS rebinding
            ({"Sec-Fetch-Site": "cross-site"}, 403),
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(ws + f"&token={token}", headers=headers)
            assert refused.value.status == status, headers
            async with s.get(url, headers=headers) as page:
                assert page.status == status and not page.cookies
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.ws_connect(ws + "&token=wrong")
        assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.ws_connect(ws, headers={"Cookie": f"llmsurge_web_{port}=guess"})
        assert refused.value.status == 403
        async with s.get(url) as page:  # the printed URL opens the page and sets its cookie
            assert page.status == 200 and "data-session-websocket-url" in await page.text()
            assert page.cookies[f"llmsurge_web_{port}"]["samesite"] == "Strict"
        async with s.get(base + "/favicon.ico") as icon:  # then the page's own requests carry the cookie
            assert icon.status == 200


@pytest.mark.slow
async def test_a_closed_page_saves_the_run_with_its_cancelled_requests_counted(
    web: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    from playwright.async_api import async_playwright

    url, out, _proc = web
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        await page.goto(url)
        requests_file = out / "requests.jsonl"
        for _ in range(240):  # until the run has finished a few requests (two more are then in flight)
            if requests_file.exists() and requests_file.read_text().count('"warmup": false') >= 3:
                break
            await asyncio.sleep(0.25)
        await page.close()  # the tab closed mid-run: no q
        summary = out / "summary.json"
        for _ in range(120):
            if summary.exists():
                break
            await asyncio.sleep(0.25)
        await browser.close()
    for _ in range(40):  # the last records are written as the workers stop
        rows = [json.loads(x) for x in requests_file.read_text().splitlines()]
        data = json.loads(summary.read_text())
        if data["cancelled"] == sum(r["status"] == "cancelled" and not r["warmup"] for r in rows):
            break
        await asyncio.sleep(0.25)
    cancelled = sum(r["status"] == "cancelled" and not r["warmup"] for r in rows)
    assert cancelled >= 1 and data["cancelled"] == cancelled, (data["cancelled"], cancelled)
    assert data["completed"] == sum(r["status"] == "ok" and not r["warmup"] for r in rows)
