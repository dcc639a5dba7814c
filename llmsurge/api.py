"""The live API: other tools watch a run and steer it while it goes on (``--api HOST:PORT``, ``run`` and the TUI).

- ``GET /metrics``: llmsurge's own live figures as Prometheus text (prometheus_client), per segment;
- ``GET /api/snapshot``: the current snapshot as JSON (the figures the panes show);
- ``POST /api/steer``: ``{"concurrency": N}``, ``{"rate": R}``, ``{"pause": true}``, ``{"resume": true}``,
  ``{"preset": NAME}`` or ``{"slo": "ttft=300ms"}`` — what the keys and the palette do, each load change opening a
  segment; answered with the new target.

It serves on the run's own event loop (the controller's), so a steer is applied between two ticks like a key press.
Loopback by default; any other address needs a bearer token read from an environment variable. Every request is
checked first (``guard.py``): its Host must be one of the API's own names, an Origin its own, a POST JSON — so a web
page open elsewhere can neither steer the run nor read it (README, "What llmsurge promises").
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from llmsurge.engine import limits
from llmsurge.engine.scenario import Load, Scenario
from llmsurge.engine.session import ConfigError, RunSession
from llmsurge.guard import is_loopback, json_refusal, own_hosts, refusal, same_token
from llmsurge.metrics.segment import SegmentView
from llmsurge.metrics.snapshot import Snapshot, SnapshotBuilder
from llmsurge.presets import PresetError
from llmsurge.redaction import register_secret, shown

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Histogram bounds in seconds (TTFT, TPOT, ITL, E2EL): vLLM's own spread, from token gaps to long prompts."""
STEER_KEYS = ("concurrency", "rate", "pause", "resume", "stop", "preset", "slo")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OnSteer = Callable[[dict[str, object]], Awaitable[None] | None]
"""Told of each steer the API applied (the TUI shows a toast)."""


class SteerError(ValueError):
    """A steer request that cannot be applied; the message names the fix."""


def parse_address(spec: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9000`` for IPv6; ``:9000`` for loopback) → (host, port); ``ValueError`` naming the
    fix."""
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"--api {spec!r}: give HOST:PORT, e.g. 127.0.0.1:9000")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def api_token(host: str, var: str | None) -> str | None:
    """The bearer token the API demands (from ``$var``); on any address but loopback one is required."""
    token = os.environ.get(var) if var else None
    if var and not token:
        raise ConfigError(f"--api-token-env {var}: that environment variable is empty or unset")
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--api on {host} is reachable from other machines, which could then steer the load: give a token"
            " with --api-token-env VAR (or bind to 127.0.0.1)"
        )
    register_secret(token)
    return token


# ---- steering ----------------------------------------------------------------------------------------------


def _checked(check: Callable[[object], Any], value: object) -> Any:
    """A steer's value through the one check keys and the palette use too (:mod:`llmsurge.engine.limits`)."""
    try:
        return check(value)
    except ValueError as exc:
        raise SteerError(str(exc)) from None


def named_preset(name: object) -> Scenario:
    """The preset a steer names (a shipped one, or one in the user's preset folder; never a path)."""
    from llmsurge.presets.loader import find_preset

    if not isinstance(name, str) or not name:
        raise SteerError(f"preset takes a preset's name (llmsurge presets lists them), not a path: {name!r}")
    return find_preset(name, by_name=True)


def steer(session: RunSession, request: object, preset: Scenario | None = None) -> dict[str, object]:
    """Apply one steer request to the running ``session`` (what a key or a palette command does); the new target.
    ``preset``: the scenario a preset steer names, when already read (off the loop). :class:`SteerError` naming
    the fix when it cannot be applied."""
    from llmsurge.metrics.slo import SloError, parse_slo
    from llmsurge.presets import PresetError

    ctrl = session.controller
    if ctrl is None:
        raise SteerError("the run has not started yet")
    if not isinstance(request, dict) or len(request) != 1 or next(iter(request)) not in STEER_KEYS:
        raise SteerError(f'send one of {", ".join(STEER_KEYS)} as a JSON object, e.g. {{"concurrency": 64}}')
    key = next(iter(request))
    if key == "concurrency":
        ctrl.set_concurrency(_checked(limits.steered_concurrency, request[key]))
    elif key == "rate":
        ctrl.set_rate(_checked(limits.steered_rate, request[key]))
    elif key in ("pause", "resume", "stop"):
        if request[key] is not True:
            raise SteerError(f'{key} takes true: {{"{key}": true}}')
        if key == "pause":
            ctrl.pause()
        elif key == "resume":
            ctrl.resume()
        else:  # the run ends as by `q`: in-flight requests cancelled and recorded, the results saved
            ctrl.stop()
    elif key == "preset":
        try:
            scenario = session.adapt(preset or named_preset(request[key]))
        except (PresetError, ConfigError) as exc:
            raise SteerError(str(exc)) from None
        if scenario.slo and not session.slo:
            session.slo = parse_slo(scenario.slo)
        ctrl.switch_scenario(scenario)
        session.bus.set_info(preset=scenario.name)
    else:
        try:
            session.slo = parse_slo(str(request[key]))
        except SloError as exc:
            raise SteerError(str(exc)) from None
    return target_of(session) | {"applied": key}


