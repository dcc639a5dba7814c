"""What waiting for a server means, and what is said at once: TLS, DNS, and the causes of a wait
(issue "Loopback is not a trust boundary", part 4)."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from llmsurge.engine import discovery
from llmsurge.engine.discovery import ServerUnreachable, wait_until_up
from llmsurge.engine.httpclient import make_client
from llmsurge.net import Target, _verified_context
from tests.helpers import serving


async def _models(_request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})


async def _https_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    app = web.Application()
    app.router.add_get("/v1/models", _models)
    async with serving(app, ctx) as port:
        yield f"https://127.0.0.1:{port}", bundle


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    async for x in _https_server(tmp_path):
        yield x


async def test_a_certificate_the_system_does_not_trust_is_said_at_once_with_the_fix(
    https: tuple[str, Path], tmp_path: Path
) -> None:
    url, _bundle = https
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmsurge", "check", url, "--no-quality", "--wait", "600",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 3, text
    assert time.monotonic() - t0 < 60  # not the whole --wait
    assert "TLS failed" in text and "--ca-bundle FILE" in text and "--insecure" in text, text
    assert "is the server running" not in text


async def test_a_ca_bundle_or_insecure_lets_the_wait_end(
    https: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, bundle = https
    target = Target(url, "m")
    for env in ({"LLMSURGE_CA_BUNDLE": str(bundle)}, {"LLMSURGE_INSECURE": "1"}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        _verified_context.cache_clear()
        try:
            async with make_client(urls=[url]) as client:
                assert await asyncio.wait_for(wait_until_up(client, target, 30), 30) < 10
        finally:
            for k in env:
                monkeypatch.delenv(k)
            _verified_context.cache_clear()


def test_a_ca_bundle_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello")
    r = run_cli("check", "https://127.0.0.1:9", "--ca-bundle", str(bad), timeout=60)
    assert r.returncode == 2 and "--ca-bundle" in r.stderr and "PEM" in r.stderr, r.stderr
    r = run_cli("check", "https://127.0.0.1:9", "--ca-bundle", str(bad), "--insecure", timeout=60)
    assert r.returncode == 2 and "give one" in r.stderr


async def test_each_wait_names_its_cause_and_a_name_that_never_resolves_ends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    causes: list[str] = []

    async def loading(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="loading model")

    app = web.Application()
    app.router.add_get("/v1/models", loading)
    async with serving(app) as port, make_client() as client:
        with pytest.raises(ServerUnreachable, match=r"did not answer within 1s \(last: HTTP 503"):
            await wait_until_up(client, Target(f"http://127.0.0.1:{port}", "m"), 1.0, lambda s, w: causes.append(w))
        assert causes and set(causes) == {"HTTP 503: loading"}

    causes.clear()
    async with make_client() as client:  # nothing listens there now: not up yet
        with pytest.raises(ServerUnreachable):
            await wait_until_up(client, Target(f"http://127.0.0.1:{port}", "m"), 1.0, lambda s, w: causes.append(w))
    assert causes and set(causes) == {"connection refused"}

    monkeypatch.setattr(discovery, "DNS_PATIENCE_S", 0.5)
    t0 = time.monotonic()
    async with make_client() as client:
        with pytest.raises(ServerUnreachable, match="the name does not resolve"):
            await wait_until_up(client, Target("http://no-such-host.invalid:8000", "m"), 600)
    assert time.monotonic() - t0 < 60


def test_insecure_is_said_in_the_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmsurge.engine.session import RunConfig
    from llmsurge.presets import find_preset

    cfg = RunConfig(scenario=find_preset("demo"), output=tmp_path)
    assert json.loads(json.dumps(cfg.public()))["tls_insecure"] is False
    monkeypatch.setenv("LLMSURGE_INSECURE", "1")  # what --insecure sets for the run's processes
    assert cfg.public()["tls_insecure"] is True
