"""``llmsurge check URL``: the quick sanity check right after a server launch."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field, replace

import httpx
from rich.console import Console

from llmsurge.engine.client import one_request, tool_call_problem
from llmsurge.engine.discovery import (
    ServerError,
    ServerUnreachable,
    choose_model,
    detect_server_kind,
    list_models,
    wait_until_up,
)
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.lifetime import ExitCode
from llmsurge.metrics.records import RequestRecord
from llmsurge.net import Target
from llmsurge.quality import ITEMS, QUALITY_THRESHOLD, QualityItem, judge
from llmsurge.redaction import listed
from llmsurge.redaction import markup_safe as safe
from llmsurge.render.console import make_console


@dataclass
class CheckResult:
    """What the check found; ``healthy`` decides the exit status."""

    url: str
    waited: float = 0.0
    models: list[str] = field(default_factory=list)
    model: str = ""
    server_kind: str = "unknown"
    probes: dict[str, RequestRecord] = field(default_factory=dict)
    telemetry: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unreachable: bool = False
    quality: list[tuple[QualityItem, RequestRecord, bool, str]] = field(default_factory=list)
    """The quality set: item, its request, right or not, why not."""
    quality_threshold: float = QUALITY_THRESHOLD
    offers: dict[str, str] = field(default_factory=dict)
    """The other endpoints and tool calls: ``yes …`` or why not (informational: health rests on chat)."""

    @property
    def quality_score(self) -> float | None:
        """Share of the quality set answered right (None: not run)."""
        return sum(ok for _i, _r, ok, _w in self.quality) / len(self.quality) if self.quality else None

    @property
    def degraded(self) -> bool:
        """Healthy, but the quality set scored below the threshold."""
        score = self.quality_score
        return score is not None and score < self.quality_threshold

    @property
    def healthy(self) -> bool:
        """Every probe succeeded and nothing else went wrong."""
        return not self.problems and bool(self.probes) and all(r.ok for r in self.probes.values())


QUALITY_CONCURRENCY = 4


async def run_quality(
    client: httpx.AsyncClient, target: Target, res: CheckResult, console: Console, show_items: bool
) -> None:
    """The quality set at temperature 0, a few at a time; each answer judged."""
    shape = RequestShape(endpoint="chat", stream=True, ignore_eos=False, temperature=0.0, timeout=120.0)
    gate = asyncio.Semaphore(QUALITY_CONCURRENCY)

    async def ask(item: QualityItem) -> tuple[QualityItem, RequestRecord, bool, str]:
        async with gate:
            rec = await one_request(client, target, shape, item.prompt, item.max_tokens)
        if not rec.ok:
            return item, rec, False, f"{rec.error_kind}: {rec.error[:80]}"
        ok, why = judge(item, rec.text_head + rec.text_tail)
        return item, rec, ok, why

    res.quality = list(await asyncio.gather(*(ask(i) for i in ITEMS)))
    score = res.quality_score or 0.0
    right = sum(ok for *_x, ok, _w in res.quality)
    mark = "[green]✓[/green]" if score >= res.quality_threshold else "[red]✗[/red]"
    console.print(f"{mark} quality: {right} of {len(res.quality)} answers right ({score:.0%}, temperature 0)")
    for item, _rec, ok, why in res.quality:
        if show_items or (not ok and score < res.quality_threshold):
            verdict = "right" if ok else f"wrong: {why}"
            console.print(f"    {'✓' if ok else '✗'} {item.name}: {verdict}", markup=False, highlight=False)


async def run_check(
    url: str,
    model: str,
    api_key: str | None,
    wait: float,
    console: Console,
    max_tokens: int = 64,
    threshold: float | None = None,
    quality: bool = True,
    show_items: bool = False,
) -> CheckResult:
    """Wait for the server, list models, one streaming chat and one streaming completion, the quality set."""
    target = Target.from_url(url, model, api_key)
    base = target.base_url
    res = CheckResult(base)
    if threshold is not None:
        res.quality_threshold = threshold
    tty = console.is_terminal
    last = [0.0]

    def waiting(s: float, why: str) -> None:
        if s - last[0] >= (1.0 if tty else 5.0):
            last[0] = s
            console.print(f"waiting for {safe(base)} … {s:.0f}s ({safe(why)})", end="\r" if tty else "\n")

    async with make_client(timeout=30.0, urls=[base]) as client:
        try:
            res.waited = await wait_until_up(client, target, wait, waiting)
            console.print(f"[green]✓[/green] server answered after {res.waited:.1f}s" + " " * 20)
            res.models = await list_models(client, target)
        except ServerUnreachable as exc:
            res.problems.append(str(exc))
            res.unreachable = True
            return res
        except ServerError as exc:
            if not (model and "/v1/models" in str(exc)):
                res.problems.append(str(exc))
                return res
            console.print(f"[yellow]![/yellow] {safe(exc)}; going on with --model {safe(model)}")
        console.print(f"[green]✓[/green] models: {safe(listed(res.models) or '(none)')}")
        try:
            res.model = choose_model(res.models, model, base)
        except ServerError as exc:
            res.problems.append(str(exc))
            return res
        target = replace(target, model=res.model)
        res.server_kind = await detect_server_kind(client, target)
        console.print(f"[green]✓[/green] server kind: {safe(res.server_kind)}")
        for endpoint in ("chat", "completions"):
            shape = RequestShape(endpoint=endpoint, stream=True, ignore_eos=False, timeout=120.0)
            rec = await one_request(client, target, shape, "Tell me about the history of the bicycle.", max_tokens)
            res.probes[endpoint] = rec
            if rec.ok:
                rate = rec.decode_rate
                usage = "usage reported" if not rec.tokens_estimated else "[yellow]no usage reported[/yellow]"
                ttft = (rec.ttft or 0) * 1000
                decode = f", decode {rate:.1f} tok/s" if rate else ""
                console.print(
                    f"[green]✓[/green] streaming {endpoint}: TTFT {ttft:.0f} ms, {rec.output_tokens} tokens"
                    f"{decode}, {usage}"
                )
            else:
                console.print(f"[red]✗[/red] streaming {endpoint}: {safe(rec.error_kind)}: {safe(rec.error)}")
                if endpoint == "completions" and rec.http_status == 404:
                    res.problems.append("no /v1/completions endpoint (chat-only server): use --endpoint chat")
        chat = res.probes.get("chat")
        if chat is not None and chat.ok:
            console.print(per_request_clock(chat, res.server_kind), markup=False, highlight=False)
        res.offers = await probe_endpoints(client, target)
        for name, said in res.offers.items():
            mark = "[green]✓[/green]" if said.startswith("yes") else "[yellow]–[/yellow]"
            console.print(f"{mark} {name}: {safe(said)}")
        if quality and res.probes.get("chat") is not None and res.probes["chat"].ok:
            await run_quality(client, target, res, console, show_items)
        res.telemetry = await probe_telemetry(client, target)
        print_telemetry(console, res.telemetry)
    return res


def per_request_clock(rec: RequestRecord, kind: str) -> str:
    """Whether the server times each request on its own clock (what reconciles our TTFT per request), and how to
    turn it on where it can."""
    if rec.server is not None:
        queue = f"queue {rec.server.queue_ms:.1f} ms, " if rec.server.queue_ms is not None else ""
        return f"✓ per-request timings: yes ({rec.server.source}: {queue}prefill {rec.server.prompt_ms:.1f} ms)"
    if kind == "vLLM":
        return "– per-request timings: no (start vLLM with --enable-per-request-metrics to have them)"
    return "– per-request timings: no (llama.cpp sends them; vLLM with --enable-per-request-metrics)"


async def probe_endpoints(client: httpx.AsyncClient, target: Target) -> dict[str, str]:
    """One small request to each other endpoint, and one tool-call request: what the server offers."""
    out: dict[str, str] = {}
    shapes = {  # every endpoint the registry has beyond the two probed first, with its smallest request
        e.name: RequestShape(endpoint=e.name, stream=True, ignore_eos=False, documents=2, timeout=60.0)
        for e in ENDPOINTS.values()
        if e.name not in ("chat", "completions")
    }
    shapes["tool calls"] = RequestShape(endpoint="chat", stream=True, ignore_eos=False, tools=1, timeout=60.0)
    for name, shape in shapes.items():
        rec = await one_request(client, target, shape, "Where is the nearest bicycle shop?", 32)
        if not rec.ok:
            out[name] = f"no ({rec.error_kind}: {rec.error[:100]})"
        elif name == "tool calls":
            problem = tool_call_problem(rec.tool_calls)
            out[name] = (
                ("yes (a call with JSON arguments)" if not problem else f"calls, but {problem}")
                if rec.tool_calls
                else "no call (the server took the tools but the model answered in text)"
            )
        else:
            out[name] = f"yes ({(rec.e2el or 0.0) * 1000:.0f} ms)"
    return out


def print_telemetry(console: Console, telemetry: dict[str, str]) -> None:
    """One line per source, as text: our own hints carry brackets (``llmsurge[nvidia]``) that are not markup."""
    for source, status in telemetry.items():
        console.print(f"  telemetry {source}: {status}", markup=False, highlight=False)


async def probe_telemetry(client: httpx.AsyncClient, target: Target) -> dict[str, str]:
    """What telemetry the run would find (server /metrics, local GPUs, host)."""
    from llmsurge.telemetry.probe import probe_sources

    return await probe_sources(client, target)


def check_main(
    url: str,
    model: str,
    api_key: str | None,
    wait: float,
    max_tokens: int,
    threshold: float | None = None,
    quality: bool = True,
    show_items: bool = False,
) -> int:
    """Run the check and print a verdict; the exit status is 0 only when healthy (and not degraded)."""
    console = make_console()
    t0 = time.monotonic()
    try:
        res = asyncio.run(run_check(url, model, api_key, wait, console, max_tokens, threshold, quality, show_items))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    for p in res.problems:
        console.print(f"[red]✗[/red] {safe(p)}")
    took = time.monotonic() - t0
    if res.healthy and res.degraded:
        wrong = [i.name for i, _r, ok, _w in res.quality if not ok]
        console.print(
            f"[bold yellow]DEGRADED[/bold yellow]: {safe(res.server_kind)} serving {safe(res.model)} answers, but only"
            f" {res.quality_score:.0%} of the quality set right (threshold {res.quality_threshold:.0%}); wrong:"
            f" {safe(', '.join(wrong[:8]))}{' …' if len(wrong) > 8 else ''} (checked in {took:.1f}s)"
        )
        return ExitCode.THRESHOLDS
    if res.healthy:
        chat = res.probes.get("chat")
        rate = chat.decode_rate if chat else None
        tail = f", decode ~{rate:.0f} tok/s" if rate else ""
        if res.quality_score is not None:
            tail += f", quality {res.quality_score:.0%}"
        console.print(
            f"[bold green]HEALTHY[/bold green]: {safe(res.server_kind)} serving {safe(res.model)}{tail}"
            f" (checked in {took:.1f}s)"
        )
        return ExitCode.OK
    failed = [k for k, r in res.probes.items() if not r.ok]
    why = "; ".join(res.problems) or f"failed probes: {', '.join(failed)}"
    console.print(f"[bold red]UNHEALTHY[/bold red]: {safe(why)}")
    sys.stdout.flush()
    return ExitCode.UNREACHABLE if res.unreachable else ExitCode.THRESHOLDS
