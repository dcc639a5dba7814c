"""One worker process: one asyncio loop, one HTTP client (engine/http1.py), closed- or open-loop load, ticks ~20 Hz.

Commands arrive on a multiprocessing queue (read by a small thread and handed to the loop); finished
records and live counters leave in batches (:class:`~llmsurge.metrics.bus.WorkerTick`), never one message
per token or per request. A shared counter hands out request "tickets" so a request budget holds across workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmsurge.engine.arrivals import Arrivals
from llmsurge.engine.client import ChunkCounter, build_body, replay_body, run_request, tool_call_problem
from llmsurge.engine.dataset import DatasetIndex, DatasetReader
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.http1 import WirePool
from llmsurge.engine.prompts import Calibration, PromptFactory
from llmsurge.engine.scenario import Load, PromptCase, RequestShape
from llmsurge.engine.tickets import TAKEN_BASE, TicketsBase
from llmsurge.engine.trace import BlockPrompts, TraceEntry
from llmsurge.images import with_images
from llmsurge.lifetime import (
    die_with_parent,
    event_loop_asked,
    leave_stop_signals_to_parent,
    raise_open_files_limit,
    set_process_name,
)
from llmsurge.metrics.records import Failure, RequestRecord
from llmsurge.metrics.wire import LiveRequest, RequestStart, WorkerCrashed, WorkerMessage, WorkerReady, WorkerTick
from llmsurge.net import Target, tls_context
from llmsurge.quality import BY_PROMPT, TAIL_CHARS, degenerate_reason, judge

TICK_S = 0.05
LIVE_EVERY = 5  # ticks between samples of in-flight requests
LIVE_ROWS = 12
WORKER_PROCESS_NAME = "llmsurge-worker"


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to start. Carries the API key in memory only (never written)."""

    worker_id: int
    target: Target
    calibration: Calibration
    seed: int = 0
    measure_read_delay: bool = False  # benchmarks: record how late stamped chunks are read
    replicas: tuple[Target, ...] = ()
    """Further servers of the same model: requests are spread over ``target`` and these (``balance``)."""
    balance: str = "rr"
    """``rr``: each target in turn; ``least``: the one with the fewest of this worker's requests in flight."""
    models: tuple[str, ...] = ()
    """Several models (LoRA adapters) on the target(s): each request takes the next (empty: ``target.model``)."""
    source: str | None = None
    """The local address its connections bind to (:func:`~llmsurge.engine.client.loopback_source`)."""

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every server requests go to, the first the one discovered."""
        return (self.target, *self.replicas)


@dataclass(frozen=True)
class LoadCommand:
    """Apply ``load`` (this worker's share) with ``shape``; new requests belong to ``segment``. ``slot`` of
    ``slots``: which share of a dataset's shuffled entries this worker sends (``dataset``: the file's index)."""

    segment: int
    load: Load
    shape: RequestShape
    slot: int = 0
    slots: int = 1
    dataset: DatasetIndex | None = None
    trace: tuple[TraceEntry, ...] = ()
    """A trace replay: this worker's share of its requests, each at ``t0_wall`` + its time / the load's speedup."""
    t0_wall: float = 0.0


@dataclass
class Conversation:
    """A simulated user's chat: the history sent with each turn, and how many turns were taken."""

    messages: list[dict[str, object]] = field(default_factory=list)
    turn: int = 0


@dataclass(frozen=True)
class Pause:
    """Start no new requests; those in flight finish."""


@dataclass(frozen=True)
class Resume:
    """Start requests again."""


@dataclass(frozen=True)
class Wake:
    """New tickets were issued: look again."""


@dataclass(frozen=True)
class Stop:
    """Cancel what is in flight, send the last tick and exit. ``overdue``: the run ended and its drain grace
    passed, so what is still in flight failed by timeout (not cancelled by the user)."""

    overdue: bool = False


WorkerCommand = LoadCommand | Pause | Resume | Wake | Stop


