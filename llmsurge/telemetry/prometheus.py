"""The server's own view from its Prometheus ``/metrics``, parsed with prometheus_client's parser.

Names are matched by logical meaning across servers and versions (vLLM, llama.cpp, SGLang, TGI), so a renamed
metric still shows. Rates come from counter differences between samples; server-side percentiles from the
difference of histogram buckets since the current segment began.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from llmsurge.metrics.bus import MetricsBus
from llmsurge.net import METRICS_CAP, fetch_sync, tls_context
from llmsurge.telemetry.base import NA, Sampler, TelemetrySink
from llmsurge.telemetry.samples import (
    PHASES,
    KvFacts,
    ServerPhase,
    ServerSample,
    TelemetrySample,
    Unavailable,
)

# Logical metric → candidate family names, first match wins (parser names: counters without ``_total``).
GAUGES = {
    "running": (
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "llamacpp:requests_processing",
        "tgi_batch_current_size",
    ),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "llamacpp:requests_deferred", "tgi_queue_size"),
    "kv_cache": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
        "llamacpp:kv_cache_usage_ratio",
    ),
    "prefix_hit_rate_gauge": ("vllm:gpu_prefix_cache_hit_rate", "sglang:cache_hit_rate"),
    "llamacpp_gen_tok_s": ("llamacpp:predicted_tokens_seconds",),
}
COUNTERS = {
    "generation_tokens": ("vllm:generation_tokens", "sglang:generation_tokens", "llamacpp:tokens_predicted"),
    "prompt_tokens": ("vllm:prompt_tokens", "sglang:prompt_tokens", "llamacpp:prompt_tokens"),
    "prefix_hits": ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"),
    "prefix_queries": ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
    "preemptions": ("vllm:num_preemptions",),
    "requests_success": ("vllm:request_success", "sglang:num_requests"),
}
HISTOGRAMS = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "itl": (
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
        "sglang:inter_token_latency_seconds",
        "sglang:time_per_output_token_seconds",
        "tgi_request_mean_time_per_token_duration",
    ),
    "e2e": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds", "tgi_request_duration"),
    "queue": ("vllm:request_queue_time_seconds", "sglang:queue_time_seconds", "tgi_request_queue_duration"),
    "prefill": ("vllm:request_prefill_time_seconds",),
    "decode": ("vllm:request_decode_time_seconds",),
}
KINDS = (("vllm:", "vLLM"), ("llamacpp:", "llama.cpp"), ("sglang:", "SGLang"), ("tgi_", "TGI"))


class MetricsFetcher:
    """GET a ``/metrics`` URL and parse it (blocking; samplers call it from their thread)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self.client = httpx.Client(timeout=timeout, headers=headers or {}, verify=tls_context([url]))

    def fetch_text(self) -> str:
        """The exposition text, read within the deadline and size cap of every probe; raises ``LookupError``
        naming why when there is none (not a metrics endpoint, too slow, too large)."""
        ans = fetch_sync(self.client, self.url, deadline=self.timeout, cap=METRICS_CAP)
        if not ans.ok:
            raise LookupError(f"{self.url}: {ans.why()}")
        return ans.text

    def fetch(self) -> list[Metric]:
        """Parsed metric families."""
        return list(text_string_to_metric_families(self.fetch_text()))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def index_families(families: list[Metric]) -> dict[str, Metric]:
    """Family name → family."""
    return {f.name: f for f in families}


def _first(fams: dict[str, Metric], names: tuple[str, ...]) -> Metric | None:
    for n in names:
        if n in fams:
            return fams[n]
    return None


def gauge_value(fams: dict[str, Metric], names: tuple[str, ...]) -> float:
    """Sum over label sets of the first family found; NA when none is served."""
    f = _first(fams, names)
    if f is None:
        return NA
    vals = [s.value for s in f.samples if not s.name.endswith(("_created",))]
    return float(sum(vals)) if vals else NA


