"""What a run does: the load (closed or open loop), its stages, and the shape of each request."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.lengths import LengthDist

ARRIVALS = ("constant", "poisson", "gamma")


@dataclass(frozen=True)
class PromptCase:
    """A fixed prompt with its own output length (the ``sanity`` preset cycles through these)."""

    name: str
    prompt: str
    output_tokens: int
    checked: bool = False
    """A quality-set prompt: its answer is judged (llmsurge.quality)."""


@dataclass(frozen=True)
class RequestShape:
    """How each request looks on the wire."""

    endpoint: str = "chat"
    stream: bool = True
    input_tokens: int = 256
    output_tokens: int = 256
    ignore_eos: bool = True
    temperature: float = 0.0
    timeout: float = 300.0
    cases: tuple[PromptCase, ...] = ()
    input_dist: LengthDist | None = None
    """Prompt lengths drawn from a distribution (``input_tokens`` is then its nominal value); None: fixed."""
    output_dist: LengthDist | None = None
    """Output lengths (max_tokens) drawn from a distribution; None: ``output_tokens`` every time."""
    dataset: str = ""
    """Prompts from a file (or a bundled dataset's name) instead of random words."""
    shared_prefix_tokens: int = 0
    """Each prompt starts with one of ``prefix_groups`` shared system prompts of this many tokens (0: none)."""
    prefix_groups: int = 1
    turns: int = 1
    """Closed loop: each user keeps a conversation of this many turns, sending the growing history each turn."""
    think_time: float = 0.0
    """Seconds a user waits between the turns of a conversation."""
    fill_context: float = 0.0
    """Long context: prompts fill this share of the server's context length (0: use ``input_tokens``)."""
    batch: int = 1
    """Embeddings: inputs per request (each of ``input_tokens``)."""
    documents: int = 8
    """Rerank: documents per query (each of ``input_tokens``)."""
    tools: int = 0
    """Chat: tool definitions sent with each request, and a prompt that asks for a call (0: none)."""
    images: int = 0
    """Chat: synthetic PNG images attached to each request's last user message (vision models)."""
    image_size: tuple[int, int] = (512, 512)
    """Their width and height in pixels."""

    @property
    def pooling(self) -> bool:
        """An embeddings or rerank request: one answer, no output tokens, no TTFT (its endpoint says)."""
        return ENDPOINTS[self.endpoint].pooling

    @property
    def streamed(self) -> bool:
        """Whether requests ask for a stream (embeddings and rerank never do)."""
        return self.stream and not self.pooling

    @property
    def inputs(self) -> int:
        """Items one request carries: embedding inputs, rerank documents (1 for a generation)."""
        return ENDPOINTS[self.endpoint].inputs(self)

    @property
    def shares_prefixes(self) -> bool:
        """Whether prompts share prefixes on purpose (a warm prefix cache is what is being measured), come from
        the user's own prompts (whose shared system prompts are real traffic), or are a fixed set sent again."""
        return self.shared_prefix_tokens > 0 or self.turns > 1 or bool(self.dataset) or bool(self.cases)

    def describe_lengths(self) -> str:
        """``256 in / 256 out`` with distributions, prefixes, turns and datasets spelled out."""
        if self.cases:
            return f"{len(self.cases)} fixed prompts"
        inp = f"dataset {self.dataset}" if self.dataset else f"{self.input_dist or self.input_tokens} in"
        if self.fill_context:
            inp = f"{self.fill_context:.0%} of the context in"
        out = f"{self.output_dist or self.output_tokens} out"
        extra = ""
        if self.shared_prefix_tokens:
            extra += f", shared prefix {self.shared_prefix_tokens} tokens × {self.prefix_groups}"
        if self.turns > 1:
            extra += f", {self.turns} turns (think {self.think_time:g}s)"
        return f"{inp} / {out}{extra}"


@dataclass(frozen=True)
class Load:
    """Closed loop (``concurrency`` users, each sending the next request when the last ends) or open loop
    (``rate`` requests/s with an arrival law; gamma uses vLLM's ``burstiness``, 1.0 being Poisson)."""

    concurrency: int | None = 1
    rate: float | None = None
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    trace: str | None = None
    """Replay this trace (a file, or ``sample``): each request at its own time, with its own lengths."""
    speedup: float = 1.0
    """A trace's time compressed this many times."""

    @property
    def is_open_loop(self) -> bool:
        """Whether requests arrive on a schedule (a rate, or a trace) rather than from a fixed number of users."""
        return self.rate is not None or self.trace is not None

    def describe(self) -> str:
        """A short label: ``c=8``, ``r=2.5/s poisson`` or ``trace sample ×10``."""
        if self.trace is not None:
            cap = f" max={self.max_concurrency}" if self.max_concurrency else ""
            fast = f" ×{self.speedup:g}" if self.speedup != 1 else ""
            return f"trace {self.trace.rsplit('/', 1)[-1]}{fast}{cap}"
        if self.rate is not None:
            law = self.arrival if self.arrival != "gamma" else f"gamma b={self.burstiness:g}"
            cap = f" max={self.max_concurrency}" if self.max_concurrency else ""
            return f"r={self.rate:g}/s {law}{cap}"
        return f"c={self.concurrency}"


@dataclass(frozen=True)
class Stage:
    """One step of a scenario: a load held for a number of requests and/or a duration."""

    load: Load
    requests: int | None = None
    duration: float | None = None


SEARCH_MODES = ("concurrency", "rate")


@dataclass(frozen=True)
class Search:
    """A capacity search: raise the load (doubling, then bisecting between the last level that held and the first
    that did not) until the share of good requests (an SLO) drops below ``target``. Bounded in levels and time."""

    mode: str = "concurrency"  # or "rate" (requests/s, Poisson arrivals)
    target: float = 0.95  # good share a level must keep
    start: float = 1.0
    level_duration: float = 15.0  # seconds per level
    max_levels: int = 12

    def load_at(self, level: float) -> Load:
        """The load of one level."""
        if self.mode == "rate":
            return Load(concurrency=None, rate=level, arrival="poisson")
        return Load(concurrency=int(level))

    def next_level(self, held: float | None, failed: float | None) -> float | None:
        """The next level to try, or None when the bracket is as narrow as it gets."""
        if failed is None:
            return (held or self.start) * 2
        low = held or 0.0
        if self.mode == "concurrency":
            return None if failed - low <= 1 else float((int(low) + int(failed)) // 2) or None
        return None if failed - low <= 0.1 * failed else round((low + failed) / 2, 2)


WARMUP_INPUT_TOKENS = 32
"""A warm-up request's prompt, at most (tokens)."""
WARMUP_OUTPUT_TOKENS = 16
"""A warm-up request's output, at most (tokens)."""


@dataclass(frozen=True)
class Scenario:
    """A preset made concrete: stages run in order, with warm-up requests first."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    shape: RequestShape = field(default_factory=RequestShape)
    warmup: int = 0
    stop_on_plateau: bool = False
    reference: str = ""
    search: Search | None = None
    """When set, the stages are replaced by a capacity search."""
    slo: str = ""
    """The preset's SLO (``ttft=500ms,…``), used when the command line gives none."""

    def for_warmup(self) -> Scenario:
        """The scenario its warm-up requests are sent with: the same endpoint and options, but short — a warm-up
        readies the server's path (connections, graphs, kernels), and a full-length prompt there costs a big model
        minutes of prefill for nothing measured (:data:`WARMUP_INPUT_TOKENS`, :data:`WARMUP_OUTPUT_TOKENS`)."""
        shape = replace(
            self.shape,
            input_tokens=min(self.shape.input_tokens, WARMUP_INPUT_TOKENS),
            output_tokens=min(self.shape.output_tokens, WARMUP_OUTPUT_TOKENS),
            input_dist=None,
            output_dist=None,
            dataset="",
            shared_prefix_tokens=0,  # a warmed shared prefix would flatter the first requests' TTFT
            turns=1,
            think_time=0.0,
            fill_context=0.0,
        )
        return replace(self, shape=shape)

    def peak_concurrency(self) -> int | None:
        """The most requests any stage keeps in flight (None: an uncapped rate, a search: no bound)."""
        if self.search is not None:
            return None
        peaks = [st.load.max_concurrency if st.load.is_open_loop else st.load.concurrency for st in self.stages]
        return None if any(p is None for p in peaks) else max(p or 0 for p in peaks) or None

    def with_overrides(
        self,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        arrival: str | None = None,
        burstiness: float | None = None,
        requests: int | None = None,
        duration: float | None = None,
        trace: str | None = None,
        speedup: float | None = None,
        **shape: object,
    ) -> Scenario:
        """A copy with command-line flags applied: a load flag collapses the stages into one (``trace``: one
        replay, ``-c`` capping what is in flight)."""
        stages = self.stages
        if trace is not None:
            load = Load(concurrency=None, trace=trace, speedup=speedup or 1.0, max_concurrency=concurrency)
            stages = (Stage(load),)
            concurrency = None
        elif speedup is not None:
            stages = tuple(replace(st, load=replace(st.load, speedup=speedup)) for st in stages)
        if concurrency is not None or rate is not None:
            base = stages[0].load
            if rate is not None:
                load = replace(base, rate=rate, concurrency=None, max_concurrency=concurrency)
            else:
                load = Load(concurrency=concurrency)
            stages = (replace(stages[0], load=load),)
        if arrival is not None or burstiness is not None:
            stages = tuple(
                replace(
                    st,
                    load=replace(
                        st.load,
                        arrival=arrival or st.load.arrival,
                        burstiness=burstiness if burstiness is not None else st.load.burstiness,
                    ),
                )
                for st in stages
            )
        if requests is not None or duration is not None:
            stages = tuple(
                replace(
                    st,
                    requests=requests if requests is not None else (None if duration is not None else st.requests),
                    duration=duration if duration is not None else (None if requests is not None else st.duration),
                )
                for st in stages
            )
        clean = {k: v for k, v in shape.items() if v is not None}
        for key in ("input_tokens", "output_tokens"):  # a distribution: its nominal length, and the draw
            value = clean.get(key)
            if isinstance(value, LengthDist):
                clean[key] = value.nominal
                clean[key.replace("tokens", "dist")] = None if value.is_fixed else value
            elif value is not None:
                clean[key.replace("tokens", "dist")] = None
        new_shape = replace(self.shape, **clean) if clean else self.shape  # type: ignore[arg-type]
        if {"input_tokens", "output_tokens", "dataset"} & clean.keys():
            new_shape = replace(new_shape, cases=())
        if "input_tokens" in clean:
            new_shape = replace(new_shape, fill_context=0.0)
        return replace(self, stages=stages, shape=new_shape)