class CommandSource(Protocol):
    """Where a worker's commands come from (a multiprocessing queue; a Ray actor gets them as calls instead)."""

    def get(self) -> WorkerCommand: ...


class TickSink(Protocol):
    """Where a worker's ticks go (the pool's queue)."""

    def put(self, item: WorkerMessage) -> None: ...


class Worker:
    """The load loop of one process."""

    def __init__(self, spec: WorkerSpec, commands: CommandSource | None, out: TickSink, tickets: TicketsBase) -> None:
        self.spec = spec
        self.commands = commands
        self.out = out
        self.tickets = tickets
        self.prompts = PromptFactory(spec.calibration, seed=spec.seed * 7919 + spec.worker_id)
        self.counter = ChunkCounter(spec.measure_read_delay)
        self.segment = 0
        self.load = Load(concurrency=0)
        self.shape = RequestShape()
        self.paused = False
        self.stopping = False
        self.generation = 0
        self.seq = 0
        self._turn = 0
        self.target_inflight: list[int] = [0] * len(spec.targets)
        """This worker's requests in flight per target (``least`` balancing)."""
        self.started = 0
        self.starts: list[RequestStart] = []
        self.inflight: dict[str, RequestRecord] = {}
        self.done: list[RequestRecord] = []
        self.overdue = False
        self.taken_index = TAKEN_BASE + spec.worker_id
        self.tokens_adjust = 0
        self.users: dict[int, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.case_index = 0
        self.lengths = random.Random(spec.seed * 7919 + spec.worker_id + 1)
        self.reader: DatasetReader | None = None
        self._prefixes: dict[tuple[int, int], str] = {}
        self.case: PromptCase | None = None
        self.blocks: BlockPrompts | None = None
        self._wake: asyncio.Event
        self._stopped: asyncio.Event

    # ---- control ------------------------------------------------------------------------------

    def on_command(self, cmd: WorkerCommand) -> None:
        """Apply a controller command (runs on the worker's loop)."""
        if isinstance(cmd, LoadCommand):
            self.segment, self.load, self.shape = cmd.segment, cmd.load, cmd.shape
            self._open_dataset(cmd)
            self.generation += 1
            self._apply_load(cmd)
        elif isinstance(cmd, Pause):
            self.paused = True
        elif isinstance(cmd, Resume):
            self.paused = False
        elif isinstance(cmd, Stop):
            self.stopping = True
            self.overdue = cmd.overdue
            for t in [*self.users.values(), *self.tasks]:
                t.cancel()
            self._stopped.set()
        self._wake.set()

    def _open_dataset(self, cmd: LoadCommand) -> None:
        index = cmd.dataset
        if self.reader is not None and (index is None or self.reader.index is not index):
            if index is not None and self.reader.index.path == index.path and self.reader.index.size == index.size:
                return  # the same file, sent again with a new load
            self.reader.close()
            self.reader = None
        if index is not None and self.reader is None:
            self.reader = DatasetReader(index, self.spec.seed, first=cmd.slot, stride=cmd.slots)

    def _apply_load(self, cmd: LoadCommand) -> None:
        loop = asyncio.get_running_loop()
        if self.load.is_open_loop:
            target_users = 0
            if self.load.trace is not None:
                task = loop.create_task(self._replay(self.generation, cmd.trace, cmd.t0_wall))
            else:
                task = loop.create_task(self._arrivals(self.generation))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            target_users = self.load.concurrency or 0
        self.n_users = target_users
        for i in range(target_users):
            if i not in self.users or self.users[i].done():
                t = loop.create_task(self._user(i))
                self.users[i] = t
                t.add_done_callback(self._user_done(i))

    def _user_done(self, idx: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            if self.users.get(idx) is task:
                del self.users[idx]

        return forget

    async def _take_ticket(self) -> bool:
        return await self.tickets.take_async(self.segment, self.taken_index)

    async def _wait_wake(self, timeout: float = 0.2) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    # ---- load ---------------------------------------------------------------------------------

    async def _user(self, idx: int) -> None:
        failures = 0
        conv: Conversation | None = None
        while not self.stopping and idx < self.n_users and not self.load.is_open_loop:
            if self.paused or not await self._take_ticket():
                await self._wait_wake()
                continue
            turns = self.shape.turns
            if turns > 1 and (conv is None or conv.turn >= turns):
                conv = Conversation()  # a new user: a fresh chat
            elif turns <= 1:
                conv = None
            rec = await self._request(conv=conv)
            if rec.ok:
                failures = 0
                if conv is not None and conv.turn < turns and self.shape.think_time > 0:
                    await asyncio.sleep(self.shape.think_time)  # the user reads the answer and types the next turn
            else:
                conv = None  # a failed turn ends the conversation; the next request starts another
                # Back off after failures (up to 0.5 s) so a dead or refusing server is not hammered in a loop;
                # a 429/503 that says when to come back is waited on that long (bounded by the client).
                failures += 1
                await asyncio.sleep(max(min(0.5, 0.005 * 2 ** min(failures, 7)), rec.retry_after or 0.0))

    async def _arrivals(self, generation: int) -> None:
        load = self.load
        share = load.rate or 0.0
        if share <= 0:
            return
        arrivals = Arrivals(share, load.arrival, load.burstiness, seed=self.spec.seed * 31 + self.spec.worker_id)
        loop = asyncio.get_running_loop()
        next_t = loop.time() + arrivals.next_gap()
        while not self.stopping and generation == self.generation:
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopping or generation != self.generation:
                return
            due = next_t  # when this request should go out: a wait for a free slot is ours, not the server's
            next_t += arrivals.next_gap()
            if self.paused:
                await self._wait_wake()
                next_t = loop.time() + arrivals.next_gap()
                continue
            cap = load.max_concurrency
            while cap and len(self.inflight) >= cap and not self.stopping:
                await self._wait_wake(0.01)
            if not await self._take_ticket():
                await self._wait_wake()
                next_t = loop.time() + arrivals.next_gap()
                continue
            task = loop.create_task(self._request(due))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _replay(self, generation: int, entries: tuple[TraceEntry, ...], t0_wall: float) -> None:
        """Send each of a trace's requests at its own time (this worker's share of them)."""
        loop = asyncio.get_running_loop()
        origin = loop.time() + (t0_wall - time.time())  # the trace's zero on this loop's clock
        speedup = self.load.speedup or 1.0
        for entry in entries:
            due = origin + entry.at / speedup
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopping or generation != self.generation:
                return
            while self.paused and not self.stopping:
                await self._wait_wake()
            cap = self.load.max_concurrency
            while cap and len(self.inflight) >= cap and not self.stopping:
                await self._wait_wake(0.01)
            if not await self._take_ticket():
                return  # the replay's budget is spent (or its segment closed)
            task = loop.create_task(self._request(due, entry=entry))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _prefix(self, tokens: int, group: int) -> str:
        """Shared system prompt ``group``: the same in every worker (seeded by the run and the group only), and
        different between runs with different seeds."""
        key = (tokens, group)
        if key not in self._prefixes:
            factory = PromptFactory(self.spec.calibration, seed=self.spec.seed * 1_000_003 + group * 7 + 11)
            self._prefixes[key] = factory.prompt(tokens)
        return self._prefixes[key]

    def _next_prompt(
        self, shape: RequestShape, conv: Conversation | None = None, entry: TraceEntry | None = None
    ) -> tuple[str | list[dict[str, object]], int, int]:
        """What to send: (a user message's text or whole chat messages, max_tokens, expected prompt tokens (0:
        unknown until the server's usage says))."""
        self.case = None
        if entry is not None and entry.body:  # a request body, sent as it was (replay_body)
            return "", entry.output_tokens, 0
        if entry is not None:  # a trace's request: its own lengths, its shared blocks
            if self.blocks is None:
                self.blocks = BlockPrompts(self.spec.calibration, self.spec.seed)
            return self.blocks.prompt(entry, self.prompts), entry.output_tokens, entry.input_tokens
        if shape.cases:
            case = shape.cases[self.case_index % len(shape.cases)]
            self.case_index += 1
            self.case = case
            return case.prompt, case.output_tokens, 0
        max_tokens = shape.output_dist.sample(self.lengths) if shape.output_dist else shape.output_tokens
        messages: list[dict[str, object]]
        expected = 0
        if self.reader is not None:
            row = self.reader.next()
            max_tokens = row.max_tokens or max_tokens
            messages = row.as_messages()
        else:
            n = shape.input_dist.sample(self.lengths) if shape.input_dist else shape.input_tokens
            messages = [{"role": "user", "content": self.prompts.prompt(n)}]
            expected = n
        if conv is not None and conv.messages:  # the history first, then this turn's user message(s)
            messages = [*conv.messages, *(m for m in messages if m.get("role") != "system")]
            expected = 0  # the history's length is the server's to count
        if shape.shared_prefix_tokens and not (conv is not None and conv.messages):
            group = self.lengths.randrange(max(1, shape.prefix_groups))
            system: dict[str, object] = {"role": "system", "content": self._prefix(shape.shared_prefix_tokens, group)}
            messages = [system, *messages]
            expected += shape.shared_prefix_tokens if expected else 0
        if len(messages) == 1 and messages[0]["role"] == "user" and isinstance(messages[0]["content"], str):
            return messages[0]["content"], max_tokens, expected
        return messages, max_tokens, expected

    def _pick_target(self) -> int:
        """Which server the next request goes to: in turn (``rr``), or the least busy by this worker's count."""
        n = len(self.target_inflight)
        if n == 1:
            return 0
        if self.spec.balance == "least":  # ties go to each server in turn, not always to the first
            pick = min(range(n), key=lambda i: (self.target_inflight[i], (i - self._turn) % n))
            self._turn = (pick + 1) % n
            return pick
        self._turn = (self._turn + 1) % n
        return self._turn

    async def _request(
        self, due: float | None = None, conv: Conversation | None = None, entry: TraceEntry | None = None
    ) -> RequestRecord:
        """One request, measured and queued for the next tick; returns its record. ``due``: when an
        open-loop arrival should have been sent (``time.monotonic()``); ``conv``: the chat this turn belongs to
        (it gains the turn and the answer when the request succeeds)."""
        shape = self.shape
        segment = self.segment
        self.seq += 1
        rid = f"{self.spec.worker_id}-{self.seq}"
        which = self._pick_target()
        model = self.spec.models[self.seq % len(self.spec.models)] if self.spec.models else self.spec.target.model
        problem: Exception | None = None
        try:
            prompt, max_tokens, expected_in = self._next_prompt(shape, conv, entry)
            if shape.images:  # chat's alone (the command line and presets refuse them elsewhere)
                prompt = with_images(prompt, shape.images, shape.image_size, self.lengths)
                expected_in = 0  # an image's tokens are the server's to count
            if entry is not None and entry.body:
                body = replay_body(shape, model, entry.body)
            else:
                body = build_body(shape, model, prompt, max_tokens)
        except Exception as exc:  # a dataset changed under the run, a prompt beyond memory: this request's failure
            prompt, max_tokens, expected_in, body = "", 0, 0, b""
            problem = exc
        case = self.case  # the prompt's quality item, when it is one (_next_prompt chose it)
        rec = RequestRecord(rid, segment, self.spec.worker_id, 0.0, time.time(), warmup=segment < 1)
        if conv is not None:
            rec.turn = conv.turn + 1
        rec.text_whole = conv is not None or (case is not None and case.checked)  # the answer is needed whole
        endpoint = ENDPOINTS[shape.endpoint]  # looked up once a request
        pooling = endpoint.pooling
        rec.inputs = endpoint.inputs(shape) if pooling else 0
        rec.prompt_tokens = expected_in * rec.inputs if pooling else expected_in
        rec.max_tokens = 0 if pooling else max_tokens
        rec.ignore_eos = shape.ignore_eos and not pooling and not (entry is not None and entry.body)
        if self.spec.models:
            rec.model = model
        if self.spec.replicas:
            rec.target = self.spec.targets[which].base_url
        self.target_inflight[which] += 1
        rec.body = body
        self.inflight[rid] = rec
        self.started += 1
        rec.start = time.monotonic()
        if due is not None:
            rec.client_wait = max(0.0, rec.start - due)
        self.starts.append(RequestStart(rid, segment, rec.start, rec.wall_start, rec.warmup))
        try:
            if problem is not None:
                raise problem
            await run_request(
                self.client,
                self.urls[which][shape.endpoint],
                self.headers[which][shape.endpoint],
                body,
                shape.streamed,
                rec,
                self.counter,
                shape.timeout,
                self.resend_client,
                endpoint,
            )
        except asyncio.CancelledError:
            if self.overdue:
                rec.fail(Failure.TIMEOUT, "still in flight when the run ended and its drain grace had passed")
            rec.cancel()
            raise
        except Exception as exc:  # a bug or an unexpected library error must not kill the worker
            rec.fail(Failure.CLIENT_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            rec.end = time.monotonic()
            self.target_inflight[which] -= 1
            if conv is not None and rec.ok:
                sent = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
                conv.messages = [*sent, {"role": "assistant", "content": "".join(rec.text)}]
                conv.turn += 1
            if rec.ok:
                judge_answer(rec, case)
            rec.keep_text()
            if rec.ok:
                # Streams were counted chunk by chunk as they arrived; settle on the usage figure.
                counted = (len(rec.itl) + 1 if rec.ttft is not None else 0) if shape.streamed else 0
                self.tokens_adjust += rec.output_tokens - counted
            del self.inflight[rid]
            self.done.append(rec)
            self._wake.set()
        return rec

    # ---- reporting ----------------------------------------------------------------------------

    def _tick(self, lag_ms: float, cpu: float, live: bool, final: bool = False) -> None:
        done, self.done = self.done, []
        tokens = self.counter.chunks + self.tokens_adjust
        self.counter.chunks = 0
        self.tokens_adjust = 0
        starts, self.starts = self.starts, []
        sample = None
        if live:
            recs = sorted(self.inflight.values(), key=lambda r: r.start)[-LIVE_ROWS:]
            sample = [
                LiveRequest(r.request_id, r.segment, r.start, r.ttft, (len(r.itl) + 1) if r.ttft is not None else 0)
                for r in recs
            ]
        delays = None
        if self.counter.delays:
            delays, self.counter.delays = self.counter.delays, []
        self.out.put(
            WorkerTick(
                worker=self.spec.worker_id,
                records=done,
                tokens=tokens,
                started=self.started,
                inflight=len(self.inflight),
                loop_lag_ms=lag_ms,
                cpu=cpu,
                live=sample,
                final=final,
                read_delays=delays,
                starts=starts,
            )
        )

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        last_wall = loop.time()
        last_cpu = time.process_time()
        while not self.stopping:
            expected = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            now = loop.time()
            lag = max(0.0, (now - expected) * 1000.0)
            cpu_now = time.process_time()
            cpu = (cpu_now - last_cpu) / max(now - last_wall, 1e-6)
            last_wall, last_cpu = now, cpu_now
            n += 1
            self._tick(lag, cpu, live=n % LIVE_EVERY == 0)

    def _read_commands(self, loop: asyncio.AbstractEventLoop, commands: CommandSource) -> None:
        while True:
            try:
                cmd = commands.get()
            except (EOFError, OSError):
                cmd = Stop()
            try:
                loop.call_soon_threadsafe(self.on_command, cmd)
            except RuntimeError:  # the loop has closed
                return
            if isinstance(cmd, Stop):
                return

    async def run(self) -> None:
        """Serve commands until told to stop; then cancel what is left and send the last tick."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self.n_users = 0
        targets = self.spec.targets
        bases = [t.base_url for t in targets]
        tls = tls_context(bases)
        self.client = WirePool(tls, self.spec.source)
        self.resend_client = WirePool(tls, self.spec.source, fresh=True)
        self.urls = [{e.name: t.url(e.path) for e in ENDPOINTS.values()} for t in targets]
        self.headers = [{e.name: {**t.headers(), **e.headers(t.api_key)} for e in ENDPOINTS.values()} for t in targets]

        if self.commands is not None:  # a Ray actor gets its commands as method calls instead
            threading.Thread(
                target=self._read_commands, args=(loop, self.commands), daemon=True, name="commands"
            ).start()
        ticker = loop.create_task(self._ticker())
        self.out.put(WorkerReady(worker=self.spec.worker_id, event_loop=type(loop).__module__.partition(".")[0]))
        await self._stopped.wait()
        pending = [*self.users.values(), *self.tasks]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        self._tick(0.0, 0.0, live=True, final=True)
        for client in (self.client, self.resend_client):
            with contextlib.suppress(Exception):
                await client.close()


def judge_answer(rec: RequestRecord, case: PromptCase | None) -> None:
    """A finished answer: is its tail degenerate (every request, from the last few hundred characters), and for a
    quality-set prompt, is it right."""
    item = BY_PROMPT.get(case.prompt) if case is not None and case.checked else None
    whole = "".join(str(t) for t in rec.text) if item is not None else ""  # kept whole: text_whole was set
    rec.keep_text()
    if rec.tool_calls:  # a tool call is its arguments: unusable JSON is counted as a degenerate answer
        rec.degenerate = tool_call_problem(rec.tool_calls)
    else:
        rec.degenerate = degenerate_reason(rec.kept_text[-TAIL_CHARS:], rec.output_tokens, rec.reasoning_chunks)
    if item is not None:
        rec.quality_item = item.name
        rec.quality_ok, rec.quality_why = judge(item, whole)


def event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a worker runs on: uvloop's where it is installed (libuv's loop in C: the socket reads, the
    selector and the callbacks that much of a worker's per-read cost is made of, bench/RESULTS.md), unless
    :data:`~llmsurge.lifetime.EVENT_LOOP_ENV` says ``asyncio``; None: the standard library's. Raises ValueError
    for a value it does not know (the command line says it before any worker starts)."""
    if event_loop_asked() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_on(loop: Callable[[], asyncio.AbstractEventLoop] | None, main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)`` on the loop ``loop`` makes (None: the standard library's)."""
    if loop is None:
        asyncio.run(main)
    elif sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop) as runner:
            runner.run(main)
    else:  # Python 3.10 has no Runner: a policy that makes this loop (policies are deprecated from 3.14 on)
        policy = asyncio.DefaultEventLoopPolicy()
        policy.new_event_loop = loop  # type: ignore[method-assign]
        asyncio.set_event_loop_policy(policy)
        asyncio.run(main)


def worker_main(spec: WorkerSpec | None, commands: CommandSource, out: TickSink, tickets: TicketsBase) -> None:
    """Process entry point: dies with the parent; leaves stop signals to it; holds the target's secrets.

    ``spec`` None: a worker started before the target was known (:meth:`LocalBackend.warm`): its interpreter and
    imports overlap the server's start and discovery, and its :class:`WorkerSpec` is the first thing it is sent."""
    leave_stop_signals_to_parent()  # first: threads started later inherit its signal mask
    die_with_parent()
    raise_open_files_limit()  # a socket per stream: thousands of streams need more than the usual 1,024
    set_process_name(WORKER_PROCESS_NAME)
    if spec is None:
        first: object = commands.get()  # a WorkerSpec, put there by LocalBackend.spawn
        if not isinstance(first, WorkerSpec):
            return  # told to stop (or sent nothing usable) before it had a target: nothing was started
        spec = first
    for target in spec.targets:
        target.register_secrets()
    try:
        run_on(event_loop(), Worker(spec, commands, out, tickets).run())
    except Exception as exc:  # report instead of dying silently
        out.put(WorkerCrashed(worker=spec.worker_id, error=f"{type(exc).__name__}: {exc}"))