def counter_value(fams: dict[str, Metric], names: tuple[str, ...]) -> float:
    """A counter's total across label sets (``_total`` samples)."""
    f = _first(fams, names)
    if f is None:
        return NA
    vals = [s.value for s in f.samples if s.name.endswith("_total") or s.name == f.name]
    return float(sum(vals)) if vals else NA


def histogram_buckets(fams: dict[str, Metric], names: tuple[str, ...]) -> dict[float, float] | None:
    """Cumulative bucket counts by upper bound, summed across label sets."""
    f = _first(fams, names)
    if f is None:
        return None
    out: dict[float, float] = {}
    for s in f.samples:
        if s.name.endswith("_bucket") and "le" in s.labels:
            le = float("inf") if s.labels["le"] in ("+Inf", "inf") else float(s.labels["le"])
            out[le] = out.get(le, 0.0) + s.value
    return out or None


def histogram_sum_count(fams: dict[str, Metric], names: tuple[str, ...]) -> tuple[float, float] | None:
    """A histogram's ``_sum`` and ``_count``, summed across label sets (None when it is not served)."""
    f = _first(fams, names)
    if f is None:
        return None
    total = count = 0.0
    for s in f.samples:
        if s.name.endswith("_sum"):
            total += s.value
        elif s.name.endswith("_count"):
            count += s.value
    return total, count


@dataclass(frozen=True)
class _Totals:
    """One histogram as scraped: cumulative buckets, sum and count."""

    buckets: dict[float, float]
    total: float
    count: float

    def minus(self, base: _Totals | None) -> _Totals:
        if base is None:
            return self
        return _Totals(
            {le: c - base.buckets.get(le, 0.0) for le, c in self.buckets.items()},
            self.total - base.total,
            self.count - base.count,
        )


def _totals(fams: dict[str, Metric]) -> dict[str, _Totals]:
    out = {}
    for key, names in HISTOGRAMS.items():
        buckets = histogram_buckets(fams, names)
        if not buckets:
            continue
        sc = histogram_sum_count(fams, names)
        total, count = sc if sc is not None else (NA, max(buckets.values()))
        out[key] = _Totals(buckets, total, count)
    return out


class SegmentClock:
    """The server's histograms over each segment: the difference between the last scrape in the segment and its
    base — the server's state as the segment opened: a scrape marked for it (:meth:`mark`: the run reads
    ``/metrics`` after the warm-up, before the first segment), else the scrape taken when the segment's opening
    woke the sampler, else the last scrape before it. Observations end up in the segment open when they were
    scraped: a request still running when its segment closed counts in the next."""

    def __init__(self, since_start: bool = False) -> None:
        """``since_start``: no run (``check``, recorded texts): the first segment's base is the server's start."""
        self._prev: dict[str, _Totals] | None = {} if since_start else None
        self._segment: int | None = None
        self._base: dict[str, _Totals] = {}
        self._marks: dict[int, dict[str, _Totals]] = {}
        self.phases: dict[int, dict[str, ServerPhase]] = {}
        """Per segment, its phases as of the latest scrape in it."""

    def mark(self, segment: int, fams: dict[str, Metric]) -> None:
        """``fams``: the server's state as ``segment`` opened (its base, unless it has been scraped already)."""
        if segment != self._segment:
            self._marks[segment] = _totals(fams)

    def add(self, segment: int, fams: dict[str, Metric], boundary: bool = False) -> dict[str, _Totals]:
        """One scrape made while ``segment`` was open (``boundary``: woken by its opening); returns each
        histogram's delta over that segment."""
        now = _totals(fams)
        if segment != self._segment:
            self._segment = segment
            mark = self._marks.pop(segment, None)
            self._base = mark if mark is not None else (now if boundary or self._prev is None else self._prev)
        self._prev = now
        deltas = {k: t.minus(self._base.get(k)) for k, t in now.items()}
        self.phases[segment] = {k: _phase(deltas[k]) for k in PHASES if k in deltas}
        return deltas


