"""What the server is, asked once at the start of a run: one frozen :class:`ServerFacts`.

Two steps. :func:`discover` waits for the server, then reads its model list, ``/metrics`` and ``/props`` (each probe
once, side by side, each with a whole-request deadline and a size cap: a trickling or huge side endpoint costs a
few seconds and a note, never the run). :func:`negotiate` sends one short request to learn what the server accepts
(``ignore_eos``), honouring ``Retry-After``, and calibrates prompt lengths against the server's own token count on
the first requests that succeed. Later code reads the facts; nothing writes them again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from llmsurge.engine.client import one_request
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.endpoints.base import count_of
from llmsurge.engine.prompts import Calibration, PromptFactory
from llmsurge.engine.scenario import RequestShape
from llmsurge.metrics.records import Failure, RequestRecord
from llmsurge.metrics.roofline import RooflineInputs, from_llamacpp_meta
from llmsurge.net import METRICS_CAP, Answer, Target, fetch
from llmsurge.redaction import listed, shown

UP_PROBE_S = 3.0
"""Deadline of one "is it up?" probe while waiting for a starting server."""
FIRST_REQUEST_TRIES = 3
"""Requests a 429/503 with ``Retry-After`` may cost the negotiation or one calibration point."""


class ServerError(Exception):
    """A server answered, but not as an OpenAI-compatible one should; the message names the fix."""


class ServerUnreachable(ServerError):
    """The server did not answer at all within the wait (exit status 3)."""


@dataclass(frozen=True, kw_only=True)
class ServerFacts:
    """What the server said about itself, resolved once per run."""

    model: str
    """The model the run uses."""
    models: tuple[str, ...] = ()
    """Every model the server lists (empty when its list could not be read)."""
    kind: str = "unknown"
    """vLLM, llama.cpp, SGLang, TGI, Ollama, LM Studio, simulated … or unknown."""
    context_length: int | None = None
    """Tokens per sequence, when the server says (llama.cpp ``n_ctx``, vLLM ``max_model_len``)."""
    roofline: RooflineInputs = field(default_factory=RooflineInputs)
    """Roofline inputs the server gave (llama.cpp's model meta)."""
    waited: float = 0.0
    """Seconds spent waiting for the server to answer."""
    accepts_ignore_eos: bool = True
    """False when the server rejected ``ignore_eos`` (output lengths may then end early at EOS)."""
    answered: bool = True
    """Whether a first request succeeded (calibration needs one)."""
    calibration: Calibration = field(default_factory=Calibration)
    """Tokens per word and the template's overhead, as the server counts them."""
    notes: tuple[tuple[str, str], ...] = ()
    """(level, message): probes that gave up and why, fields the server rejected, calibration that failed."""
    serves_metrics: bool = False
    """Whether ``/metrics`` answered in time (its histograms then referee our TTFT)."""
    sent: Sent = field(default_factory=lambda: Sent())
    """What resolving the run sent the server (the first request, calibration), said in summary.json."""


@dataclass(frozen=True, kw_only=True)
class Sent:
    """Requests sent to resolve a run, and the tokens the server counted for them (prompt: what it prefilled)."""

    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0

    def json(self) -> dict[str, int]:
        """For summary.json's ``resolving``."""
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens}


class Tally:
    """Counts what a resolving step sends: wraps each sender (:meth:`counted`)."""

    def __init__(self) -> None:
        self.sent = Sent()

    def counted(self, send: Callable[[], Awaitable[RequestRecord]]) -> Callable[[], Awaitable[RequestRecord]]:
        """``send``, each of its requests added to :attr:`sent`."""

        async def go() -> RequestRecord:
            rec = await send()
            self.sent = Sent(
                requests=self.sent.requests + 1,
                prompt_tokens=self.sent.prompt_tokens + max(0, rec.prompt_tokens),
                output_tokens=self.sent.output_tokens + max(0, rec.output_tokens),
            )
            return rec

        return go


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
TRANSFORMERS_SERVE_LIST = frozenset(
    {"Menlo/Jan-nano", "Menlo/Jan-nano-128k", "HuggingFaceTB/SmolVLM-Instruct", "ibm-granite/granite-vision-3.2-2b"}
)
"""``transformers serve`` lists a fixed set of models in ``/v1/models`` (whatever it serves), and exports no
``/metrics``: two of these ids in the list name it."""


