"""A run's summary as typed, frozen values: what every surface reads (the end-of-run tables, ``report``,
``compare``, ``runs``, ``--fail-on``), built once per run (:func:`llmsurge.metrics.summary.build_summary` from a
bus view; :func:`llmsurge.metrics.report.recompute` from ``requests.jsonl``) and made JSON only at the file edge:
:meth:`RunSummary.to_json` writes ``summary.json``, :meth:`RunSummary.from_json` reads it back (and a
``vllm bench serve`` result, whose top-level keys are ours).

What each figure *is* — its title, unit, definition, direction and rounding — is :mod:`llmsurge.metrics.figures`;
a level's value of it is :meth:`Level.value`. A new figure: a :class:`~llmsurge.metrics.figures.Figure` there, its
value computed in ``metrics/summary.py`` (and ``metrics/report.py`` when requests.jsonl can recompute it), and
every surface that lists figures shows it.

Blocks other parts produce and only pass through — a telemetry sampler's summary, the server's facts, the config —
stay JSON objects (:data:`JsonObject`), kept exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from llmsurge.metrics.kv import KvForecast
from llmsurge.metrics.reconcile import AGREE_MS, AGREE_SHARE, Reconciliation

JsonObject = Mapping[str, Any]
"""A block another part wrote (a sampler's summary, the server's facts, the run's config): passed through exactly."""


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _int(v: object, default: int = 0) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else default


def _obj(v: object) -> JsonObject:
    return v if isinstance(v, Mapping) else {}


def _nan_none(v: float | None) -> float | None:
    """NaN (a rate too short to hold a request) is null in the file."""
    return None if v is None or v != v else v


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Open-loop schedule fidelity: how late requests left against their scheduled time."""

    requests: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    late_share: float
    mean_gap_ms: float
    tolerance_ms: float
    kept: bool

    def to_json(self) -> dict[str, float | int | bool]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: JsonObject) -> Schedule:
        return cls(
            requests=_int(d.get("requests")),
            **{k: _num(d.get(k)) or 0.0 for k in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms", "late_share")},
            mean_gap_ms=_num(d.get("mean_gap_ms")) or 0.0,
            tolerance_ms=_num(d.get("tolerance_ms")) or 0.0,
            kept=bool(d.get("kept")),
        )


@dataclass(frozen=True, kw_only=True)
class ClientHealth:
    """The client's own health over a segment: event-loop lag, worker CPU, and time starved or busy."""

    max_loop_lag_ms: float = 0.0
    mean_loop_lag_ms: float = 0.0
    max_worker_cpu: float = 0.0
    peak_host_cpu_percent: float | None = None
    starved_seconds: float = 0.0
    client_busy_seconds: float = 0.0

    def to_json(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: JsonObject) -> ClientHealth:
        return cls(
            max_loop_lag_ms=_num(d.get("max_loop_lag_ms")) or 0.0,
            mean_loop_lag_ms=_num(d.get("mean_loop_lag_ms")) or 0.0,
            max_worker_cpu=_num(d.get("max_worker_cpu")) or 0.0,
            peak_host_cpu_percent=_num(d.get("peak_host_cpu_percent")),
            starved_seconds=_num(d.get("starved_seconds")) or 0.0,
            client_busy_seconds=_num(d.get("client_busy_seconds")) or 0.0,
        )


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One turn of the multi-turn chats: its TTFT (``figures``: ``mean_ttft_ms`` …) and prefix-cache hits."""

    turn: int
    completed: int
    mean_prompt_tokens: float
    figures: Mapping[str, float]
    prefix_cache_hit_rate: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "turn": self.turn,
            "completed": self.completed,
            "mean_prompt_tokens": self.mean_prompt_tokens,
            **self.figures,
            "prefix_cache_hit_rate": self.prefix_cache_hit_rate,
        }

    @classmethod
    def from_json(cls, d: JsonObject) -> Turn:
        known = {"turn", "completed", "mean_prompt_tokens", "prefix_cache_hit_rate"}
        return cls(
            turn=_int(d.get("turn")),
            completed=_int(d.get("completed")),
            mean_prompt_tokens=_num(d.get("mean_prompt_tokens")) or 0.0,
            figures={k: float(v) for k, v in d.items() if k not in known and _num(v) is not None},
            prefix_cache_hit_rate=_num(d.get("prefix_cache_hit_rate")),
        )


@dataclass(frozen=True, kw_only=True)
class Reasoning:
    """A reasoning model's requests: time to the first reasoning token and to the first answer token."""

    completed: int
    mean_reasoning_tokens: float
    figures: Mapping[str, float]  # mean_ttfr_ms, median_ttfr_ms, … mean_answer_ttfc_ms, …

    def to_json(self) -> dict[str, object]:
        return {"completed": self.completed, "mean_reasoning_tokens": self.mean_reasoning_tokens, **self.figures}

    @classmethod
    def from_json(cls, d: JsonObject) -> Reasoning:
        return cls(
            completed=_int(d.get("completed")),
            mean_reasoning_tokens=_num(d.get("mean_reasoning_tokens")) or 0.0,
            figures={
                k: float(v)
                for k, v in d.items()
                if k not in ("completed", "mean_reasoning_tokens") and _num(v) is not None
            },
        )


@dataclass(frozen=True, kw_only=True)
class Quality:
    """The quality set's score under load."""

    asked: int
    correct: int

    @property
    def score(self) -> float:
        return self.correct / self.asked if self.asked else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"asked": self.asked, "correct": self.correct, "score": self.score}


