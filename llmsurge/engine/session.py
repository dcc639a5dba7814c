"""One run, start to end: target (or the simulated server), discovery, calibration, pool, controller, results.

The headless runner and the TUI both drive a :class:`RunSession`; neither builds these parts on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmsurge import __version__
from llmsurge.engine.backend import LocalBackend, WorkerBackend, auto_workers, cap_workers
from llmsurge.engine.controller import Controller
from llmsurge.engine.dataset import DatasetError, load_index
from llmsurge.engine.discovery import ServerError, ServerFacts, discover, negotiate
from llmsurge.engine.hooks import ServerHooks
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.launch import Launched, launch
from llmsurge.engine.pool import WorkerPool
from llmsurge.engine.prompts import Calibration
from llmsurge.engine.scenario import Scenario
from llmsurge.engine.trace import MAX_SPAN_S, TraceError, cached_trace
from llmsurge.lifetime import open_files_note, raise_open_files_limit
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.model import RunSummary
from llmsurge.metrics.results import (
    ResultsFolderError,
    ResultWriter,
    check_results_folder,
    claim_results_folder,
    clean_floats,
    default_results_folder,
    write_json_atomic,
)
from llmsurge.metrics.roofline import RooflineInputs
from llmsurge.metrics.slo import Slo, goodput
from llmsurge.metrics.stats import ALIGNED
from llmsurge.metrics.summary import RunFacts, build_summary
from llmsurge.net import METRICS_CAP, Target, fetch, insecure, normalize_base_url
from llmsurge.redaction import listed, register_secret
from llmsurge.sim.process import SimProcess

RAY_SETTLE_S = 3.0
"""How long a Ray run waits for CPUs being freed before it says how many workers fit."""


class ConfigError(ValueError):
    """Bad input from the user; the message names the fix."""


@dataclass
class RunConfig:
    """Everything a run needs from the command line: read-only input (the session keeps what it resolves from
    it and from the server in :class:`~llmsurge.engine.discovery.ServerFacts`). The API key is read from
    ``api_key_env`` by the session, never held here."""

    scenario: Scenario
    url: str | None = None
    model: str = ""
    api_key_env: str | None = None
    workers: int | str = "auto"
    output: Path | None = None
    sim_faults: str | None = None
    sim_max_seqs: int | None = None
    wait_timeout: float | None = 600.0
    seed: int | None = None
    """Prompts and arrivals follow it; None draws a fresh one (recorded), so a re-run never hits the prefix cache."""
    calibrate: bool = True
    keep_alive: bool = False
    telemetry: bool = True
    gpu_metrics_url: str | None = None
    measure_read_delay: bool = False  # benchmarks: workers record how late stamped chunks are read
    ray: str | None = None
    """Run the workers as Ray actors on the cluster at this address ("auto": the one this machine is in)."""
    ray_cpus_per_worker: float = 1.0
    roofline: RooflineInputs = field(default_factory=RooflineInputs)
    """Roofline inputs given as flags (--model-bytes, --mem-bandwidth …)."""
    sim_config: Any = None  # a SimConfig for the embedded server (benchmarks, tests); default when None
    slo: Slo = field(default_factory=Slo)
    """Thresholds a request must meet to count as good (goodput); empty: none."""
    name: str = ""
    """A label for the run (``--name``): in its folder's name and ``summary.json``, for ``runs`` and ``compare``."""
    baseline: Path | None = None
    """A saved run to show beside this one in the TUI (``--baseline``)."""
    api: str | None = None
    """``HOST:PORT`` to serve the live API on (``--api``); None: no API."""
    api_token_env: str | None = None
    """The environment variable holding the API's bearer token (required off loopback)."""
    replicas: tuple[str, ...] = ()
    """Further servers of the same model beside ``url``: requests are spread over all (``balance``)."""
    balance: str = "rr"
    """``rr`` (each in turn) or ``least`` (the least busy, as each worker counts its own requests)."""
    reset_cache: bool = False
    """Empty the server's prefix cache before each stage (``--reset-cache``: :mod:`llmsurge.engine.hooks`)."""
    profile: bool = False
    """Run the server's profiler around the first measured segment (``--profile``)."""

    @property
    def models(self) -> tuple[str, ...]:
        """The models asked for with ``--model a,b,c`` (empty: one model, or the server's)."""
        names = tuple(m.strip() for m in self.model.split(",") if m.strip())
        return names if len(names) > 1 else ()

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = secrets.randbelow(2**31)

    def worker_plan(self) -> tuple[int, str]:
        """Worker processes to start, and a note when the number asked for was capped."""
        if self.ray:  # the cluster decides how many fit (RunSession.start)
            return (0 if self.workers == "auto" else max(1, int(self.workers))), ""
        if self.workers == "auto":
            return auto_workers(), ""
        peak = None if self.keep_alive else self.scenario.peak_concurrency()
        return cap_workers(max(1, int(self.workers)), peak)

    @property
    def n_workers(self) -> int:
        """Worker processes to start."""
        return self.worker_plan()[0]

    def public(self) -> dict[str, object]:
        """The config as written to ``summary.json``: no secrets, only the name of the key's variable."""
        sc = dataclasses.asdict(self.scenario)
        return {
            "url": normalize_base_url(self.url) if self.url else "simulated",  # no user:password
            "replicas": [normalize_base_url(u) for u in self.replicas],
            "balance": self.balance,
            "models": list(self.models),
            "model": self.model or None,
            "api_key_env": self.api_key_env,
            "workers": self.n_workers,
            "scenario": sc,
            "sim_faults": self.sim_faults,
            "seed": self.seed,
            "slo": str(self.slo) or None,
            "tls_insecure": insecure(),  # --insecure: the server's certificate was not checked
            "reset_cache": self.reset_cache,
            "profile": self.profile,
        }