DNS_PATIENCE_S = 10.0
"""A name that does not resolve for this long is a wrong URL, not a server still starting."""


async def wait_until_up(
    client: httpx.AsyncClient,
    target: Target,
    deadline: float | None,
    on_wait: Callable[[float, str], None] | None = None,
) -> float:
    """Poll ``/v1/models`` (then ``/health``) until the server answers; returns seconds waited. Only the status
    line is awaited: a body that trickles does not hold this up.

    Waiting is for a server that is not up yet (connection refused, 503 while it loads a model): each wait is told
    its cause. What waiting cannot mend is said at once (:class:`ServerUnreachable` with the fix): a certificate
    refused, a name that still does not resolve after :data:`DNS_PATIENCE_S`. 401/403/404 are answers: discovery
    names them."""
    t0 = time.monotonic()
    headers = target.headers()
    dns_since: float | None = None
    while True:
        ans = await fetch(client, target.base_url + "/v1/models", headers, deadline=UP_PROBE_S, read_body=False)
        if ans.status is not None and ans.status < 500:
            return time.monotonic() - t0
        if ans.status is not None:  # some servers fail /v1/models but are ready (transformers serve without a cache)
            health = await fetch(client, target.base_url + "/health", headers, deadline=UP_PROBE_S, read_body=False)
            if health.status == 200:
                return time.monotonic() - t0
        now = time.monotonic()
        if ans.cause == "tls":
            raise ServerUnreachable(
                f"{target.base_url}: TLS failed ({_tls_reason(ans.problem)}): give --ca-bundle FILE with the"
                " server's CA certificate, or --insecure to skip verification"
            )
        if ans.cause == "dns":
            dns_since = now if dns_since is None else dns_since
            if now - dns_since >= DNS_PATIENCE_S:
                raise ServerUnreachable(f"{target.base_url}: the name does not resolve (DNS): check the URL's host")
        else:
            dns_since = None
        elapsed = now - t0
        cause = wait_cause(ans)
        if deadline is not None and elapsed > deadline:
            raise ServerUnreachable(
                f"{target.base_url} did not answer within {deadline:.0f}s (last: {cause}): is the server running?"
                " (--wait S waits longer)"
            )
        if on_wait is not None:
            on_wait(elapsed, cause)
        await asyncio.sleep(0.5)


def wait_cause(ans: Answer) -> str:
    """Why a probe of a server that is not up yet failed, in a few words (``connection refused``,
    ``HTTP 503``)."""
    if ans.status is not None:
        return f"HTTP {ans.status}" + (": loading" if ans.status == 503 else "")
    return {
        "refused": "connection refused",
        "timeout": "no answer in time",
        "dns": "the name does not resolve",
    }.get(ans.cause, ans.problem[:80] or "no answer")


def _tls_reason(problem: str) -> str:
    """The certificate error in a TLS failure's text (``self-signed certificate``, ``unable to get local issuer``)."""
    marker = "certificate verify failed: "
    if marker in problem:
        return problem.split(marker, 1)[1].split(" (_ssl", 1)[0].rstrip(")")
    return problem[:120]


def model_entries(ans: Answer, target: Target) -> list[dict[str, object]]:
    """The entries of a ``/v1/models`` answer; :class:`ServerError` naming the fix when it is not a model list."""
    if ans.status in (401, 403):
        if target.api_key or target.basic_auth:
            raise ServerError(
                f"{target.base_url} refused the credentials given (HTTP {ans.status}): check the key's value"
                " or the URL's user:password"
            )
        raise ServerError(f"{target.base_url} answered {ans.status} Unauthorized: pass the key with --api-key-env VAR")
    if ans.problem:
        raise ServerError(f"GET /v1/models {ans.problem}: name the model with --model")
    if ans.status is None or ans.status >= 300:
        raise ServerError(
            f"GET /v1/models answered HTTP {ans.status}: is this an OpenAI-compatible server?"
            " (if it is, name the model with --model)"
        )
    try:
        data = ans.json().get("data", [])
        entries = [m for m in data if isinstance(m, dict) and "id" in m]
    except (ValueError, AttributeError, TypeError) as exc:
        raise ServerError("GET /v1/models did not return an OpenAI model list") from exc
    if len(entries) != len(data):
        raise ServerError("GET /v1/models did not return an OpenAI model list")
    return entries


async def list_models(client: httpx.AsyncClient, target: Target) -> list[str]:
    """The ids from ``GET /v1/models``."""
    ans = await fetch(client, target.base_url + "/v1/models", target.headers())
    return [str(m["id"]) for m in model_entries(ans, target)]