def target_of(session: RunSession) -> dict[str, object]:
    """What the run is doing now: its target load, segment, state and SLO."""
    ctrl = session.controller
    load = ctrl.load if ctrl is not None else None
    return {
        "target": load.describe() if load is not None else "",
        "segment": ctrl.segment if ctrl is not None else 0,
        "paused": ctrl.paused if ctrl is not None else False,
        "preset": (ctrl.scenario.name if ctrl is not None else session.scenario.name),
        "slo": str(session.slo) or None,
    }


# ---- /metrics ------------------------------------------------------------------------------------------------


def _buckets(values: np.ndarray) -> tuple[list[tuple[str, float]], float]:
    """Cumulative counts at :data:`LATENCY_BUCKETS` (and +Inf) of values in seconds, and their sum."""
    v = np.sort(values[~np.isnan(values)])
    counts = np.searchsorted(v, LATENCY_BUCKETS, side="right")
    out = [(repr(b), float(c)) for b, c in zip(LATENCY_BUCKETS, counts, strict=True)]
    out.append(("+Inf", float(len(v))))
    return out, float(v.sum())


def _itl_buckets(seg: SegmentView) -> tuple[list[tuple[str, float]], float] | None:
    """The ITL histogram from the segment's sketch (exact while it keeps every value; else each bound's rank
    found within the sketch's 1%)."""
    sketch = seg.itl
    if sketch is None or not sketch.count:
        return None
    if sketch.exact is not None:
        return _buckets(np.asarray(sketch.exact, dtype=np.float64))
    out: list[tuple[str, float]] = []
    for b in LATENCY_BUCKETS:
        lo, hi = 0.0, 1.0
        for _ in range(20):  # the largest quantile still ≤ b
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if sketch.quantile(mid) <= b else (lo, mid)
        out.append((repr(b), float(round(lo * sketch.count))))
    out.append(("+Inf", float(sketch.count)))
    return out, sketch.sum


class RunCollector:
    """The run's figures for prometheus_client, read from one bus view per scrape."""

    def __init__(self, session: RunSession) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        view = self.session.bus.view(with_stats=True)
        labels = ["segment", "load"]
        inflight = GaugeMetricFamily("llmsurge_requests_in_flight", "Requests sent and not yet ended")
        inflight.add_metric([], view.inflight)
        started = CounterMetricFamily("llmsurge_requests_started", "Requests sent since the run began")
        started.add_metric([], view.started)
        ok = CounterMetricFamily(
            "llmsurge_requests_ok", "Requests that succeeded, by the segment they started in", labels=labels
        )
        failed = CounterMetricFamily(
            "llmsurge_requests_failed", "Requests that failed, by segment and kind", labels=[*labels, "kind"]
        )
        cancelled = CounterMetricFamily("llmsurge_requests_cancelled", "Requests cancelled in flight", labels=labels)
        tokens = CounterMetricFamily("llmsurge_output_tokens", "Output tokens of successful requests", labels=labels)
        hists = {
            name: HistogramMetricFamily(
                f"llmsurge_{name}_seconds", f"{name.upper()} of successful requests", labels=labels
            )
            for name in ("ttft", "tpot", "itl", "e2el")
        }
        for seg in view.segments:
            lv = [str(seg.index), seg.label]
            ok.add_metric(lv, seg.ok)
            cancelled.add_metric(lv, seg.cancelled)
            tokens.add_metric(lv, seg.output_tokens)
            for kind, n in sorted(seg.errors.items()):
                failed.add_metric([*lv, kind], n)
            for name in ("ttft", "tpot", "e2el"):
                buckets, total = _buckets(seg.columns[name].values().astype(np.float64))
                hists[name].add_metric(lv, buckets, total)
            itl = _itl_buckets(seg)
            if itl is not None:
                hists["itl"].add_metric(lv, itl[0], itl[1])
        yield from (inflight, started, ok, failed, cancelled, tokens, *hists.values())
        yield from self._target()

    def _target(self) -> Iterator[Metric]:
        ctrl = self.session.controller
        load: Load | None = ctrl.load if ctrl is not None else None
        conc = GaugeMetricFamily("llmsurge_target_concurrency", "The target in flight (closed loop; 0 in open loop)")
        rate = GaugeMetricFamily("llmsurge_target_rate", "The target requests/s (open loop; 0 in closed loop)")
        paused = GaugeMetricFamily("llmsurge_paused", "1 while the load is paused")
        conc.add_metric([], float((load.concurrency or 0) if load is not None and not load.is_open_loop else 0))
        rate.add_metric([], float((load.rate or 0.0) if load is not None else 0.0))
        paused.add_metric([], float(bool(ctrl is not None and ctrl.paused)))
        yield from (conc, rate, paused)