@dataclass(frozen=True, kw_only=True)
class PhaseClock:
    """One phase on the server's clock over a level: its mean and how many requests it rests on."""

    mean_ms: float
    count: int


@dataclass(frozen=True, kw_only=True)
class ServerTimings:
    """The server's own clock from its per-request timings (llama.cpp's ``timings``, vLLM's ``metrics``)."""

    source: str
    phases: Mapping[str, PhaseClock]  # "ttft" always; "queue", "prefill", "decode" where the server said

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, **{k: {"mean_ms": p.mean_ms, "count": p.count} for k, p in self.phases.items()}}

    @classmethod
    def from_json(cls, d: JsonObject) -> ServerTimings:
        phases = {
            k: PhaseClock(mean_ms=_num(v.get("mean_ms")) or 0.0, count=_int(v.get("count")))
            for k, v in d.items()
            if isinstance(v, Mapping)
        }
        return cls(source=str(d.get("source") or "per-request"), phases=phases)


@dataclass(frozen=True, kw_only=True)
class Referee:
    """A level's TTFT held against the server's clock: the reconciliation, which clock it read (``histograms``
    or ``per-request``) and, for the per-request one beside the histograms', whether the two agree."""

    result: Reconciliation
    source: str
    agrees_with_histograms: bool | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {**self.result.json(), "source": self.source}
        if self.agrees_with_histograms is not None:
            out["agrees_with_histograms"] = self.agrees_with_histograms
        return out

    @classmethod
    def from_json(cls, d: JsonObject) -> Referee | None:
        core = ("client_ttft_ms_mean", "server_ttft_ms_mean", "gap_ms_mean", "client_side_ms_mean")
        if not all(_num(d.get(n)) is not None for n in core):
            return None  # an older or hand-edited file may lack the rest; these four it must have
        result = Reconciliation(
            client_ttft_ms_mean=float(d["client_ttft_ms_mean"]),
            server_ttft_ms_mean=float(d["server_ttft_ms_mean"]),
            gap_ms_mean=float(d["gap_ms_mean"]),
            client_side_ms_mean=float(d["client_side_ms_mean"]),
            server_queue_ms_mean=_num(d.get("server_queue_ms_mean")),
            server_prefill_ms_mean=_num(d.get("server_prefill_ms_mean")),
            server_decode_ms_mean=_num(d.get("server_decode_ms_mean")),
            server_front_ms_mean=_num(d.get("server_front_ms_mean")),
            server_requests=_num(d.get("server_requests")) or 0.0,
            verdict=str(d.get("verdict") or ""),
            where=str(d.get("where") or ""),
        )
        agrees = d.get("agrees_with_histograms")
        return cls(result=result, source=str(d.get("source") or ""), agrees_with_histograms=agrees)

    def beside(self, histograms: Referee) -> Referee:
        """This per-request reconciliation, saying whether it agrees with the histograms' one on what both clocks
        time: the engine's queue and prefill where both have them (vLLM's per-request clock starts when the engine
        takes the request, after the front end the histograms' TTFT includes), else the server's TTFT."""
        mine, theirs = self.result.engine_ms_mean, histograms.result.engine_ms_mean
        if mine is None or theirs is None:
            mine, theirs = self.result.server_ttft_ms_mean, histograms.result.server_ttft_ms_mean
        agree = abs(mine - theirs) <= max(AGREE_MS, AGREE_SHARE * theirs)
        return Referee(result=self.result, source=self.source, agrees_with_histograms=agree)