def choose_model(models: Sequence[str], requested: str, base_url: str) -> str:
    """The model to use: the one asked for if the server has it, else the server's first (the one rule)."""
    if requested:
        if models and requested not in models:
            raise ServerError(
                f"model {shown(requested)!r} is not served by {base_url}; it serves: {listed(list(models))}"
                " (pass one with --model)"
            )
        return requested
    if not models:
        raise ServerError(f"{base_url} lists no models: pass one with --model")
    return models[0]


def kind_from(metrics: Answer, entries: list[dict[str, object]], models: Answer) -> str:
    """vLLM, llama.cpp, SGLang, TGI, Ollama … from ``/metrics`` names, ``owned_by`` or the ``Server`` header."""
    from llmsurge.telemetry.prometheus import is_simulated, parse_metrics, server_kind

    if metrics.ok:
        try:
            fams = parse_metrics(metrics.text)
        except ValueError:
            fams = {}
        kind = "simulated" if is_simulated(fams) else server_kind(fams)
        if kind != "unknown":
            return kind
    owned = " ".join(str(m.get("owned_by", "")) for m in entries).lower()
    for marker, kind in OWNER_KINDS:
        if marker in owned:
            return kind
    server = models.headers.get("server", "").lower()
    if "text-generation-inference" in server:
        return "TGI"
    if len(TRANSFORMERS_SERVE_LIST & {str(m.get("id", "")) for m in entries}) >= 2:
        return "transformers serve"
    return "unknown"


async def detect_server_kind(client: httpx.AsyncClient, target: Target) -> str:
    """The server's kind, asking ``/metrics`` and ``/v1/models`` (``llmsurge check``)."""
    metrics, models = await asyncio.gather(
        fetch(client, target.base_url + "/metrics", target.headers(), cap=METRICS_CAP),
        fetch(client, target.base_url + "/v1/models", target.headers()),
    )
    try:
        entries = model_entries(models, target)
    except ServerError:
        entries = []
    return kind_from(metrics, entries, models)


def _context(props: Answer, entry: dict[str, object] | None) -> int | None:
    """llama.cpp's ``/props`` ``n_ctx`` (per slot), else ``max_model_len`` (vLLM, SGLang) or ``meta.n_ctx_train``."""
    if props.ok:
        try:
            settings = props.json().get("default_generation_settings") or {}
            found = count_of(settings.get("n_ctx")) if isinstance(settings, dict) else None
        except (ValueError, AttributeError):
            found = None
        if found:
            return found
    if entry is None:
        return None
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    return count_of(entry.get("max_model_len")) or count_of(meta.get("n_ctx_train")) or None


def _gave_up(what: str, ans: Answer) -> tuple[str, str] | None:
    """A note when a side probe gave up (a plain 404 is no news: many servers have no such endpoint)."""
    if not ans.problem:
        return None
    return "warning", f"the server's {what} was not used: {ans.problem}"


async def discover(
    client: httpx.AsyncClient,
    target: Target,
    wait: float | None,
    on_wait: Callable[[float, str], None] | None = None,
    simulated: bool = False,
) -> ServerFacts:
    """Wait for the server, then read its model list, ``/metrics`` and ``/props`` side by side (each probe with a
    deadline and a size cap). :class:`ServerError` when no model can be chosen."""
    waited = await wait_until_up(client, target, wait, on_wait)
    headers = target.headers()
    models_ans, metrics_ans, props_ans = await asyncio.gather(
        fetch(client, target.base_url + "/v1/models", headers),
        fetch(client, target.base_url + "/metrics", headers, cap=METRICS_CAP),
        fetch(client, target.base_url + "/props", headers),
    )
    notes = [n for n in (_gave_up("/metrics", metrics_ans), _gave_up("/props", props_ans)) if n]
    try:
        entries = model_entries(models_ans, target)
    except ServerError as exc:
        if not target.model:
            raise
        entries = []  # /v1/models is broken but the user named the model: trust them
        notes.append(("warning", f"{exc}; going on with --model {shown(target.model)}"))
    ids = tuple(str(m["id"]) for m in entries)
    model = choose_model(ids, target.model, target.base_url)
    entry = next((m for m in entries if str(m["id"]) == model), None)
    meta = entry.get("meta") if entry is not None else None
    return ServerFacts(
        model=model,
        models=ids,
        kind="simulated" if simulated else kind_from(metrics_ans, entries, models_ans),
        context_length=_context(props_ans, entry),
        roofline=from_llamacpp_meta(dict(meta) if isinstance(meta, dict) else {}),
        waited=waited,
        notes=tuple(notes),
        serves_metrics=metrics_ans.ok,
    )


