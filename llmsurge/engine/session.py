"""One run, start to end: target (or the simulated server), discovery, calibration, pool, controller, results.

The headless runner and the TUI both drive a :class:`RunSession`; neither builds these parts on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from llmsurge import __version__
from llmsurge.engine.client import (
    ServerError,
    Target,
    context_length,
    make_client,
    model_meta,
    normalize_base_url,
    one_request,
    resolve_model,
    wait_until_up,
)
from llmsurge.engine.controller import Controller, WorkerPool, auto_workers, cap_workers
from llmsurge.engine.dataset import DatasetError, load_index
from llmsurge.engine.prompts import Calibration, PromptFactory
from llmsurge.engine.scenario import RequestShape, Scenario
from llmsurge.lifetime import open_files_note, raise_open_files_limit
from llmsurge.metrics.bus import MetricsBus
from llmsurge.metrics.results import (
    ResultsFolderError,
    ResultWriter,
    check_results_folder,
    claim_results_folder,
    clean_floats,
    default_results_folder,
    write_json_atomic,
)
from llmsurge.metrics.roofline import RooflineInputs, from_llamacpp_meta
from llmsurge.metrics.slo import Slo, good_mask
from llmsurge.metrics.stats import ALIGNED
from llmsurge.metrics.summary import RunFacts, build_summary
from llmsurge.redaction import register_secret
from llmsurge.sim.process import SimProcess
from llmsurge.sim.server import Faults, SimConfig

RAY_SETTLE_S = 3.0
"""How long a Ray run waits for CPUs being freed before it says how many workers fit."""


class ConfigError(ValueError):
    """Bad input from the user; the message names the fix."""


@dataclass
class RunConfig:
    """Everything a run needs from the command line. ``api_key`` is read from ``api_key_env`` only."""

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
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.seed is None:
            self.seed = secrets.randbelow(2**31)

    def resolve_key(self) -> None:
        """Read the API key from the named environment variable (never from a flag or a file)."""
        self.api_key = read_api_key(self.api_key_env)

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

    def public(self) -> dict[str, Any]:
        """The config as written to ``summary.json``: no secrets, only the name of the key's variable."""
        sc = dataclasses.asdict(self.scenario)
        return {
            "url": normalize_base_url(self.url) if self.url else "simulated",  # no user:password
            "model": self.model or None,
            "api_key_env": self.api_key_env,
            "workers": self.n_workers,
            "scenario": sc,
            "sim_faults": self.sim_faults,
            "seed": self.seed,
            "slo": str(self.slo) or None,
        }


def read_api_key(var: str | None) -> str | None:
    """The API key from environment variable ``var`` (the one place it is read), registered for redaction."""
    if not var:
        return None
    key = os.environ.get(var)
    if not key:
        raise ConfigError(f"--api-key-env {var}: that environment variable is empty or unset")
    register_secret(key)
    return key


OWNER_KINDS = (
    ("llmsurge-sim", "simulated"),
    ("vllm", "vLLM"),
    ("llamacpp", "llama.cpp"),
    ("sglang", "SGLang"),
    ("ollama", "Ollama"),
    ("library", "Ollama"),
    ("organization_owner", "LM Studio"),
)
"""``owned_by`` in ``/v1/models`` → server kind, for servers without ``/metrics``."""


async def detect_server_kind(client: httpx.AsyncClient, target: Target) -> str:
    """vLLM, llama.cpp, SGLang, TGI, Ollama … from ``/metrics`` names, ``/v1/models`` or headers."""
    from llmsurge.telemetry.prometheus import is_simulated, parse_metrics, server_kind

    try:
        resp = await client.get(target.base_url + "/metrics", headers=target.headers(), timeout=3.0)
        if resp.status_code == 200:
            fams = parse_metrics(resp.text)
            kind = "simulated" if is_simulated(fams) else server_kind(fams)
            if kind != "unknown":
                return kind
    except httpx.HTTPError:
        pass
    try:
        resp = await client.get(target.base_url + "/v1/models", headers=target.headers(), timeout=3.0)
        owned = " ".join(str(m.get("owned_by", "")) for m in resp.json().get("data", [])).lower()
        for marker, kind in OWNER_KINDS:
            if marker in owned:
                return kind
        if "text-generation-inference" in resp.headers.get("server", "").lower():
            return "TGI"
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return "unknown"