LEVEL_FIELDS = (
    "segment", "load", "scenario", "start_time", "duration", "completed", "failed", "cancelled", "errors",
    "error_rate", "total_input_tokens", "total_output_tokens", "output_tokens_estimated", "delivered_output_tokens",
    "cached_prompt_tokens", "prefix_cache_hit_rate", "request_throughput", "output_throughput",
    "total_token_throughput",
)  # fmt: skip
"""A level's typed scalars, in summary.json's order (its other figures follow, then its blocks)."""
BLOCKS = (
    "schedule", "turns", "reasoning", "degenerate", "quality", "short_outputs", "server_timings", "client",
    "starved", "telemetry", "reconciliation", "reconciliation_per_request", "roofline", "kv_forecast",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Level:
    """One segment's figures (a load level), or the whole run's (``segment`` None).

    Counts and throughputs are typed fields; every other figure (latency distributions with ``n_*``, goodput,
    realised lengths, open-loop waits, pooling) is in ``figures`` under its summary.json key — the key
    :mod:`llmsurge.metrics.figures` defines it by. :meth:`value` reads either.
    """

    segment: int | None = None
    load: str = "run"
    scenario: str | None = None
    start_time: float | None = None
    duration: float = 0.0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    error_rate: float = 0.0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    output_tokens_estimated: int = 0
    delivered_output_tokens: int | None = None
    cached_prompt_tokens: int = 0
    prefix_cache_hit_rate: float | None = None
    request_throughput: float | None = None  # NaN: a segment too short to hold one of its requests
    output_throughput: float | None = None
    total_token_throughput: float | None = None
    figures: Mapping[str, float] = field(default_factory=dict)
    schedule: Schedule | None = None
    turns: tuple[Turn, ...] = ()
    reasoning: Reasoning | None = None
    degenerate: int = 0
    quality: Quality | None = None
    short_outputs: int = 0
    server_timings: ServerTimings | None = None
    client: ClientHealth | None = None  # a segment's; the run's client is RunSummary.client
    starved: bool = False
    telemetry: Mapping[str, JsonObject] = field(default_factory=dict)  # sampler → its summary of this level
    reconciliation: Referee | None = None
    reconciliation_per_request: Referee | None = None
    roofline: JsonObject | None = None
    kv_forecast: KvForecast | None = None  # where the server's KV cache fills for this level's workload

    def value(self, key: str) -> float | None:
        """The figure ``key`` (summary.json's name) of this level; None when it has none. A latency of a level
        where nothing succeeded is None (summary.json keeps vLLM's 0.0 there)."""
        if key in LEVEL_FIELDS:
            v = getattr(self, key)
            return _num(v)
        v = self.figures.get(key)
        if v is None:
            return None
        if key.endswith("_ms") and not self.completed:
            return None
        return v

    def n(self, metric: str) -> int:
        """How many values a latency ``metric`` (``ttft``, ``itl``…) rests on (``completed`` when not kept)."""
        n = self.figures.get(f"n_{metric}")
        return int(n) if n is not None else self.completed

    @property
    def ended(self) -> int:
        """Requests that ended (succeeded or failed): what a share of requests is over."""
        return self.completed + self.failed

    @property
    def mean_tokens(self) -> tuple[float, float, float, float]:
        """Realised (mean input, p90 input, mean output, p90 output) tokens."""
        f = self.figures
        return (
            f.get("mean_input_tokens", 0.0),
            f.get("p90_input_tokens", 0.0),
            f.get("mean_output_tokens", 0.0),
            f.get("p90_output_tokens", 0.0),
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key in LEVEL_FIELDS:
            v = getattr(self, key)
            if key == "segment" and v is None:
                continue
            if self.segment is None and key in ("load", "scenario", "start_time", "delivered_output_tokens"):
                continue  # a segment's keys
            out[key] = dict(v) if key == "errors" else _nan_none(v) if key == "request_throughput" else v
        out.update(self.figures)
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_json()
        if self.turns:
            out["turns"] = [t.to_json() for t in self.turns]
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning.to_json()
        out["degenerate"] = self.degenerate
        if self.quality is not None:
            out["quality"] = self.quality.to_json()
        out["short_outputs"] = self.short_outputs
        if self.server_timings is not None:
            out["server_timings"] = self.server_timings.to_json()
        if self.client is not None:
            out["client"] = self.client.to_json()
            out["starved"] = self.starved
        if self.segment is not None:
            out["telemetry"] = {k: dict(v) for k, v in self.telemetry.items()}
        for key in ("reconciliation", "reconciliation_per_request"):
            referee: Referee | None = getattr(self, key)
            if referee is not None:
                out[key] = referee.to_json()
        if self.roofline is not None:
            out["roofline"] = dict(self.roofline)
        if self.kv_forecast is not None:
            out["kv_forecast"] = self.kv_forecast.to_json()
        return out

    @classmethod
    def from_json(cls, d: JsonObject) -> Level:
        """A segment or a whole run's figures as summary.json (or vLLM's result) keeps them."""
        seg = d.get("segment")
        segment = seg if isinstance(seg, int) and not isinstance(seg, bool) else None
        figures = {
            k: float(v)
            for k, v in d.items()
            if k not in LEVEL_FIELDS and k not in BLOCKS and _num(v) is not None and math.isfinite(v)
        }
        turns = d.get("turns")
        referees = {k: Referee.from_json(_obj(d.get(k))) for k in ("reconciliation", "reconciliation_per_request")}
        quality = d.get("quality")
        rate = d.get("request_throughput")
        return cls(
            segment=segment,
            load=str(d.get("load") or "run"),
            scenario=d.get("scenario") if isinstance(d.get("scenario"), str) else None,
            start_time=_num(d.get("start_time")),
            duration=_num(d.get("duration")) or 0.0,
            completed=_int(d.get("completed")),
            failed=_int(d.get("failed")),
            cancelled=_int(d.get("cancelled")),
            errors={str(k): _int(v) for k, v in _obj(d.get("errors")).items()},
            error_rate=_num(d.get("error_rate")) or 0.0,
            total_input_tokens=_int(d.get("total_input_tokens")),
            total_output_tokens=_int(d.get("total_output_tokens")),
            output_tokens_estimated=_int(d.get("output_tokens_estimated")),
            delivered_output_tokens=_int(d["delivered_output_tokens"])
            if d.get("delivered_output_tokens") is not None
            else None,
            cached_prompt_tokens=_int(d.get("cached_prompt_tokens")),
            prefix_cache_hit_rate=_num(d.get("prefix_cache_hit_rate")),
            request_throughput=float("nan") if rate is None and segment is not None else _num(rate),
            output_throughput=_num(d.get("output_throughput")),
            total_token_throughput=_num(d.get("total_token_throughput")),
            figures=figures,
            schedule=Schedule.from_json(d["schedule"]) if isinstance(d.get("schedule"), Mapping) else None,
            turns=tuple(Turn.from_json(t) for t in turns if isinstance(t, Mapping)) if isinstance(turns, list) else (),
            reasoning=Reasoning.from_json(d["reasoning"]) if isinstance(d.get("reasoning"), Mapping) else None,
            degenerate=_int(d.get("degenerate")),
            quality=Quality(asked=_int(quality.get("asked")), correct=_int(quality.get("correct")))
            if isinstance(quality, Mapping)
            else None,
            short_outputs=_int(d.get("short_outputs")),
            server_timings=ServerTimings.from_json(d["server_timings"])
            if isinstance(d.get("server_timings"), Mapping)
            else None,
            client=ClientHealth.from_json(d["client"])
            if segment is not None and isinstance(d.get("client"), Mapping)
            else None,
            starved=bool(d.get("starved")),
            telemetry={str(k): _obj(v) for k, v in _obj(d.get("telemetry")).items()} if segment is not None else {},
            reconciliation=referees["reconciliation"],
            reconciliation_per_request=referees["reconciliation_per_request"],
            roofline=_obj(d["roofline"]) if isinstance(d.get("roofline"), Mapping) else None,
            kv_forecast=KvForecast.from_json(d.get("kv_forecast")),
        )


@dataclass(frozen=True, kw_only=True)
class HostWorst:
    """One host's workers at their worst over the run."""

    workers: int
    max_loop_lag_ms: float
    max_cpu: float


@dataclass(frozen=True, kw_only=True)
class RunClient:
    """The client over the whole run: its workers, their worst loop lag and CPU, and whether it saturated."""

    workers: int = 1
    max_loop_lag_ms: float = 0.0
    max_cpu: float = 0.0
    saturation_events: tuple[str, ...] = ()
    starved_segments: tuple[int, ...] = ()
    backend: str = "local"
    hosts: Mapping[str, HostWorst] = field(default_factory=dict)
    event_loop: str = ""  # the workers' event loop ("uvloop", "asyncio"; "" when not said: an older file, Ray)

    @property
    def saturated(self) -> bool:
        return bool(self.saturation_events)

    def to_json(self) -> dict[str, object]:
        return {
            "workers": self.workers,
            "max_loop_lag_ms": self.max_loop_lag_ms,
            "max_cpu": self.max_cpu,
            "saturated": self.saturated,
            "saturation_events": list(self.saturation_events),
            "starved_segments": list(self.starved_segments),
            "backend": self.backend,
            "event_loop": self.event_loop,
            "hosts": {
                h: {"workers": w.workers, "max_loop_lag_ms": w.max_loop_lag_ms, "max_cpu": w.max_cpu}
                for h, w in self.hosts.items()
            },
        }

    @classmethod
    def from_json(cls, d: JsonObject) -> RunClient:
        hosts = {
            str(h): HostWorst(
                workers=_int(w.get("workers")),
                max_loop_lag_ms=_num(w.get("max_loop_lag_ms")) or 0.0,
                max_cpu=_num(w.get("max_cpu")) or 0.0,
            )
            for h, w in _obj(d.get("hosts")).items()
            if isinstance(w, Mapping)
        }
        events = d.get("saturation_events")
        if not isinstance(events, list):  # an older file: only whether it saturated
            events = ["saturated"] if d.get("saturated") else []
        starved = d.get("starved_segments")
        return cls(
            workers=_int(d.get("workers"), 1),
            max_loop_lag_ms=_num(d.get("max_loop_lag_ms")) or 0.0,
            max_cpu=_num(d.get("max_cpu")) or 0.0,
            saturation_events=tuple(str(e) for e in events),
            starved_segments=tuple(_int(s) for s in starved) if isinstance(starved, list) else (),
            backend=str(d.get("backend") or "local"),
            hosts=hosts,
            event_loop=str(d.get("event_loop") or ""),
        )


@dataclass(frozen=True, kw_only=True)
class Warmup:
    """The warm-up requests (not in any figure) and how long each was at most."""

    completed: int = 0
    failed: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None

    def to_json(self) -> dict[str, int]:
        out = {"completed": self.completed, "failed": self.failed}
        if self.input_tokens is not None and self.output_tokens is not None:
            out.update(input_tokens=self.input_tokens, output_tokens=self.output_tokens)
        return out

    @classmethod
    def from_json(cls, d: JsonObject) -> Warmup:
        has = "input_tokens" in d
        return cls(
            completed=_int(d.get("completed")),
            failed=_int(d.get("failed")),
            input_tokens=_int(d.get("input_tokens")) if has else None,
            output_tokens=_int(d.get("output_tokens")) if has else None,
        )


@dataclass(frozen=True, kw_only=True)
class CapacityLevel:
    """One level a capacity search judged."""

    load: str
    level: float
    good_share: float | None
    held: bool

    def to_json(self) -> dict[str, object]:
        return {"load": self.load, "level": self.level, "good_share": self.good_share, "held": self.held}


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """A capacity search's outcome (``--find-max``): the most that held the target good share, every level tried."""

    mode: str
    target_good_share: float
    max_held: float | None
    max_held_load: str | None
    first_failed: float | None
    levels: tuple[CapacityLevel, ...]
    partial: bool

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "target_good_share": self.target_good_share,
            "max_held": self.max_held,
            "max_held_load": self.max_held_load,
            "first_failed": self.first_failed,
            "levels": [lv.to_json() for lv in self.levels],
            "partial": self.partial,
        }

    @classmethod
    def from_json(cls, d: JsonObject) -> Capacity:
        levels = d.get("levels") if isinstance(d.get("levels"), list) else []
        return cls(
            mode=str(d.get("mode") or ""),
            target_good_share=_num(d.get("target_good_share")) or 0.0,
            max_held=_num(d.get("max_held")),
            max_held_load=d.get("max_held_load") if isinstance(d.get("max_held_load"), str) else None,
            first_failed=_num(d.get("first_failed")),
            levels=tuple(
                CapacityLevel(
                    load=str(lv.get("load") or ""),
                    level=_num(lv.get("level")) or 0.0,
                    good_share=_num(lv.get("good_share")),
                    held=bool(lv.get("held")),
                )
                for lv in levels or []
                if isinstance(lv, Mapping)
            ),
            partial=bool(d.get("partial")),
        )

    @property
    def first_failed_level(self) -> CapacityLevel | None:
        return next((lv for lv in self.levels if lv.level == self.first_failed), None)


@dataclass(frozen=True, kw_only=True)
class TrialFigure:
    """One figure over repeated trials: its mean, the 95% interval of that mean, and each trial's value."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def to_json(self) -> dict[str, object]:
        return {"mean": self.mean, "ci95": [self.low, self.high], "values": list(self.values)}

    @classmethod
    def from_json(cls, d: JsonObject) -> TrialFigure | None:
        ci, values = d.get("ci95"), d.get("values")
        mean = _num(d.get("mean"))
        if mean is None or not isinstance(ci, list) or len(ci) != 2 or not isinstance(values, list):
            return None
        low, high = _num(ci[0]), _num(ci[1])
        if low is None or high is None:
            return None
        return cls(mean=mean, low=low, high=high, values=tuple(float(v) for v in values if _num(v) is not None))


@dataclass(frozen=True, kw_only=True)
class Trials:
    """A repeated run (``--repeat N``): its trials' seeds and folders, and per figure its mean and 95% interval."""

    n: int
    seeds: tuple[int, ...]
    folders: tuple[str, ...]
    figures: Mapping[str, TrialFigure]

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "seeds": list(self.seeds),
            "folders": list(self.folders),
            "figures": {k: f.to_json() for k, f in self.figures.items()},
        }

    @classmethod
    def from_json(cls, d: JsonObject) -> Trials:
        figures = {
            str(k): TrialFigure.from_json(v) for k, v in _obj(d.get("figures")).items() if isinstance(v, Mapping)
        }
        seeds, folders = d.get("seeds"), d.get("folders")
        return cls(
            n=_int(d.get("n")),
            seeds=tuple(_int(s) for s in seeds) if isinstance(seeds, list) else (),
            folders=tuple(str(f) for f in folders) if isinstance(folders, list) else (),
            figures={k: f for k, f in figures.items() if f is not None},
        )