async def first_success(
    send: Callable[[], Awaitable[RequestRecord]], tries: int = FIRST_REQUEST_TRIES
) -> RequestRecord:
    """``await send()`` until a request succeeds, or fails in a way a retry cannot mend; a 429/503 that says when
    (``Retry-After``) is waited on that long, at most ``tries`` requests in all."""
    rec: RequestRecord = await send()
    for _ in range(tries - 1):
        if rec.ok or rec.retry_after is None:
            break
        await asyncio.sleep(rec.retry_after)
        rec = await send()
    return rec


CALIBRATION_WORDS = (16, 256)
"""The two prompts calibration sends (words): short — the line through them scales to any prompt length, and a
full-length prompt would cost the server a prefill of it for each (minutes of a big model's time)."""


async def calibrate(
    client: httpx.AsyncClient, target: Target, shape: RequestShape, tally: Tally | None = None
) -> Calibration:
    """Two one-token requests of different lengths (:data:`CALIBRATION_WORDS`), one after the other (a busy
    server's one slot is not asked twice at once), give tokens per word and the template overhead."""
    f = PromptFactory(Calibration(), seed=12345)
    probe = dataclasses.replace(shape, ignore_eos=True, timeout=min(shape.timeout, 120.0), batch=1)
    sizes = CALIBRATION_WORDS
    tally = tally or Tally()

    def sender(words: str) -> Callable[[], Awaitable[RequestRecord]]:
        return tally.counted(lambda: one_request(client, target, probe, words, 1))

    recs = [await first_success(sender(f.words(n))) for n in sizes]
    if any(not rec.ok or rec.tokens_estimated or rec.prompt_tokens <= 0 for rec in recs):
        return Calibration()
    return Calibration.from_points(sizes[0], recs[0].prompt_tokens, sizes[1], recs[1].prompt_tokens)


async def negotiate(
    client: httpx.AsyncClient, target: Target, facts: ServerFacts, shape: RequestShape, calibrate_prompts: bool
) -> ServerFacts:
    """``facts`` with what the server accepts: one short request (``ignore_eos`` dropped when rejected), then
    prompt calibration — skipped only when the first request timed out or found no server (time lost)."""
    notes = list(facts.notes)
    accepts = True
    tally = Tally()
    probe = dataclasses.replace(shape, timeout=min(shape.timeout, 120.0))
    rec = await first_success(tally.counted(lambda: one_request(client, target, probe, "Say hello.", 4)))
    if not rec.ok and rec.http_status in (400, 422) and "ignore_eos" in rec.error and shape.ignore_eos:
        accepts = False
        notes.append(("info", "the server rejects ignore_eos: output lengths may end early at EOS"))
        probe = dataclasses.replace(probe, ignore_eos=False)
        rec = await first_success(tally.counted(lambda: one_request(client, target, probe, "Say hello.", 4)))
    calibration = Calibration()
    hopeless = not rec.ok and rec.error_kind in (Failure.TIMEOUT.value, Failure.CONNECT.value)
    why = ENDPOINTS[shape.endpoint].uncalibrated
    if calibrate_prompts and why:
        calibrate_prompts = False
        notes.append(("info", f"{shape.endpoint}: prompt lengths are not calibrated ({why})"))
    if calibrate_prompts and not hopeless:
        calibration = await calibrate(client, target, probe, tally)
    if not rec.ok:
        unmeasured = ": prompts are not calibrated" if calibrate_prompts and not calibration.measured else ""
        notes.append(("warning", f"the first request failed ({rec.error_kind}: {rec.error[:120]}){unmeasured}"))
    elif calibrate_prompts and not calibration.measured:
        notes.append(("info", "the server reported no prompt usage: input lengths are estimates"))
    return dataclasses.replace(
        facts,
        accepts_ignore_eos=accepts,
        answered=rec.ok,
        calibration=calibration,
        notes=tuple(notes),
        sent=tally.sent,
    )


__all__ = ["Sent", "ServerError", "ServerFacts", "ServerUnreachable", "discover", "negotiate"]