async def calibrate(client: httpx.AsyncClient, target: Target, shape: RequestShape) -> Calibration:
    """Two one-token requests of different lengths give tokens per word and the template overhead."""
    f = PromptFactory(Calibration(), seed=12345)
    probe = dataclasses.replace(shape, ignore_eos=True, timeout=min(shape.timeout, 120.0))
    points = []
    for n in (16, 256):
        rec = await one_request(client, target, probe, f.words(n), 1)
        if not rec.ok or rec.tokens_estimated or rec.prompt_tokens <= 0:
            return Calibration()
        points.append((n, rec.prompt_tokens))
    return Calibration.from_points(points[0][0], points[0][1], points[1][0], points[1][1])


class RunSession:
    """Owns the parts of one run and their order of start and stop."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.bus = MetricsBus()
        self.sim: SimProcess | None = None
        self.target: Target | None = None
        self.calibration = Calibration()
        self.server_kind = "unknown"
        self.pool: WorkerPool | None = None
        self.controller: Controller | None = None
        self.writer: ResultWriter | None = None
        self.output: Path = config.output or default_results_folder(config.name or config.scenario.name)
        self.samplers: list[Any] = []
        self.started_wall = time.time()
        self.context_length: int | None = None
        """The server's context length in tokens, when it says (the long-context preset fills it)."""
        self._datasets_told: set[str] = set()
        self.shares_prefixes = False
        self.workers_used = 0
        """Workers the pool started (a Ray cluster may hold fewer than asked for)."""
        self.server_roofline = RooflineInputs()
        """Roofline inputs the server gave (llama.cpp's model meta)."""
        """Some scenario of the run shares prompt prefixes on purpose (no cold-cache warning then)."""

    @property
    def simulated(self) -> bool:
        """Whether the target is the embedded simulated server."""
        return self.config.url is None

    @property
    def notes(self) -> list[str]:
        """What the run had to say (capped workers, rejected fields, lost workers …), oldest first."""
        return [e.message for e in self.bus.events]

    def note(self, message: str, level: str = "info") -> None:
        """Keep a note for ``summary.json`` and the screen."""
        self.bus.note(message, level)

    async def prepare(self, on_status: Callable[[str], None] | None = None) -> None:
        """Claim the results folder, start the simulated server if needed, wait for the target, find the model,
        calibrate prompts. Bad input fails here, before any load."""
        cfg = self.config
        say = on_status or (lambda _m: None)
        cfg.resolve_key()
        try:
            if cfg.output is not None:  # a default folder is made unique when claimed
                check_results_folder(self.output)
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
        if cfg.url is None:
            faults = Faults.parse(cfg.sim_faults)
            sim_cfg = cfg.sim_config or SimConfig(faults=faults)
            if cfg.sim_max_seqs:
                sim_cfg.timing.max_seqs = cfg.sim_max_seqs
            say("starting the simulated server")
            self.sim = SimProcess(sim_cfg)
            await asyncio.to_thread(self.sim.start)
            target = Target(self.sim.url, cfg.model)
        else:
            target = Target.from_url(cfg.url, cfg.model, cfg.api_key)
        base = target.base_url
        self.bus.set_info(url=base if not self.simulated else f"{base} (simulated)", preset=cfg.scenario.name)
        self.bus.set_state("waiting")
        async with make_client(timeout=30.0) as client:
            await wait_until_up(
                client, target, cfg.wait_timeout, lambda s: say(f"waiting for {base} to answer ({s:.0f}s)")
            )
            model = await resolve_model(client, target)
            target = dataclasses.replace(target, model=model)
            self.server_kind = "simulated" if self.simulated else await detect_server_kind(client, target)
            self.bus.set_info(model=model, server=self.server_kind)
            self.context_length = await context_length(client, target)
            self.server_roofline = from_llamacpp_meta(await model_meta(client, target))
            cfg.scenario = self.adapt(cfg.scenario, say)
            answered = await self._negotiate(client, target, say)
            if cfg.calibrate and not cfg.scenario.shape.cases and answered:
                say("calibrating prompt length against the server's token count")
                self.calibration = await calibrate(client, target, cfg.scenario.shape)
                if not self.calibration.measured:
                    self.note("the server reported no prompt usage: input lengths are estimates")
        self.target = target
        self.config.model = model

    CONTEXT_MARGIN = 16
    """Tokens left free under the context length (the chat template's own, and the count's rounding)."""

    def adapt(self, scenario: Scenario, say: Callable[[str], None] | None = None) -> Scenario:
        """``scenario`` made ready for this server: its dataset indexed (bad entries said once), prompts sized to
        the context length when it asks to fill it. :class:`ConfigError` naming the fix when it cannot run."""
        shape = scenario.shape
        tell = say or (lambda _m: None)
        self.shares_prefixes |= shape.shares_prefixes
        if shape.turns > 1 and any(st.load.is_open_loop for st in scenario.stages):
            raise ConfigError(
                f"{scenario.name}: multi-turn chats need a closed loop (each user keeps a conversation):"
                " use --concurrency N instead of --rate"
            )
        if shape.dataset:
            try:
                index = load_index(shape.dataset)
            except DatasetError as exc:
                raise ConfigError(str(exc)) from None
            if index.path not in self._datasets_told:
                self._datasets_told.add(index.path)
                self.note(f"dataset {index.describe()}", "warning" if index.bad else "info")
                tell(self.notes[-1])
                for example in index.bad_examples:
                    self.note(f"skipped {example}", "warning")
                    tell(self.notes[-1])
        if shape.fill_context:
            ctx = self.context_length
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

    async def _negotiate(self, client: httpx.AsyncClient, target: Target, say: Callable[[str], None]) -> bool:
        """Send one short request; drop request fields the server rejects (e.g. ``ignore_eos``) with a note.
        Returns whether the server answered it (calibrating a server that does not is time lost)."""
        shape = self.config.scenario.shape
        rec = None
        for _ in range(2):
            rec = await one_request(
                client, target, dataclasses.replace(shape, timeout=min(shape.timeout, 120.0)), "Say hello.", 4
            )
            if rec.ok or rec.http_status not in (400, 422) or "ignore_eos" not in rec.error or not shape.ignore_eos:
                break
            shape = dataclasses.replace(shape, ignore_eos=False)
            self.note("the server rejects ignore_eos: output lengths may end early at EOS")
            say(self.notes[-1])
        if shape is not self.config.scenario.shape:
            self.config.scenario = dataclasses.replace(self.config.scenario, shape=shape)
        if rec is not None and not rec.ok:
            self.note(
                f"the first request failed ({rec.error_kind}: {rec.error[:120]}): prompts are not calibrated",
                "warning",
            )
            return False
        return True

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
        )
        self.pool.start()
        self.controller = Controller(self.pool, self.bus, self.config.scenario, keep_alive=self.config.keep_alive)
        self.controller.judge = self._good_share
        if self.config.telemetry:
            from llmsurge.telemetry.probe import TelemetryPlan, make_samplers

            plan = TelemetryPlan(self.target, self.simulated, self.config.gpu_metrics_url, self.worker_pids)
            self.samplers = make_samplers(plan, self.bus, self.writer)
        for s in self.samplers:
            s.start()
        return self.controller

    def _backend(self) -> tuple[Any, int]:
        """Local worker processes, or Ray actors on as many of the workers asked for as the cluster holds now
        (said at once: never a silent wait for resources that will not come)."""
        cfg = self.config
        if not cfg.ray:
            return None, cfg.n_workers
        from llmsurge.engine.ray_pool import RayBackend, RayUnavailable

        try:
            backend = RayBackend(cfg.ray, cfg.ray_cpus_per_worker)
        except RayUnavailable as exc:
            raise ConfigError(str(exc)) from None
        per = cfg.ray_cpus_per_worker
        requested = cfg.n_workers or max(1, int(backend.free.get("CPU", 0.0) // per))
        peak = None if cfg.keep_alive else cfg.scenario.peak_concurrency()
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
        """Share of the segment's requests that ended well and met the SLO (failures are not good)."""
        slo = self.config.slo
        if not slo:
            return None
        seg = self.bus.view().segments[segment - 1]
        ended = seg.ok + seg.failed
        if not ended:
            return 0.0
        values = {m: seg.columns[m].values() for m in ALIGNED}
        return int(good_mask(values, slo).sum()) / ended

    def _write_failed(self, exc: OSError) -> None:
        """The result writer could not write (disk full …): stop the load; what was written stays."""
        why = f"results could not be written to {self.output} ({exc.strerror or exc}): the load was stopped"
        self.note(why, "error")
        if self.controller is not None:
            self.controller.stop_from_thread()

    def worker_pids(self) -> list[int]:
        """Process ids of the load workers (for the client CPU reading)."""
        return [p.pid for p in self.pool.procs if p.pid] if self.pool is not None else []

    def summary(self) -> dict[str, Any]:
        """``summary.json``'s content now."""
        facts = RunFacts(
            version=__version__,
            started_wall=self.started_wall,
            endpoint=self.config.scenario.shape.endpoint,
            model=self.config.model,
            server={
                "url": self.target.base_url if self.target else None,
                "kind": self.server_kind,
                "model": self.config.model,
                "simulated": self.simulated,
            },
            config=self.config.public(),
            calibration=dataclasses.asdict(self.calibration),
            workers=self.workers_used or self.config.n_workers,
            notes=self.notes,
            telemetry=self.telemetry_summary(),
            slo=self.config.slo,
            capacity=self.controller.capacity if self.controller else None,
            name=self.config.name,
            preset=self.config.scenario.name,
            shares_prefixes=self.shares_prefixes,
            roofline=self.roofline_inputs(),
            backend="ray" if self.config.ray else "local",
        )
        return build_summary(self.bus.view(with_stats=True), facts)

    def roofline_inputs(self) -> RooflineInputs:
        """The roofline's inputs now: flags first, then what the server said, then the GPU's identity."""
        inputs = self.config.roofline.merged(self.server_roofline)
        gpu = self.bus.view().telemetry.get("gpu")
        names = [g.name for g in getattr(gpu, "gpus", ()) if g.name]
        return inputs.with_device(names[0]) if names else inputs

    def telemetry_summary(self) -> dict[str, Any]:
        """Per-source summaries from the telemetry samplers (empty when none ran)."""
        out: dict[str, Any] = {}
        for s in self.samplers:
            if hasattr(s, "summary"):
                out[s.name] = s.summary()
        return out

    def save(self) -> Path:
        """Write ``summary.json`` now (atomically); returns its path. Raises ``OSError`` when it cannot."""
        assert self.writer is not None, "start() first: the run's folder is claimed there"
        path = self.output / "summary.json"
        write_json_atomic(path, clean_floats(self.summary()))
        return path

    def close(self) -> None:
        """Stop samplers, workers and the simulated server; close the files."""
        for s in self.samplers:
            s.stop()
        if self.pool is not None:
            self.pool.stop()
        if self.writer is not None:
            self.writer.close()
        if self.sim is not None:
            self.sim.stop()


__all__ = ["ConfigError", "RunConfig", "RunSession", "ServerError"]