# ---- /api/snapshot -------------------------------------------------------------------------------------------


def jsonable(obj: object) -> Any:
    """A snapshot (dataclasses, tuples, enums, NaN and N/A values) as plain JSON data (missing values: null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return jsonable(obj.item())
    try:
        value = float(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(obj)
    return value if math.isfinite(value) else None  # N/A behaves as NaN: null


# ---- the server ----------------------------------------------------------------------------------------------


class LiveApi:
    """The HTTP server, on the running loop. ``on_steer`` is told of each steer (the TUI shows a toast)."""

    def __init__(
        self,
        session: RunSession,
        host: str,
        port: int,
        token: str | None = None,
        on_steer: OnSteer | None = None,
    ) -> None:
        self.session = session
        self.host, self.port = host, port
        self.token = token
        self.on_steer = on_steer
        self.snapshots = SnapshotBuilder(session.bus, slo=session.slo)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RunCollector(session))  # type: ignore[arg-type]
        self._runner: web.AppRunner | None = None
        self.hosts: frozenset[str] | None = None  # the Host names it answers to (None: bound to every address)

    @property
    def url(self) -> str:
        """Where it serves."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen (``OSError`` naming the address when it cannot bind)."""
        guard = self._guard

        @web.middleware
        async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await guard(request, handler)

        app = web.Application(middlewares=[check], client_max_size=64 * 1024)
        app.add_routes(
            [
                web.get("/metrics", self._metrics),
                web.get("/api/snapshot", self._snapshot),
                web.post("/api/steer", self._steer),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        self.hosts = own_hosts(self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _snap(self) -> Snapshot:
        if self.snapshots.slo != self.session.slo:
            self.snapshots.set_slo(self.session.slo)
        return self.snapshots.snapshot()

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Only the API's own clients: its Host, no foreign Origin, the token where one is set, JSON to steer."""
        headers = request.headers
        why = refusal(self.hosts, headers.get("Host"), headers.get("Origin"), headers.get("Sec-Fetch-Site"))
        if why is not None:
            return web.json_response({"error": why[1]}, status=why[0])
        if self.token is not None:
            given = headers.get("Authorization", "")
            if not given.isascii():
                return web.json_response({"error": "the Authorization header must be ASCII text"}, status=400)
            if not same_token(given, f"Bearer {self.token}"):
                return web.json_response({"error": "give the token as Authorization: Bearer TOKEN"}, status=401)
        if request.method not in ("GET", "HEAD"):
            wrong = json_refusal(headers.get("Content-Type"))
            if wrong:
                return web.json_response({"error": wrong}, status=403)
        return await handler(request)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _snapshot(self, _request: web.Request) -> web.Response:
        data = {"run": target_of(self.session), "snapshot": jsonable(self._snap())}
        return web.Response(text=json.dumps(data, allow_nan=False), content_type="application/json")

    async def _steer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": 'the body must be JSON, e.g. {"concurrency": 64}'}, status=400)
        try:
            preset = None
            if isinstance(body, dict) and len(body) == 1 and "preset" in body:  # a file read, off the run's loop
                preset = await asyncio.to_thread(named_preset, body["preset"])
            answer = steer(self.session, body, preset)
        except (SteerError, PresetError) as exc:
            return web.json_response({"error": shown(exc, limit=500)}, status=400)
        if self.on_steer is not None:
            told = self.on_steer(answer)
            if told is not None:
                await told
        return web.json_response(answer)
