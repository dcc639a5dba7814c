"""The client against the simulated server, over real sockets, and against recorded real transcripts."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from llmsurge.engine.client import ChunkCounter, execute, one_request
from llmsurge.engine.discovery import ServerError, discover
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import RequestRecord
from llmsurge.net import Target
from tests.conftest import FIXTURES
from tests.helpers import until


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
@pytest.mark.parametrize("stream", [True, False])
async def test_request_against_sim(sim_url: str, endpoint: str, stream: bool) -> None:
    async with make_client() as c:
        target = Target(sim_url, (await discover(c, Target(sim_url), wait=10)).model)
        rec = await one_request(c, target, RequestShape(endpoint=endpoint, stream=stream), "one two three four", 24)
    assert rec.ok, rec.error
    assert rec.output_tokens == 24 and not rec.tokens_estimated
    assert rec.prompt_tokens == (4 + 8 if endpoint == "chat" else 4 + 1)
    assert rec.finish_reason == "length"
    assert rec.ttft is not None and rec.e2el is not None and rec.e2el >= rec.ttft > 0
    if stream:
        # chat: a role chunk comes with the first token, so 25 choices messages and 24 gaps
        assert len(rec.itl) == (24 if endpoint == "chat" else 23)
        assert abs(sum(rec.itl) - (rec.e2el - rec.ttft)) < 1e-6
        assert rec.tpot is not None and rec.tpot > 0


async def test_wrong_model_lists_served_models(sim_url: str) -> None:
    async with make_client() as c:
        with pytest.raises(ServerError, match="llmsurge-sim"):
            await discover(c, Target(sim_url, "no-such-model"), wait=10)


async def _serve_bytes(body: bytes, status: int = 200) -> tuple[web.AppRunner, str]:
    async def handler(_r: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(_r)
        for i in range(0, len(body), 97):  # arbitrary chunking
            await resp.write(body[i : i + 97])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def _measure(url: str, endpoint: str) -> RequestRecord:
    rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
    async with make_client() as c:
        await execute(c, Target(url, "m").url(ENDPOINTS[endpoint].path), {}, b"{}", True, rec, ChunkCounter())
    return rec


@pytest.mark.parametrize(
    ("name", "endpoint", "tokens", "estimated", "ttfc_later"),
    [
        ("sse_chat_vllm.txt", "chat", 5, False, False),
        ("sse_completions_vllm.txt", "completions", None, False, False),
        ("sse_chat_llamacpp.txt", "chat", None, None, True),
        ("sse_completions_llamacpp.txt", "completions", None, False, False),
    ],
)
async def test_real_transcripts(
    name: str, endpoint: str, tokens: int | None, estimated: bool | None, ttfc_later: bool
) -> None:
    body = (FIXTURES / name).read_bytes()
    runner, url = await _serve_bytes(body)
    try:
        rec = await _measure(url, endpoint)
    finally:
        await runner.cleanup()
    assert rec.ok, rec.error
    assert rec.finish_reason
    assert rec.output_tokens > 0
    if tokens is not None:
        assert rec.output_tokens == tokens
    if estimated is not None:
        assert rec.tokens_estimated is estimated
    assert rec.ttft is not None and rec.ttfc is not None and rec.ttfc >= rec.ttft


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\ndata: {broken\n\n',
            "protocol",
        ),
        (
            b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\ndata: [DONE]\n\n',
            "truncated",
        ),
        (b'data: {"error":{"message":"boom","code":500}}\n\n', "stream_error"),
        (b"data: [DONE]\n\n", "protocol"),
    ],
)
async def test_stream_failures_are_classified(body: bytes, kind: str) -> None:
    runner, url = await _serve_bytes(body)
    try:
        rec = await _measure(url, "chat")
    finally:
        await runner.cleanup()
    assert rec.status == "failed" and rec.error_kind == kind


async def test_http_error_and_connect_error() -> None:
    runner, url = await _serve_bytes(b'{"error":{"message":"nope"}}', status=503)
    try:
        rec = await _measure(url, "chat")
    finally:
        await runner.cleanup()
    assert rec.error_kind == "http_503" and rec.http_status == 503 and "nope" in rec.error
    rec = await _measure(url, "chat")  # the server is gone now
    assert rec.error_kind == "connect"


async def test_timeout_is_recorded_not_raised(faulty_sim_url: str) -> None:
    shape = RequestShape(timeout=0.3)
    async with make_client() as c:
        recs = await asyncio.gather(
            *[one_request(c, Target(faulty_sim_url, "llmsurge-sim"), shape, "x y", 400) for _ in range(40)]
        )
    kinds = {r.error_kind for r in recs}
    assert "timeout" in kinds  # long generations (and stalls) exceed 0.3 s


async def test_read_delay_of_stamped_chunks() -> None:
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import SimConfig
    from tests.conftest import quick_timing

    with SimProcess(SimConfig(timing=quick_timing(), stamp=True)) as sim:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        counter = ChunkCounter(measure_delays=True)
        body = b'{"model":"llmsurge-sim","prompt":"a b","max_tokens":30,"ignore_eos":true,"stream":true}'
        async with make_client() as c:
            await execute(c, Target(sim.url, "llmsurge-sim").url("/v1/completions"), {}, body, True, rec, counter)
    assert rec.ok and counter.delays is not None and len(counter.delays) == 30
    assert all(0 <= d < 0.5 for d in counter.delays)
    assert ChunkCounter().delays is None  # off unless asked: nothing extra on the hot path


async def test_stale_keepalive_connection_is_retried_once() -> None:
    seen: set[int] = set()
    always = {"drop": False}
    body = (FIXTURES / "sse_chat_vllm.txt").read_bytes()

    async def handler(request: web.Request) -> web.StreamResponse:
        key = id(request.transport)
        if key in seen or always["drop"]:  # like llama.cpp closing a kept-alive connection
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        seen.add(key)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1/chat/completions"  # type: ignore[union-attr]
    try:
        async with make_client() as c:
            recs = []
            for _ in range(3):
                rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
                await execute(c, url, {}, b"{}", True, rec, ChunkCounter())
                recs.append(rec)
            always["drop"] = True
            dead = RequestRecord("d", 1, 0, time.monotonic(), time.time())
            await execute(c, url, {}, b"{}", True, dead, ChunkCounter())
    finally:
        await runner.cleanup()
    assert all(r.ok for r in recs), [r.error for r in recs]
    assert [r.resent for r in recs] == [False, True, True]  # reused connections had been closed: re-sent once
    assert [r.reused for r in recs] == [False, False, False]  # each answer came on a connection opened for it
    assert dead.status == "failed" and dead.error_kind == "reset" and dead.resent  # a real fault still fails


async def test_the_hot_path_posts_on_its_own_client_and_measures_what_httpx_would(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load's requests go straight to the client's aiohttp session (httpx's per-request work cost two thirds
    of a worker's CPU); through httpx (no session) the same request measures the same."""
    import httpx

    from llmsurge.engine.httpclient import LoadClient

    target = Target(sim_url, "llmsurge-sim")
    body = b'{"model":"llmsurge-sim","prompt":"a b","max_tokens":40,"ignore_eos":true,"stream":true}'

    async def measure(client: LoadClient) -> RequestRecord:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        await execute(client, target.url("/v1/completions"), target.headers(), body, True, rec, ChunkCounter())
        return rec

    real_stream = httpx.AsyncClient.stream

    def no_httpx(*args: object, **kwargs: object) -> object:
        raise AssertionError("the hot path went through httpx")

    monkeypatch.setattr(httpx.AsyncClient, "stream", no_httpx)
    async with make_client() as c:
        assert isinstance(c, LoadClient) and c.wire is not None
        fast = await measure(c)
    monkeypatch.setattr(httpx.AsyncClient, "stream", real_stream)
    async with LoadClient(None) as plain:  # no wire of its own: httpx carries it
        slow = await measure(plain)
    for rec in (fast, slow):
        assert rec.ok, rec.error
        assert rec.output_tokens == 40 and len(rec.itl) == 39 and rec.http_status == 200
    assert fast.text_head == slow.text_head  # the same answer, read the same


