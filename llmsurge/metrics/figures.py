"""Every figure of a run, defined once: its name in summary.json, how the tables title it, its short label, its unit,
what it means, which way is better, and how it is rounded — the way AIPerf's metric classes carry a tag, a unit and
display flags. The end-of-run table, ``report``, ``compare`` (and its markdown, JSON and HTML) read these; a new
figure goes here, and every surface that lists figures shows it.

Values stay where they are computed (``metrics/summary.py`` from a bus view; ``stats.Figures`` for latency
distributions); this is what each one *is*.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsurge.metrics.stats import thin

MISSING = "—"


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One figure: ``key`` as summary.json spells it (vLLM's where it has one)."""

    key: str
    title: str  # the end-of-run table's row ("Mean TTFT (ms)")
    label: str  # short, for compare's rows and the panes ("TTFT mean")
    unit: str  # "ms", "req/s", "tok/s", "%", "requests", "tokens", "s", …
    definition: str
    lower_is_better: bool | None  # None: a count or a setting, no better or worse
    decimals: int = 2  # the tables' rounding (vLLM prints two); counts are whole
    stat: str | None = None  # "median" / "p90" / "p99" / "mean" of per-request values (their noise is estimable)
    metric: str | None = None  # "ttft" / "tpot" / "itl" / "e2el"
    share: bool = False  # a fraction in summary.json, shown as a percentage

    @property
    def quantile(self) -> float:
        """The percentile this figure is (0.0 for a mean or a non-latency figure): what :func:`stats.thin` asks."""
        return {"median": 50.0, "p90": 90.0, "p99": 99.0}.get(self.stat or "", 0.0)

    def cell(self, value: float | None, n: int = 0) -> str:
        """``value`` rounded as the tables show it; starred when a percentile rests on fewer than it needs (``n``
        values); ``—`` when missing."""
        if value is None or (isinstance(value, float) and value != value):
            return MISSING
        if self.unit in ("requests", "tokens"):
            return f"{int(value):d}"
        if self.share:
            return f"{value:.{max(0, self.decimals - 1)}%}"
        star = "*" if self.stat is not None and thin(n, self.quantile) else ""
        return f"{value:.{self.decimals}f}{star}"


LATENCIES = (
    ("ttft", "TTFT", "Time to First Token", "from sending the request to its first streamed token"),
    ("tpot", "TPOT", "Time per Output Token (excl. 1st)", "(E2EL − TTFT) / (output tokens − 1), per request"),
    ("itl", "ITL", "Inter-token Latency", "the gap between consecutive streamed chunks, every gap of every request"),
    ("e2el", "E2EL", "End-to-end Latency", "from sending the request to its last byte"),
)
"""(metric, short name, section title, definition): vLLM's latency figures, in its order."""
STATS = (("mean", "Mean", "mean"), ("median", "Median", "p50"), ("p90", "P90", "p90"), ("p99", "P99", "p99"))
"""(stat, table word, short label)."""


def _latency() -> tuple[Figure, ...]:
    out = []
    for metric, name, _section, definition in LATENCIES:
        for stat, word, short in STATS:
            out.append(
                Figure(
                    key=f"{stat}_{metric}_ms",
                    title=f"{word} {name} (ms)",
                    label=f"{name} {short}",
                    unit="ms",
                    definition=f"{word.lower()} over successful requests of {definition}",
                    lower_is_better=True,
                    stat=stat,
                    metric=metric,
                )
            )
    return tuple(out)


FIGURES: tuple[Figure, ...] = (
    Figure(key="completed", title="Successful requests", label="completed", unit="requests",
           definition="requests that succeeded (warm-up excluded)", lower_is_better=None),
    Figure(key="failed", title="Failed requests", label="failed", unit="requests",
           definition="requests that failed, each with its kind in errors", lower_is_better=True),
    Figure(key="cancelled", title="Cancelled requests", label="cancelled", unit="requests",
           definition="requests in flight when the run was stopped", lower_is_better=None),
    Figure(key="duration", title="Benchmark duration (s)", label="duration", unit="s",
           definition="from the first request sent to the last ended", lower_is_better=None),
    Figure(key="total_input_tokens", title="Total input tokens", label="input tokens", unit="tokens",
           definition="prompt tokens of the successful requests, as the server counted them", lower_is_better=None),
    Figure(key="total_output_tokens", title="Total generated tokens", label="output tokens", unit="tokens",
           definition="output tokens of the successful requests", lower_is_better=None),
    Figure(key="prefix_cache_hit_rate", title="Prompt tokens from the server's cache", label="prefix cache hits",
           unit="%", definition="cached prompt tokens over the prompt tokens of requests that reported usage",
           lower_is_better=None, share=True),
    Figure(key="request_throughput", title="Request throughput (req/s)", label="request throughput", unit="req/s",
           definition="successful requests over the duration (a segment: those that ended while it was open)",
           lower_is_better=False),
    Figure(key="output_throughput", title="Output token throughput (tok/s)", label="output throughput",
           unit="tok/s", definition="output tokens over the duration", lower_is_better=False),
    Figure(key="total_token_throughput", title="Total token throughput (tok/s)", label="total throughput",
           unit="tok/s", definition="input and output tokens over the duration", lower_is_better=False),
    Figure(key="error_rate", title="Error rate", label="error rate", unit="%",
           definition="failed over ended requests (successful and failed)", lower_is_better=True, share=True),
    Figure(key="good_requests", title="Good requests", label="good requests", unit="requests",
           definition="successful requests within every SLO limit", lower_is_better=False),
    Figure(key="good_share", title="Good share of ended requests", label="good share", unit="%",
           definition="good requests over ended requests", lower_is_better=False, share=True),
    Figure(key="request_goodput", title="Request goodput (req/s)", label="goodput", unit="req/s",
           definition="good requests over the duration", lower_is_better=False),
    Figure(key="good_output_throughput", title="Good output throughput (tok/s)", label="good output throughput",
           unit="tok/s", definition="output tokens of good requests over the duration", lower_is_better=False),
    Figure(key="total_inputs", title="Total inputs (embedding inputs, documents)", label="inputs", unit="requests",
           definition="embedding inputs or rerank documents of the successful requests", lower_is_better=None),
    Figure(key="input_throughput", title="Input throughput (inputs/s)", label="input throughput", unit="inputs/s",
           definition="inputs over the duration (embeddings, rerank)", lower_is_better=False),
    Figure(key="input_token_throughput", title="Input token throughput (tok/s)", label="input token throughput",
           unit="tok/s", definition="input tokens over the duration (embeddings, rerank)", lower_is_better=False),
    *_latency(),
)  # fmt: skip
"""Every figure a run's summary carries at its top level and per segment, in the end-of-run table's order."""

FIGURE: dict[str, Figure] = {f.key: f for f in FIGURES}
"""By summary.json key."""