def _phase(t: _Totals) -> ServerPhase:
    mean = t.total / t.count * 1000.0 if t.count > 0 and t.total == t.total else NA
    p50, p99 = (histogram_quantile(q, t.buckets) for q in (0.5, 0.99))
    return ServerPhase(
        count=t.count,
        mean_ms=mean,
        p50_ms=p50 * 1000.0 if p50 == p50 else NA,
        p99_ms=p99 * 1000.0 if p99 == p99 else NA,
    )


def histogram_bound(q: float, buckets: dict[float, float]) -> float:
    """The upper bound (``le``) of the bucket that holds rank q·n: the one thing a histogram says for certain of
    its quantile (``histogram_quantile`` interpolates inside it). NA with no observations; inf past the last bound."""
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return NA
    rank = q * items[-1][1]
    for le, c in items:
        if c >= rank:
            return le
    return items[-1][0]


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank q·n."""
    items = sorted(buckets.items())
    if not items:
        return NA
    total = items[-1][1]
    if total <= 0:
        return NA
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in items:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return items[-1][0]


def kv_capacity(fams: dict[str, Metric]) -> tuple[float | None, int | None]:
    """The KV cache's size in tokens and its block size: vLLM's ``cache_config_info`` labels
    (``kv_cache_size_tokens``, else ``num_gpu_blocks`` × ``block_size``), SGLang's ``max_total_num_tokens``;
    None where the server does not say."""
    info = fams.get("vllm:cache_config_info")
    for s in info.samples if info is not None else ():
        sized = _label_number(s.labels.get("kv_cache_size_tokens"))
        blocks, block = _label_number(s.labels.get("num_gpu_blocks")), _label_number(s.labels.get("block_size"))
        if sized or (blocks and block):
            return sized or (blocks or 0.0) * (block or 0.0), int(block) if block else None
    total = gauge_value(fams, ("sglang:max_total_num_tokens",))
    return (total, None) if total == total and total > 0 else (None, None)


def _label_number(text: str | None) -> float | None:
    try:
        v = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


def llamacpp_slots(props: dict[str, object]) -> tuple[int | None, int | None]:
    """llama.cpp's ``/props``: its slots and the tokens each holds (``default_generation_settings.n_ctx``)."""
    slots = props.get("total_slots")
    settings = props.get("default_generation_settings")
    ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    ok = [v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None for v in (slots, ctx)]
    return ok[0], ok[1]


def server_kind(fams: dict[str, Metric]) -> str:
    """vLLM / llama.cpp / SGLang / TGI from the metric names (the one table of them: :data:`KINDS`)."""
    for prefix, kind in KINDS:
        if any(name.startswith(prefix) for name in fams):
            return kind
    return "unknown"


def is_simulated(fams: dict[str, Metric]) -> bool:
    """Whether these are llmsurge's simulated server's metrics (vLLM's names, its model, DCGM gauges)."""
    running = fams.get("vllm:num_requests_running")
    return (
        running is not None
        and "DCGM_FI_DEV_GPU_UTIL" in fams
        and any(s.labels.get("model_name") == "llmsurge-sim" for s in running.samples)
    )


def parse_metrics(text: str) -> dict[str, Metric]:
    """A ``/metrics`` body, parsed and indexed by family name (empty when it is not Prometheus text)."""
    try:
        return index_families(list(text_string_to_metric_families(text)))
    except ValueError:
        return {}