LLMSURGE = "llmsurge"
VLLM = "vllm bench serve"


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """The whole of ``summary.json``: the run's figures (``run``), each segment's, and the run's facts."""

    run: Level
    segments: tuple[Level, ...] = ()
    source: str = LLMSURGE  # or VLLM: a ``vllm bench serve`` result read back (one level, no segments)
    name: str | None = None
    preset: str | None = None
    llmsurge_version: str = ""
    date: str = ""
    backend: str = ""
    model_id: str = ""
    warmup: Warmup = field(default_factory=Warmup)
    breakdown: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # models/targets
    roofline: JsonObject | None = None
    server: JsonObject = field(default_factory=dict)
    config: JsonObject = field(default_factory=dict)
    calibration: JsonObject = field(default_factory=dict)
    resolving: Mapping[str, int] = field(default_factory=dict)
    client: RunClient = field(default_factory=RunClient)
    notes: tuple[str, ...] = ()
    telemetry: Mapping[str, JsonObject] = field(default_factory=dict)
    slo: Mapping[str, float] | None = None  # limits in ms
    capacity: Capacity | None = None
    trials: Trials | None = None  # a repeated run (--repeat): each figure's mean and interval over its trials
    extra: JsonObject = field(default_factory=dict)  # keys of a vLLM result we do not model (its per-request lists)

    @property
    def levels(self) -> tuple[Level, ...]:
        """One per load level: the segments, or the whole run as one level (a vLLM result)."""
        if self.segments:
            return self.segments
        return (replace(self.run, segment=1, load=vllm_load({**self.run.figures, **self.extra})),)

    def level(self, load: str) -> Level | None:
        """The segment run at load ``load`` (``c=32``), the last one if several were."""
        found = [s for s in self.levels if s.load == load]
        return found[-1] if found else None

    def to_json(self) -> dict[str, object]:
        """summary.json: vLLM's top-level keys, then every segment's, then the run's facts."""
        out = self.run.to_json()
        out["warmup"] = self.warmup.to_json()
        out["segments"] = [s.to_json() for s in self.segments]
        out.update({k: {n: dict(r) for n, r in v.items()} for k, v in self.breakdown.items()})
        if self.roofline is not None:
            out["roofline"] = dict(self.roofline)
        out.update(
            {
                "name": self.name,
                "preset": self.preset,
                "llmsurge_version": self.llmsurge_version,
                "date": self.date,
                "backend": self.backend,
                "model_id": self.model_id,
                "server": dict(self.server),
                "config": dict(self.config),
                "calibration": dict(self.calibration),
                "resolving": dict(self.resolving),
                "client": self.client.to_json(),
                "notes": list(self.notes),
                "telemetry": {k: dict(v) for k, v in self.telemetry.items()},
            }
        )
        if self.slo is not None:
            out["slo"] = dict(self.slo)
        if self.capacity is not None:
            out["capacity"] = self.capacity.to_json()
        if self.trials is not None:
            out["trials"] = self.trials.to_json()
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: JsonObject) -> RunSummary:
        """summary.json as llmsurge wrote it (checked first: :func:`llmsurge.metrics.checked.summary_problem`), or
        a ``vllm bench serve`` result (no ``llmsurge_version``)."""
        ours = "llmsurge_version" in d
        segments = d.get("segments") if isinstance(d.get("segments"), list) else []
        known = {"warmup", "segments", "models", "targets", "roofline", "name", "preset", "llmsurge_version"}
        known |= {"date", "backend", "model_id", "server", "config", "calibration", "resolving", "client", "notes"}
        known |= {"telemetry", "slo", "capacity", "trials"}
        run = Level.from_json({k: v for k, v in d.items() if k not in ("segment", "client", "telemetry")})
        extra = {k: v for k, v in d.items() if k not in known and k not in LEVEL_FIELDS and k not in BLOCKS}
        extra = {k: v for k, v in extra.items() if k not in run.figures}
        slo = d.get("slo")
        notes = d.get("notes")
        return cls(
            run=run,
            segments=tuple(Level.from_json(s) for s in segments or [] if isinstance(s, Mapping)),
            source=LLMSURGE if ours else VLLM,
            name=d.get("name") if isinstance(d.get("name"), str) else None,
            preset=d.get("preset") if isinstance(d.get("preset"), str) else None,
            llmsurge_version=str(d.get("llmsurge_version") or ""),
            date=str(d.get("date") or ""),
            backend=str(d.get("backend") or ""),
            model_id=str(d.get("model_id") or ""),
            warmup=Warmup.from_json(_obj(d.get("warmup"))),
            breakdown={
                k: {str(n): dict(r) for n, r in _obj(d.get(k)).items() if isinstance(r, Mapping)}
                for k in ("models", "targets")
                if isinstance(d.get(k), Mapping)
            },
            roofline=_obj(d["roofline"]) if isinstance(d.get("roofline"), Mapping) else None,
            server=_obj(d.get("server")),
            config=_obj(d.get("config")),
            calibration=_obj(d.get("calibration")),
            resolving={str(k): _int(v) for k, v in _obj(d.get("resolving")).items()},
            client=RunClient.from_json(_obj(d.get("client"))),
            notes=tuple(str(n) for n in notes) if isinstance(notes, list) else (),
            telemetry={str(k): _obj(v) for k, v in _obj(d.get("telemetry")).items()},
            slo={str(k): float(v) for k, v in slo.items() if _num(v) is not None} if isinstance(slo, Mapping) else None,
            capacity=Capacity.from_json(d["capacity"]) if isinstance(d.get("capacity"), Mapping) else None,
            trials=Trials.from_json(d["trials"]) if isinstance(d.get("trials"), Mapping) else None,
            extra=extra,
        )


def vllm_load(result: JsonObject) -> str:
    """A vLLM result's load in our labels: ``c=32`` for ``max_concurrency``, ``r=4/s`` for a finite rate."""
    conc = result.get("max_concurrency")
    rate = result.get("request_rate")
    if isinstance(rate, (int, float)) and rate not in (float("inf"),) and rate > 0:
        return f"r={rate:g}/s"
    if isinstance(conc, (int, float)) and not isinstance(conc, bool) and conc > 0:
        return f"c={int(conc)}"
    return "run"