METRICS_BEFORE_S = 2.0
"""The most the first segment waits for the server's ``/metrics`` before it opens."""


def read_api_key(var: str | None) -> str | None:
    """The API key from environment variable ``var`` (the one place it is read), registered for redaction."""
    if not var:
        return None
    key = os.environ.get(var)
    if not key:
        raise ConfigError(f"--api-key-env {var}: that environment variable is empty or unset")
    if any(c in key for c in "\r\n\0"):  # it would end the Authorization header: every request would fail
        raise ConfigError(f"--api-key-env {var}: the key holds a line break; set it without one (a trailing newline?)")
    register_secret(key)
    return key


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """A run's inputs checked against its server, once, before any request of the load: the target (with the
    model it serves), what the server said (``ServerFacts``: kind, context, calibration, what resolving sent), the
    scenario made ready for it, and the replicas beside it. Steering changes the load, never these."""

    target: Target
    server: ServerFacts
    scenario: Scenario
    replicas: tuple[Target, ...] = ()


class RunSession:
    """Owns the parts of one run and their order of start and stop."""

    def __init__(self, config: RunConfig, launched: Launched | None = None) -> None:
        self.config = config
        """The user's input, never written."""
        self.resolved: Resolved | None = None
        """The run's inputs checked against the server, set once by :meth:`prepare` (never written after)."""
        self.slo = config.slo
        """The SLO goodput is held to: the config's, or as set while the run goes on (the TUI's palette)."""
        self.bus = MetricsBus()
        self.sim: SimProcess | None = None
        self.pool: WorkerPool | None = None
        self.controller: Controller | None = None
        self.writer: ResultWriter | None = None
        self.output: Path = config.output or default_results_folder(config.name or config.scenario.name)
        self.samplers: list[Any] = []
        self._launched = False
        self._early = launched
        self.preparing: Preparation | None = None
        """:meth:`prepare` under way on its own thread (:meth:`prepare_early`), if it was begun that way."""
        self._metrics_before: str | None = None
        """The server's ``/metrics`` read as the first segment opened (its histograms' base)."""
        self._closed = False
        self._telemetry_start: threading.Thread | None = None
        self._telemetry_lock = threading.Lock()
        self.started_wall = time.time()
        self._datasets_told: set[str] = set()
        self.shares_prefixes = False
        """Some scenario of the run shares prompt prefixes on purpose (no cold-cache warning then)."""
        self.workers_used = 0
        """Workers the pool started (a Ray cluster may hold fewer than asked for)."""
        self._local: LocalBackend | None = None
        """This machine's worker processes, started by :meth:`launch` before the target is known."""

    @property
    def simulated(self) -> bool:
        """Whether the target is the embedded simulated server."""
        return self.config.url is None

    @property
    def model(self) -> str:
        """The model the run uses (the one asked for until the server has been asked)."""
        return self.server.model if self.server else self.config.model

    @property
    def server_kind(self) -> str:
        """vLLM, llama.cpp … (``unknown`` until the server has been asked)."""
        return self.server.kind if self.server else "unknown"

    @property
    def calibration(self) -> Calibration:
        """Prompt calibration against the server's token count."""
        return self.server.calibration if self.server else Calibration()

    @property
    def notes(self) -> list[str]:
        """What the run had to say (capped workers, rejected fields, lost workers …), oldest first."""
        return [e.message for e in self.bus.events]

    def note(self, message: str, level: str = "info") -> None:
        """Keep a note for ``summary.json`` and the screen."""
        self.bus.note(message, level)

    def launch(self) -> None:
        """Start the processes that need nothing from the server — the simulated server and local workers (they
        take their target later) — so their interpreters start while this one imports and discovers: adopt what
        the CLI launched before its imports (:mod:`llmsurge.engine.launch`), or launch them now. :meth:`prepare`
        calls it; :meth:`close` ends them if the run never starts."""
        if self._launched:
            return
        self._launched = True
        cfg = self.config
        early, self._early = self._early, None
        workers = 0 if cfg.ray else cfg.n_workers
        if early is not None and not early.matches(cfg.url, workers):
            early.discard()
            early = None
        if early is None:
            early = launch(cfg.url, workers, cfg.sim_config, cfg.sim_faults, cfg.sim_max_seqs)
        self.sim, self._local = early.sim, early.local

    def prepare_early(self) -> Preparation:
        """:meth:`prepare` begun now on a thread and event loop of its own (see :class:`Preparation`); the TUI
        starts it before its own imports and first frame, which would otherwise hold the discovery back."""
        if self.preparing is None:
            self.preparing = Preparation(self)
        return self.preparing

    async def prepare(self, on_status: Callable[[str], None] | None = None) -> None:
        """Check the inputs (the results folder can be written), start the simulated server if needed, wait for
        the target, learn what it is and accepts, calibrate prompts. Bad input fails here, before any request."""
        cfg = self.config
        say = on_status or (lambda _m: None)
        api_key = read_api_key(cfg.api_key_env)
        try:  # a default folder is made unique when claimed: only where it goes is checked
            check_results_folder(self.output if cfg.output is not None else self.output.parent)
        except ResultsFolderError as exc:
            raise ConfigError(str(exc)) from None
        n_workers, capped = cfg.worker_plan()
        if capped:
            self.note(capped)
            say(capped)
        files = open_files_note(cfg.scenario.peak_concurrency(), n_workers, raise_open_files_limit())
        if files:
            self.note(files, "warning")
            say(files)
        if cfg.ray:
            self._check_ray()
        self.launch()
        if cfg.url is None:
            assert self.sim is not None, "launch() starts it"
            say("starting the simulated server")
            await asyncio.to_thread(self.sim.wait_ready)
            target = Target(self.sim.url, cfg.model)
        else:
            target = Target.from_url(cfg.url, cfg.models[0] if cfg.models else cfg.model, api_key)
        base = target.base_url
        shown_url = f"{base} (simulated)" if self.simulated else base
        if insecure() and base.startswith("https"):
            shown_url += " (TLS not verified: --insecure)"
        self.bus.set_info(url=shown_url, preset=cfg.scenario.name)
        self.bus.set_state("waiting")
        async with make_client(timeout=30.0, urls=[base]) as client:
            facts = await discover(
                client, target, cfg.wait_timeout, lambda s, why: say(f"waiting for {base} to answer ({s:.0f}s): {why}"),
                simulated=self.simulated,
            )  # fmt: skip
            target = dataclasses.replace(target, model=facts.model)
            self._check_models(facts)
            replicas = await self._discover_replicas(client, facts.model, api_key, say)
            self.bus.set_info(model=facts.model, server=facts.kind)
            scenario = self.adapt(cfg.scenario, say, facts.context_length)
            shape = scenario.shape
            if cfg.calibrate and not shape.cases:
                say("asking the server what it accepts and calibrating prompt length against its token count")
            facts = await negotiate(client, target, facts, shape, cfg.calibrate and not shape.cases)
        if not facts.accepts_ignore_eos and scenario.shape.ignore_eos:
            scenario = dataclasses.replace(scenario, shape=dataclasses.replace(scenario.shape, ignore_eos=False))
        for level, message in facts.notes:
            self.note(message, level)
            say(message)
        self.resolved = Resolved(target=target, server=facts, scenario=scenario, replicas=replicas)

    def _check_models(self, facts: ServerFacts) -> None:
        """``--model a,b,c``: each must be one the server lists (when it lists any)."""
        missing = [m for m in self.config.models if facts.models and m not in facts.models]
        if missing:
            raise ConfigError(
                f"--model: the server does not list {listed(missing)} (it serves {listed(list(facts.models))}):"
                " name models from its list"
            )

    async def _discover_replicas(
        self, client: httpx.AsyncClient, model: str, api_key: str | None, say: Callable[[str], None]
    ) -> tuple[Target, ...]:
        """Each replica answers and serves the model (checked side by side); :class:`ServerError` names one that
        does not."""
        cfg = self.config
        if not cfg.replicas:
            return ()
        targets = tuple(Target.from_url(u, model, api_key) for u in cfg.replicas)
        say(f"checking {len(targets)} more replica(s)")

        async def check(t: Target) -> None:
            facts = await discover(client, t, cfg.wait_timeout, None)
            if facts.models and model not in facts.models:
                raise ServerError(f"{t.base_url} does not serve {model} (it lists {listed(list(facts.models))})")

        await asyncio.gather(*(check(t) for t in targets))
        return targets

    def _check_ray(self) -> None:
        """Fail at once, before anything is sent, when no Ray cluster answers at the address given."""
        from llmsurge.engine.ray_pool import RayUnavailable, check_address

        try:
            check_address(self.config.ray or "")
        except RayUnavailable as exc:
            raise ConfigError(str(exc)) from None

    @property
    def scenario(self) -> Scenario:
        """The scenario being run: the config's until resolved, then made ready for this server (:meth:`adapt`)."""
        return self.resolved.scenario if self.resolved else self.config.scenario

    @property
    def server(self) -> ServerFacts | None:
        """What the server said about itself, once :meth:`prepare` has run."""
        return self.resolved.server if self.resolved else None

    @property
    def target(self) -> Target | None:
        """The server the load goes to (with the model it serves), once resolved."""
        return self.resolved.target if self.resolved else None

    @property
    def replicas(self) -> tuple[Target, ...]:
        """The replicas beside the target, each answering with the same model."""
        return self.resolved.replicas if self.resolved else ()

    @property
    def context_length(self) -> int | None:
        """The server's context length in tokens, when it says (the long-context preset fills it)."""
        return self.server.context_length if self.server else None

    CONTEXT_MARGIN = 16
    """Tokens left free under the context length (the chat template's own, and the count's rounding)."""

    def adapt(
        self, scenario: Scenario, say: Callable[[str], None] | None = None, context_length: int | None = None
    ) -> Scenario:
        """``scenario`` made ready for this server: its dataset indexed (bad entries said once), prompts sized to
        the context length (``context_length``, else the resolved server's) when it asks to fill it.
        :class:`ConfigError` naming the fix when it cannot run."""
        context_length = context_length or self.context_length
        shape = scenario.shape
        tell = say or (lambda _m: None)
        self.shares_prefixes |= shape.shares_prefixes
        if shape.turns > 1 and any(st.load.is_open_loop for st in scenario.stages):
            raise ConfigError(
                f"{scenario.name}: multi-turn chats need a closed loop (each user keeps a conversation):"
                " use --concurrency N instead of --rate"
            )
        scenario = self._adapt_traces(scenario, tell, context_length)
        if shape.dataset:
            try:
                index = load_index(shape.dataset)
            except DatasetError as exc:
                raise ConfigError(str(exc)) from None
            self._tell_file(index.path, f"dataset {index.describe()}", index.bad_examples, tell)
        if shape.fill_context:
            ctx = context_length
            if ctx is None:
                self.note(
                    f"{scenario.name}: the server does not say its context length (max_model_len, n_ctx): prompts"
                    f" stay at {shape.input_tokens} tokens; give --input-tokens to size them",
                    "warning",
                )
                tell(self.notes[-1])
                return scenario
            out = shape.output_dist.nominal if shape.output_dist else shape.output_tokens
            n = int(ctx * shape.fill_context) - out - self.CONTEXT_MARGIN
            if n < 1:
                raise ConfigError(
                    f"{scenario.name}: a context of {ctx} tokens leaves no room for {out} output tokens:"
                    " lower --output-tokens"
                )
            shape = dataclasses.replace(shape, input_tokens=n, input_dist=None)
            self.note(f"long context: the server's context is {ctx:,} tokens; prompts of {n:,} tokens + {out} out")
            tell(self.notes[-1])
            scenario = dataclasses.replace(scenario, shape=shape)
        return scenario

    def _tell_file(self, path: str, what: str, bad_examples: tuple[str, ...], tell: Callable[[str], None]) -> None:
        """Say once per run what a prompt file or trace holds, and name its first bad lines."""
        if path in self._datasets_told:
            return
        self._datasets_told.add(path)
        self.note(what, "warning" if bad_examples else "info")
        tell(self.notes[-1])
        for example in bad_examples:
            self.note(f"skipped {example}", "warning")
            tell(self.notes[-1])

    def _adapt_traces(self, scenario: Scenario, tell: Callable[[str], None], context_length: int | None) -> Scenario:
        """Each trace read once (bad lines said once) and replayed whole: its stage's budget is its requests."""
        stages = []
        for st in scenario.stages:
            if st.load.trace is None:
                stages.append(st)
                continue
            try:
                trace = cached_trace(st.load.trace)
            except TraceError as exc:
                raise ConfigError(str(exc)) from None
            if trace.span / st.load.speedup > MAX_SPAN_S:
                raise ConfigError(
                    f"--trace {trace.path} at --speedup {st.load.speedup:g} would last"
                    f" {trace.span / st.load.speedup / 3600:,.0f} hours: a replay may last a day (a larger --speedup)"
                )
            self.shares_prefixes |= trace.shares_blocks
            self._tell_file(trace.path, f"trace {trace.describe()}", trace.bad_examples, tell)
            too_long = trace.beyond(context_length)
            if too_long:
                raise ConfigError(f"--trace {trace.path}: {too_long}")
            if trace.endpoint_problem(scenario.shape.endpoint):
                raise ConfigError(trace.endpoint_problem(scenario.shape.endpoint))
            stages.append(dataclasses.replace(st, requests=st.requests or len(trace.entries), duration=None))
        return dataclasses.replace(scenario, stages=tuple(stages))

    def start(self) -> Controller:
        """Open the result folder and start the workers; returns the controller to drive."""
        assert self.target is not None, "prepare() first"
        try:
            self.output = claim_results_folder(self.output, unique=self.config.output is None)
            self.writer = ResultWriter(self.output, on_error=self._write_failed)
        except (ResultsFolderError, FileExistsError) as exc:
            raise ConfigError(str(exc) if isinstance(exc, ResultsFolderError) else f"{self.output}: {exc}") from None
        self.bus.on_records = self.writer.add_requests
        backend, self.workers_used = self._backend()
        self.pool = WorkerPool(
            self.target,
            self.calibration,
            self.bus,
            self.workers_used,
            self.config.seed or 0,
            measure_read_delay=self.config.measure_read_delay,
            backend=backend,
            replicas=self.replicas,
            balance=self.config.balance,
            models=self.config.models,
        )
        self.pool.start()
        self.controller = Controller(self.pool, self.bus, self.scenario, keep_alive=self.config.keep_alive)
        self.controller.judge = self._good_share
        if (self.config.reset_cache or self.config.profile) and self.target is not None:
            self.controller.hooks = ServerHooks(
                self.target,
                self.server.kind if self.server is not None else "unknown",
                reset_cache=self.config.reset_cache,
                profile=self.config.profile,
                note=self.note,
            )
        if self.config.telemetry and self.server is not None and self.server.serves_metrics:
            self.controller.before_load = self._read_server_clock
        if self.config.telemetry:  # NVML's start-up and a /metrics probe: not in the way of the first requests
            self._telemetry_start = threading.Thread(
                target=self._start_telemetry, args=(self.target,), daemon=True, name="llmsurge-telemetry-start"
            )
            self._telemetry_start.start()
        return self.controller

    async def _read_server_clock(self) -> None:
        """The server's ``/metrics`` as the first segment opens (after the warm-up): the base of that segment's
        histograms, so the server's figures cover the same requests as ours."""
        from llmsurge.telemetry.prometheus import ServerMetricsSampler, parse_metrics

        assert self.target is not None
        target = self.target
        async with make_client(timeout=METRICS_BEFORE_S, urls=[target.base_url]) as client:
            ans = await fetch(client, target.base_url + "/metrics", target.headers(), METRICS_BEFORE_S, METRICS_CAP)
        with self._telemetry_lock:
            self._metrics_before = ans.text if ans.ok else None
            server = next((s for s in self.samplers if isinstance(s, ServerMetricsSampler)), None)
        if server is not None and self._metrics_before is not None:
            server.clock.mark(1, parse_metrics(self._metrics_before))

    def _start_telemetry(self, target: Target) -> None:
        from llmsurge.telemetry.probe import TelemetryPlan, make_samplers
        from llmsurge.telemetry.prometheus import ServerMetricsSampler, parse_metrics

        plan = TelemetryPlan(target, self.simulated, self.config.gpu_metrics_url, self.worker_pids)
        samplers = make_samplers(plan, self.bus, self.writer)
        with self._telemetry_lock:
            for sampler in samplers:  # the server's clock read before the first segment, if it was already
                if isinstance(sampler, ServerMetricsSampler) and self._metrics_before is not None:
                    sampler.clock.mark(1, parse_metrics(self._metrics_before))
            if self._closed:
                return
            self.samplers = samplers
            for s in samplers:
                s.start()

    def _backend(self) -> tuple[WorkerBackend | None, int]:
        """Local worker processes, or Ray actors on as many of the workers asked for as the cluster holds now
        (said at once: never a silent wait for resources that will not come)."""
        cfg = self.config
        if not cfg.ray:
            return self._local, cfg.n_workers
        from llmsurge.engine.ray_pool import RayBackend, RayUnavailable

        try:
            backend = RayBackend(cfg.ray, cfg.ray_cpus_per_worker)
        except RayUnavailable as exc:
            raise ConfigError(str(exc)) from None
        per = cfg.ray_cpus_per_worker
        requested = cfg.n_workers or max(1, int(backend.free.get("CPU", 0.0) // per))
        peak = None if cfg.keep_alive else self.scenario.peak_concurrency()
        if peak:
            requested = min(requested, peak)
        room = backend.room(requested, settle=RAY_SETTLE_S)
        free = backend.free.get("CPU", 0.0)
        if room == 0:
            raise ConfigError(
                f"the Ray cluster has no room for a worker ({free:g} CPU free, {per:g} per worker): add nodes or"
                " free some, or lower --workers"
            )
        if room < requested:
            self.note(
                f"the Ray cluster has room for {room} of {requested} workers ({free:g} CPU free): running with {room}",
                "warning",
            )
        return backend, room

    def _good_share(self, segment: int) -> float | None:
        """Share of the segment's ended requests that were good (the one definition: failures are not good)."""
        if not self.slo:
            return None
        seg = self.bus.view().segments[segment - 1]
        values = {m: seg.columns[m].values() for m in ALIGNED}
        return goodput(values, self.slo, 0.0, failed=seg.failed)["good_share"]

    def _write_failed(self, exc: OSError) -> None:
        """The result writer could not write (disk full …): stop the load; what was written stays."""
        why = f"results could not be written to {self.output} ({exc.strerror or exc}): the load was stopped"
        self.note(why, "error")
        if self.controller is not None:
            self.controller.stop_from_thread()

    def worker_pids(self) -> list[int]:
        """Process ids of the load workers (for the client CPU reading)."""
        return [p.pid for p in self.pool.procs if p.pid] if self.pool is not None else []

    def summary(self) -> RunSummary:
        """The run's summary now (``summary.json`` is its :meth:`~RunSummary.to_json`)."""
        warm = self.scenario.for_warmup().shape
        facts = RunFacts(
            version=__version__,
            started_wall=self.started_wall,
            endpoint=self.scenario.shape.endpoint,
            model=self.model,
            server={
                "url": self.target.base_url if self.target else None,
                "kind": self.server_kind,
                "model": self.model,
                "simulated": self.simulated,
            },
            config=self.config.public(),
            calibration=dataclasses.asdict(self.calibration),
            resolving=self.server.sent.json() if self.server else {},
            warmup_tokens=(warm.input_tokens, warm.output_tokens),
            workers=self.workers_used or self.config.n_workers,
            notes=self.notes,
            telemetry=self.telemetry_summary(),
            slo=self.slo,
            capacity=self.controller.capacity if self.controller else None,
            name=self.config.name,
            preset=self.scenario.name,
            shares_prefixes=self.shares_prefixes,
            roofline=self.roofline_inputs(),
            backend="ray" if self.config.ray else "local",
            reset_cache=self.config.reset_cache,
        )
        return build_summary(self.bus.view(with_stats=True), facts)

    def roofline_inputs(self) -> RooflineInputs:
        """The roofline's inputs now: flags first, then what the server said, then the GPU's identity."""
        inputs = self.config.roofline.merged(self.server.roofline if self.server else RooflineInputs())
        gpu = self.bus.view().telemetry.get("gpu")
        names = [g.name for g in getattr(gpu, "gpus", ()) if g.name]
        return inputs.with_device(names[0]) if names else inputs

    def telemetry_summary(self) -> dict[str, Mapping[str, object]]:
        """Per-source summaries from the telemetry samplers (empty when none ran)."""
        out: dict[str, Mapping[str, object]] = {}
        for s in self.samplers:
            if hasattr(s, "summary"):
                out[s.name] = s.summary()
        return out

    def save(self, summary: RunSummary | None = None) -> Path:
        """Write ``summary.json`` now (atomically): ``summary`` when the caller built it already (a finished run's
        summary is built once, and what is printed is what is written), else built now; returns its path. Raises
        ``OSError`` when it cannot."""
        assert self.writer is not None, "start() first: the run's folder is claimed there"
        path = self.output / "summary.json"
        write_json_atomic(path, clean_floats((summary if summary is not None else self.summary()).to_json()))
        return path

    def close(self) -> None:
        """Stop samplers, workers and the simulated server; close the files."""
        if self.preparing is not None:
            self.preparing.cancel(wait=5.0)
        if self._telemetry_start is not None:
            self._telemetry_start.join(10.0)  # a run shorter than NVML's start-up still gets its samplers' summary
        with self._telemetry_lock:
            self._closed = True  # samplers still being made after that are not started
            samplers = self.samplers
        for s in samplers:
            s.stop()
        if self.pool is not None:
            self.pool.stop()
        if self.writer is not None:
            self.writer.close()
        if self._early is not None:  # launched by the CLI, never adopted: the run stopped before it began
            self._early.discard()
            self._early = None
        if self._local is not None:
            self._local.discard()
        if self.sim is not None:
            self.sim.stop()


class Preparation:
    """:meth:`RunSession.prepare` on a thread with its own event loop, begun before the caller's loop runs (or
    while it is busy drawing): the server's discovery and calibration go on during the TUI's imports and first
    frame. :meth:`wait` awaits it from any loop; :meth:`cancel` stops it (a quit while the server is awaited)."""

    def __init__(self, session: RunSession) -> None:
        self.status = ""
        """The last status it said ("starting the simulated server", "calibrating …")."""
        self.on_status: Callable[[str], None] | None = None
        """Told each status as it is said (the TUI's status line), once someone listens."""
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, args=(session,), daemon=True, name="llmsurge-prepare")
        self._thread.start()

    def _say(self, message: str) -> None:
        self.status = message
        if self.on_status is not None:
            self.on_status(message)

    def _run(self, session: RunSession) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self._task = loop.create_task(session.prepare(self._say))
            if self.done.cancelled():
                self._task.cancel()
            loop.run_until_complete(self._task)
        except BaseException as exc:  # handed to whoever waits, as prepare() would raise it
            if not self.done.done():
                self.done.set_exception(exc)
        else:
            if not self.done.done():
                self.done.set_result(None)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def wait(self) -> None:
        """Until it is done; raises what :meth:`RunSession.prepare` raised. Cancelling the wait cancels it."""
        try:
            await asyncio.wrap_future(self.done)
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self, wait: float = 0.0) -> None:
        """Stop preparing (the wait for the server, a probe); wait up to ``wait`` seconds for the thread."""
        self.done.cancel()
        task = self._task
        if task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # closed meanwhile: it is done
                pass
        if wait and self._thread is not threading.current_thread():
            self._thread.join(wait)


__all__ = ["ConfigError", "Preparation", "RunConfig", "RunSession", "ServerError"]