class _WindowedRates:
    """Rates from counter differences over the last ``window`` seconds: llama.cpp's counters move only when a
    request ends, so a one-second difference jumps; a window shows what the server delivered."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._points: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, now: float, counters: dict[str, float]) -> tuple[float, dict[str, float]]:
        """Record this scrape; return (seconds covered, rate per key) against the oldest scrape in the window."""
        pts = self._points
        pts.append((now, counters))
        while len(pts) > 2 and now - pts[1][0] >= self.window:
            pts.popleft()
        t0, first = pts[0]
        span = now - t0
        rates: dict[str, float] = {}
        if span > 0:
            for key, value in counters.items():
                a = first.get(key, NA)
                if a == a and value == value and value >= a:
                    rates[key] = (value - a) / span
        return span, rates


class ServerMetricsSampler(Sampler):
    """Polls the target's ``/metrics``: queue, KV cache, prefix-cache hits, token rates, server-side latency."""

    name = "server"
    RATE_WINDOW_S = 10.0
    final_reading = True  # the last segment's histograms include its last requests

    def __init__(
        self,
        base_url: str,
        bus: MetricsBus | None = None,
        writer: TelemetrySink | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(bus, writer)
        self.fetcher = MetricsFetcher(base_url.rstrip("/") + "/metrics", headers=headers)
        self._rates = _WindowedRates(self.RATE_WINDOW_S)
        self._kv_sums: dict[int, tuple[float, float, int]] = {}  # segment → Σ running, Σ usage, readings
        self._kv_fixed: tuple[float | None, int | None, int | None, int | None] | None = None
        """The cache's size in tokens, its block size, llama.cpp's slots and their context (read once)."""
        self._slots: tuple[int | None, int | None] = (None, None)  # llama.cpp's slots and their context
        self._asked_props = False
        self.clock = SegmentClock(since_start=bus is None)
        """The server's phases per segment (queue, prefill, TTFT, decode) for the reconciliation."""
        if bus is not None:  # a scrape as each segment opens: what ended before it counts in the one before
            bus.segment_listeners.append(self.poke)

    def sample(self) -> TelemetrySample:
        try:
            fams_list = self.fetcher.fetch()
        except httpx.HTTPError as exc:
            return Unavailable(f"{self.fetcher.url}: {type(exc).__name__}")
        except LookupError as exc:
            return Unavailable(f"no /metrics ({exc})")
        except ValueError as exc:
            return Unavailable(f"{self.fetcher.url} is not Prometheus text ({exc})")
        fams = index_families(fams_list)
        if not self._asked_props and server_kind(fams) == "llama.cpp":
            self._asked_props = True  # its slots, once: /metrics does not say them
            self._slots = llamacpp_slots(self._props())
        return self.digest(fams, time.monotonic())

    def _props(self) -> dict[str, object]:
        """llama.cpp's ``/props`` (bounded like every probe); empty when it does not answer with an object."""
        ans = fetch_sync(self.fetcher.client, self.fetcher.url.removesuffix("/metrics") + "/props", deadline=2.0)
        try:
            props = ans.json() if ans.ok else {}
        except ValueError:
            return {}
        return props if isinstance(props, dict) else {}

    def digest(self, fams: dict[str, Metric], now: float) -> TelemetrySample:
        """Turn one scrape into the pane's sample (separate from fetching, so recorded texts can be tested)."""
        kind = server_kind(fams)
        if kind == "unknown":
            return Unavailable("/metrics has no vLLM, llama.cpp, SGLang or TGI metrics")
        gauges = {key: gauge_value(fams, names) for key, names in GAUGES.items()}
        counters = {key: counter_value(fams, names) for key, names in COUNTERS.items()}
        span, rates = self._rates.add(now, counters)
        generation = rates.get("generation_tokens", NA)
        source = f"over {span:.0f} s" if rates else ""
        if generation != generation and gauges["llamacpp_gen_tok_s"] == gauges["llamacpp_gen_tok_s"]:
            generation, source = gauges["llamacpp_gen_tok_s"], "llama.cpp's own average per request"
        hits, queries = counters["prefix_hits"], counters["prefix_queries"]
        measured = hits == hits and queries == queries and queries > 0
        hit_rate = hits / queries if measured else gauges["prefix_hit_rate_gauge"]
        percentiles, phases = self._server_percentiles(fams)
        return ServerSample(
            kind=kind,
            running=gauges["running"],
            waiting=gauges["waiting"],
            kv_cache=gauges["kv_cache"],
            prefix_hit_rate=hit_rate,
            generation_tok_s=generation,
            prompt_tok_s=rates.get("prompt_tokens", NA),
            rate_window=span if rates else NA,
            rate_source=source,
            preemptions_per_s=rates.get("preemptions", NA),
            preemptions_total=counters["preemptions"],
            generation_tokens_total=counters["generation_tokens"],
            prompt_tokens_total=counters["prompt_tokens"],
            kv=self._kv(fams, gauges["running"], gauges["kv_cache"]),
            **percentiles,
            phases=phases,
        )

    def _kv(self, fams: dict[str, Metric], running: float, usage: float) -> KvFacts:
        """The cache's size (read once: llama.cpp's from ``/props``) and this segment's gauges so far."""
        if self._kv_fixed is None:
            self._kv_fixed = (*kv_capacity(fams), *self._slots)
        capacity, block, slots, context = self._kv_fixed
        segment = self.bus.current_segment() if self.bus is not None else 0
        r_sum, u_sum, n = self._kv_sums.get(segment, (0.0, 0.0, 0))
        if running == running and usage == usage:
            r_sum, u_sum, n = r_sum + running, u_sum + usage, n + 1
            self._kv_sums[segment] = (r_sum, u_sum, n)
        return KvFacts(
            capacity_tokens=capacity,
            block_size=block,
            slots=slots,
            slot_context=context,
            segment_running=r_sum / n if n else (running if running == running else None),
            segment_usage=u_sum / n if n else None,
        )

    def _server_percentiles(self, fams: dict[str, Metric]) -> tuple[dict[str, float], dict[str, ServerPhase]]:
        """The server's p50/p99 of TTFT, ITL and E2E and its phases over the current segment (histogram deltas:
        :class:`SegmentClock`; without a run — ``check``, recorded texts — since the server started)."""
        segment = self.bus.current_segment() if self.bus is not None else 0
        deltas = self.clock.add(segment, fams, boundary=self.poked)
        out: dict[str, float] = {}
        for key in ("ttft", "itl", "e2e"):
            delta = deltas.get(key)
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                v = histogram_quantile(q, delta.buckets) if delta is not None else NA
                out[f"{key}_{name}_ms"] = v * 1000.0 if v == v else NA  # none since the segment began: N/A
        bound = histogram_bound(0.99, deltas["ttft"].buckets) if deltas.get("ttft") is not None else NA
        out["ttft_p99_bound_ms"] = bound * 1000.0 if bound == bound else NA
        return out, dict(self.clock.phases.get(segment, {}))

    def summary(self) -> dict[str, object]:
        """The base summary plus, per segment, the server's phases (``clock``) from its last scrape in it, and
        the KV cache's size where the server says (``kv``: what the forecast reads)."""
        out = super().summary()
        if self._kv_fixed is not None and any(v is not None for v in self._kv_fixed):
            capacity, block, slots, context = self._kv_fixed
            out["kv"] = {"capacity_tokens": capacity, "block_size": block, "slots": slots, "slot_context": context}
        segments = out.get("segments")
        if isinstance(segments, dict):
            for seg, phases in self.clock.phases.items():
                if phases:
                    segments.setdefault(str(seg), {})["clock"] = {k: asdict(v) for k, v in phases.items()}
        return out

    def aggregate_values(self, sample: ServerSample) -> dict[str, float]:
        return {
            "running": sample.running,
            "waiting": sample.waiting,
            "kv_cache": sample.kv_cache,
            "generation_tok_s": sample.generation_tok_s,
        }

    def close(self) -> None:
        self.fetcher.close()