async def test_a_deadline_on_the_hot_path_ends_the_request_and_nothing_else(sim_url: str) -> None:
    """The deadline is a timer on the request's own task: it fails the request as a timeout; a cancellation from
    outside (the run stopping) still propagates."""
    from llmsurge.engine.client import run_request

    target = Target(sim_url, "llmsurge-sim")
    body = b'{"model":"llmsurge-sim","prompt":"a b","max_tokens":30000,"ignore_eos":true,"stream":true}'
    async with make_client() as c:
        rec = RequestRecord("t", 1, 0, time.monotonic(), time.time())
        await run_request(c, target.url("/v1/completions"), target.headers(), body, True, rec, ChunkCounter(), 0.5)
        assert rec.status == "failed" and rec.error_kind == "timeout", rec.error
        assert rec.ttft is not None  # it was streaming when the deadline came
        stopped = RequestRecord("s", 1, 0, time.monotonic(), time.time())
        task = asyncio.ensure_future(
            run_request(c, target.url("/v1/completions"), target.headers(), body, True, stopped, ChunkCounter(), 30)
        )
        await until(lambda: stopped.ttft is not None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stopped.status == "ok"  # not failed as a timeout: the caller records the cancellation
        ok = RequestRecord("o", 1, 0, time.monotonic(), time.time())
        short = body.replace(b"30000", b"5")
        await run_request(c, target.url("/v1/completions"), target.headers(), short, True, ok, ChunkCounter(), 30)
        assert ok.ok and ok.output_tokens == 5  # the client is fine after both


def test_streamed_text_is_folded_into_the_same_head_and_tail_as_the_whole_answer() -> None:
    """An open stream holds at most TEXT_FOLD pieces of its answer; folding as it streams keeps exactly the
    head and tail that folding once at the end keeps."""
    from llmsurge.metrics.records import TEXT_FOLD, TEXT_KEPT

    pieces = [f"w{i} " for i in range(5000)]
    whole = "".join(pieces)
    once = RequestRecord("a", 1, 0, 0.0, 0.0)
    once.text.extend(pieces)
    once.keep_text()
    folded = RequestRecord("b", 1, 0, 0.0, 0.0)
    for p in pieces:
        folded.text.append(p)
        if len(folded.text) >= TEXT_FOLD:
            folded.keep_text()
        assert len(folded.text) < TEXT_FOLD
    folded.keep_text()
    for rec in (once, folded):
        assert rec.text_head == whole[:TEXT_KEPT] and rec.text_tail == whole[TEXT_KEPT:][-TEXT_KEPT:]
        assert rec.kept_text.endswith(whole[-400:])


def test_the_os_limits_a_stream_can_hit_are_named() -> None:
    """Thousands of streams meet two OS limits: open files and ephemeral ports. Each failure names the limit
    and the remedy; the worker raises its open-file limit to the hard one before it starts."""
    import errno
    import subprocess
    import sys

    from llmsurge.engine.client import _os_limit

    for code, words in ((errno.EMFILE, "ulimit -n"), (errno.EADDRNOTAVAIL, "ip_local_port_range")):
        wrapped = ConnectionError("cannot connect")
        wrapped.__cause__ = OSError(code, "os says no")
        assert words in _os_limit(wrapped)
    assert _os_limit(ConnectionResetError(errno.ECONNRESET, "reset")) == ""
    script = (
        "import resource\n"
        "from llmsurge.lifetime import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "print(raise_open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0], "
        "resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 64)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_running_out_of_sockets_is_a_counted_failure_naming_the_limit(sim_url: str) -> None:
    """With the open-file limit low, requests past it fail as connect failures that name `ulimit -n`; none is
    lost and the client goes on."""
    import subprocess
    import sys

    script = f"""
import asyncio, resource
from llmsurge.engine.client import one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.net import Target
resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
async def main():
    async with make_client() as c:
        shape = RequestShape(endpoint="completions", ignore_eos=True, timeout=20)
        recs = await asyncio.gather(*[one_request(c, Target({sim_url!r}, "llmsurge-sim"), shape, "a", 200)
                                      for _ in range(80)])
    print(sum(r.ok for r in recs), sum(r.status == "failed" for r in recs))
    print(next((r.error for r in recs if r.status == "failed"), ""))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stderr[-2000:]
    ok, failed = (int(x) for x in lines[0].split())
    assert ok + failed == 80 and ok > 0 and failed > 0, lines
    assert "too many open files" in lines[1] and "ulimit -n" in lines[1], lines[1]


async def test_transformers_serve_is_named_by_its_fixed_model_list() -> None:
    """`transformers serve` exports no /metrics and lists a fixed set of models whatever it serves; that list
    names it (it was "unknown" on an H200)."""
    from llmsurge.engine.discovery import detect_server_kind

    ids = ["Menlo/Jan-nano", "Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolVLM-Instruct", "Qwen/Qwen2.5-VL-7B"]

    async def models(_r: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": m.split("/")[0]} for m in ids]
        return web.json_response({"object": "list", "data": data})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with make_client() as c:
            assert await detect_server_kind(c, Target(url, "Qwen/Qwen2.5-0.5B-Instruct")) == "transformers serve"
            ids[:] = ["Qwen/Qwen2.5-0.5B-Instruct"]  # one model of someone's own: not enough to say
            assert await detect_server_kind(c, Target(url, "Qwen/Qwen2.5-0.5B-Instruct")) == "unknown"
    finally:
        await runner.cleanup()


async def test_the_servers_own_prompt_time_is_kept_beside_our_ttft() -> None:
    """A server that returns llama.cpp's timings (the simulated one, from its own clock) has each request's prefill
    kept beside our TTFT; at one request in flight (no queue) what is left of TTFT is the loopback and our read."""
    from llmsurge.sim.model import EngineTiming
    from llmsurge.sim.process import SimProcess
    from llmsurge.sim.server import SimConfig

    timing = EngineTiming(0.004, 0.0, 0.0002, 64, 1 << 30)  # a 512-token prompt: ~100 ms of prefill
    with SimProcess(SimConfig(timing=timing, timings=True)) as sim:
        target = Target(sim.url, "llmsurge-sim")
        async with make_client() as c:
            shape = RequestShape(endpoint="completions", ignore_eos=True)
            recs = [await one_request(c, target, shape, f"w{i} " * 500, 8) for i in range(5)]  # no cache hits
    shares = []
    for rec in recs:
        assert rec.ok and rec.server is not None and rec.ttft is not None, rec.error
        assert rec.server.prompt_tokens is not None and rec.server.prompt_tokens > 400
        assert rec.server.prompt_ms > 90 and rec.server.decode_ms is not None and rec.server.decode_ms > 20
        line = rec.to_json()
        assert line["server_prompt_ms"] == rec.server.prompt_ms and line["server_cached_tokens"] == 0
        assert RequestRecord.from_json(line).server == rec.server  # llmsurge report reads it back
        shares.append(line["ttft_minus_server_prompt_ms"])
    shares.sort()
    assert shares[0] >= 0 and shares[len(shares) // 2] < 10, shares  # ours and the network: a few ms on loopback


def test_the_inspector_says_where_one_ttft_went() -> None:
    from rich.console import Console

    from llmsurge.metrics.records import ServerTimings
    from llmsurge.tui.screens.inspector import details

    rec = RequestRecord("r", 1, 0, 0.0, 0.0)
    rec.ttft = 0.1234
    console = Console(width=200, record=True)
    console.print(details(rec))
    assert "where TTFT went" not in console.export_text()  # a server that keeps no clock: nothing to say
    rec.server = ServerTimings(prompt_ms=100.0, prompt_tokens=512, cached_tokens=0, decode_ms=40.0)
    console.print(details(rec))
    assert "server prefill 100.0 ms | the rest 23.4 ms" in console.export_text()


async def test_a_plain_http_client_loads_no_ca_bundle_and_an_https_one_shares_the_verified_one(sim_url: str) -> None:
    """Loading a CA bundle costs ~50 ms a client (two per worker, more in the UI): clients of plain-http servers
    get a context that loads none (and trusts nothing, so a redirect to https fails); clients of https servers,
    or of servers not known yet, share one verified context per process: the system's trust store."""
    import ssl

    from llmsurge.net import tls_context

    bare = tls_context([sim_url, "http://127.0.0.1:9"])
    assert bare.cert_store_stats()["x509_ca"] == 0
    assert bare.verify_mode == ssl.CERT_REQUIRED and bare.check_hostname  # never trusting, should it be used
    verified = tls_context(["https://vllm.example.com", sim_url])
    assert verified is tls_context(()) is tls_context(["HTTPS://other.example.com"])
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    # the system's trust store, as aiohttp's default context (a host's internal CA is trusted everywhere alike)
    assert verified.get_ca_certs() == ssl.create_default_context().get_ca_certs()
    async with make_client(urls=[sim_url]) as client:  # the plain-http client still asks and streams
        facts = await discover(client, Target(sim_url, None), 10.0)
        assert facts.model == "llmsurge-sim"


def test_workers_run_on_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop is a dependency (libuv's loop in C: ~0.9x a worker's CPU per event and per request, bench/RESULTS.md);
    ``LLMSURGE_EVENT_LOOP=asyncio`` puts a worker back on the standard library's loop."""
    import asyncio

    from llmsurge.engine.worker import event_loop, run_on
    from llmsurge.lifetime import EVENT_LOOP_ENV

    seen: list[str] = []

    async def which() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    run_on(event_loop(), which())
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    assert event_loop() is None
    run_on(event_loop(), which())
    assert seen[0].startswith("uvloop") and seen[1].startswith("asyncio"), seen


@pytest.mark.parametrize(("value", "said"), [("asycnio", "set it to asyncio or uvloop"), ("trio", "'trio'")])
def test_an_unknown_event_loop_is_one_line_before_any_worker_starts(
    value: str, said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmsurge.cli import main
    from llmsurge.lifetime import EVENT_LOOP_ENV, ExitCode

    monkeypatch.setenv(EVENT_LOOP_ENV, value)
    assert main(["run", "http://127.0.0.1:9", "-n", "1"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmsurge: error: LLMSURGE_EVENT_LOOP=") and said in err and "\n" not in err, err
