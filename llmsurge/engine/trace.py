"""Trace replay: production traffic sent again at its own times, with its own lengths and shared prefixes.

Four forms, told apart by their content:

- **Mooncake** JSONL — ``timestamp`` (ms from the start), ``input_length``, ``output_length`` and ``hash_ids``: each
  id one 512-token block of the prompt, so requests that share an id share that block and a prefix cache acts as it
  did in production;
- a run's own **requests.jsonl** (its start times, prompt and output lengths; no shared blocks);
- **BurstGPT**'s CSV — ``Timestamp`` (seconds), ``Model``, ``Request tokens``, ``Response tokens``, … (its failed
  requests, with no response tokens, are skipped and counted);
- **request bodies**: JSONL of ``{"timestamp": MS, "body": {...}}``, the body as production sent it (``messages``
  for chat, ``prompt`` for completions, with its ``max_tokens``, ``tools``, ``temperature`` …), replayed as it was:
  only the model is the run's, and the stream asked for so that each token is timed.

Bad lines are named ``file:line: why`` and skipped, as datasets' are.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmsurge.engine.prompts import Calibration, PromptFactory
from llmsurge.inputs import TRACE_CAP, InputFileError, open_regular

BLOCK_TOKENS = 512
"""Tokens per hash block (Mooncake's)."""
MAX_SPAN_S = 24 * 3600.0
"""The longest a trace may last as replayed (after ``--speedup``): a day. A timestamp beyond it (1e308 ms, say) is a
bad line, and a speedup that stretches a trace past it is refused."""
MAX_TOKENS = 1 << 20
"""The longest prompt or answer a trace line may ask for where the server's context is not known (a million
tokens); where it is known, the context is the bound."""
MAX_ENTRIES = 1_000_000
SAMPLE = "sample"
"""``--trace sample``: the small trace bundled with llmsurge (200 requests, shared system prompts and chats)."""
EXAMPLES = 3


class TraceError(ValueError):
    """A trace that cannot be replayed; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One request of a trace: when (seconds from the start), how long in and out, and its shared blocks."""

    at: float
    input_tokens: int  # 0: not known until the server counts it (a request body)
    output_tokens: int  # 0: the body set no max_tokens (the server's default)
    hash_ids: tuple[int, ...] = ()
    line: int = 0  # where it is in its file (to name it)
    body: str = ""
    """A request body to send as it is (JSON text; the run's model and stream put in): a bodies trace's line."""


@dataclass(frozen=True)
class Trace:
    """A trace read whole (it is replayed whole: its entries are dealt out between the workers)."""

    path: str
    entries: tuple[TraceEntry, ...]
    bad: int = 0
    bad_examples: tuple[str, ...] = ()
    form: str = "mooncake"
    endpoint: str = ""
    """The endpoint its request bodies are for (``chat``: messages, ``completions``: prompt); '' for lengths."""

    @property
    def span(self) -> float:
        """Seconds from the first request to the last, at the trace's own speed."""
        return self.entries[-1].at if self.entries else 0.0

    @property
    def shares_blocks(self) -> bool:
        """Whether some requests share a prompt block (a prefix cache will be hit on purpose)."""
        seen: set[int] = set()
        for e in self.entries:
            if seen & set(e.hash_ids):
                return True
            seen.update(e.hash_ids)
        return False

    def beyond(self, context: int | None) -> str:
        """The first line whose prompt and answer do not fit in the server's ``context`` tokens, named ('' when
        every one fits, or the context is not known)."""
        if not context:
            return ""
        name = Path(self.path).name
        for e in self.entries:
            if e.input_tokens and e.input_tokens + e.output_tokens > context:
                return (
                    f"{name}:{e.line}: input_length {e.input_tokens:,} + output_length {e.output_tokens:,} is more"
                    f" than the server's context of {context:,} tokens: cut such lines from the trace"
                )
        return ""

    def endpoint_problem(self, endpoint: str) -> str:
        """Why its request bodies cannot go to ``endpoint`` ('' when they can, or it holds lengths only)."""
        if not self.endpoint or self.endpoint == endpoint:
            return ""
        key = "messages" if self.endpoint == "chat" else "prompt"
        return (
            f"--trace {self.path}: its request bodies are {self.endpoint} requests ({key}):"
            f" use --endpoint {self.endpoint}"
        )

    def describe(self) -> str:
        """``sample: 200 requests over 59.8 s (mooncake; 3 bad lines skipped)``."""
        skipped = f"; {self.bad} bad line(s) skipped" if self.bad else ""
        return f"{self.path}: {len(self.entries):,} requests over {self.span:.1f} s ({self.form}{skipped})"


def _whole(row: dict[str, object], key: str, low: int = 0, high: int = MAX_TOKENS) -> int:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) or int(v) < low:
        raise ValueError(f"{key} must be a whole number ≥ {low}, not {v!r}")
    if v > high:
        raise ValueError(f"{key} {int(v):,} is more than the {high:,} tokens a request may ask for")
    return int(v)


def _when(v: object, key: str, scale: float) -> float:
    """A line's time in seconds from ``v`` (in units of ``scale`` seconds): finite, ≥ 0 and within a day."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{key} must be a finite time ≥ 0, not {v!r}")
    if v * scale > MAX_SPAN_S:
        raise ValueError(f"{key} {v!r} is more than a day from the start ({MAX_SPAN_S:,.0f} s)")
    return float(v) * scale


def _entry(row: object) -> tuple[TraceEntry, str]:
    """One line as an entry, and its form (``mooncake`` or ``requests.jsonl``); ``ValueError`` saying why not."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    if "body" in row:
        return _body_entry(row), "bodies"
    if "timestamp" in row:
        at = _when(row["timestamp"], "timestamp (ms)", 0.001)
        ids = row.get("hash_ids") or []
        if not isinstance(ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in ids):
            raise ValueError("hash_ids must be a list of whole numbers")
        inp = _whole(row, "input_length", 1)
        if ids and inp > BLOCK_TOKENS * len(ids):
            raise ValueError(f"input_length {inp} is longer than its {len(ids)} block(s) of {BLOCK_TOKENS} tokens")
        return TraceEntry(at, inp, _whole(row, "output_length", 1), tuple(ids)), "mooncake"
    if "start_time" in row:  # a run's requests.jsonl: its own arrivals and lengths
        if row.get("warmup"):
            raise LookupError("a warm-up request")
        at = row["start_time"]  # wall-clock seconds: made relative to the first line below
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise ValueError(f"start_time must be seconds, not {at!r}")
        out = row.get("max_tokens") or row.get("output_tokens")
        inp = _whole(row, "prompt_tokens", 1)
        return TraceEntry(float(at), inp, _whole({"output_length": out}, "output_length", 1)), "requests.jsonl"
    raise ValueError("no timestamp (a Mooncake trace) or start_time (a run's requests.jsonl)")


BODY_ENDPOINTS = (("messages", "chat"), ("prompt", "completions"))
"""A request body's key → the endpoint it is for."""


def body_endpoint(body: dict[str, object]) -> str:
    """``chat`` for a body with ``messages``, ``completions`` for one with ``prompt``; ValueError otherwise."""
    for key, endpoint in BODY_ENDPOINTS:
        if key in body:
            return endpoint
    raise ValueError("body has neither messages (chat) nor prompt (completions)")


def _body_entry(row: dict[str, object]) -> TraceEntry:
    """A line of a bodies trace: ``timestamp`` (ms) and the ``body`` as sent."""
    at = _when(row.get("timestamp"), "timestamp (ms)", 0.001)
    body = row["body"]
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object (the request as sent)")
    body_endpoint(body)
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    out = 0 if limit is None else _whole({"max_tokens": limit}, "max_tokens", 1)
    return TraceEntry(at, 0, out, body=json.dumps(body, separators=(",", ":"), ensure_ascii=False))


BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


def _burstgpt(rows: Iterable[dict[str, str]], name: str, bad: list[str]) -> Iterator[TraceEntry]:
    """BurstGPT's CSV rows as entries (line numbers from 2: the header is line 1)."""
    for n, row in enumerate(rows, 2):
        try:
            values = {k: float(row.get(k) or "nan") for k in BURSTGPT_COLUMNS}
            if values["Response tokens"] == 0:
                raise ValueError("Response tokens 0: a request that failed in production")
            at = _when(values["Timestamp"], "Timestamp (s)", 1.0)
            inp = _whole({"Request tokens": values["Request tokens"]}, "Request tokens", 1)
            out = _whole({"Response tokens": values["Response tokens"]}, "Response tokens", 1)
        except ValueError as exc:
            bad.append(f"{name}:{n}: {exc}")
            continue
        yield TraceEntry(at, inp, out, line=n)


def load_trace(spec: str) -> Trace:
    """Read a trace file (or ``sample``); :class:`TraceError` naming the fix when nothing in it can be sent."""
    if spec == SAMPLE:
        path = Path(str(resources.files("llmsurge.data").joinpath("sample-trace.jsonl")))
    else:
        path = Path(spec).expanduser()
    try:
        f = io.TextIOWrapper(open_regular(path, "--trace", TRACE_CAP), encoding="utf-8-sig", errors="replace")
    except InputFileError as exc:
        raise TraceError(f"{exc}: name a JSONL trace file") from None
    entries: list[TraceEntry] = []
    bad: list[str] = []
    forms: set[str] = set()
    endpoints: set[str] = set()
    with f:
        head = f.readline()
        f.seek(0)
        if head.startswith("Timestamp,"):  # BurstGPT's CSV (its header names the columns)
            reader = csv.DictReader(f)
            missing = [c for c in BURSTGPT_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TraceError(f"--trace {spec}: a CSV without {', '.join(missing)}: give BurstGPT's columns")
            for entry in _burstgpt(reader, path.name, bad):
                entries.append(entry)
                if len(entries) > MAX_ENTRIES:
                    raise TraceError(f"--trace {spec}: more than {MAX_ENTRIES:,} requests: cut it into parts")
            forms.add("burstgpt")
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                entry, form = _entry(row)
            except LookupError:
                continue
            except ValueError as exc:
                why = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
                bad.append(f"{path.name}:{n}: {why}")
                continue
            if entry.body:
                endpoints.add(body_endpoint(row["body"]))
            entries.append(dataclasses.replace(entry, line=n))
            forms.add(form)
            if len(entries) > MAX_ENTRIES:
                raise TraceError(f"--trace {spec}: more than {MAX_ENTRIES:,} requests: cut it into parts")
    if not entries:
        first = f" (first: {bad[0]})" if bad else ""
        raise TraceError(
            f"--trace {spec}: no request in it could be read{first}: give a Mooncake JSONL trace, BurstGPT's CSV,"
            " a JSONL of request bodies or a run's requests.jsonl"
        )
    if "bodies" in forms and len(forms) > 1:
        raise TraceError(f"--trace {spec}: request bodies mixed with lengths: give one form of trace a file")
    if len(endpoints) > 1:
        raise TraceError(f"--trace {spec}: bodies for both chat (messages) and completions (prompt): one a file")
    entries.sort(key=lambda e: e.at)
    t0 = entries[0].at
    entries = [dataclasses.replace(e, at=e.at - t0) for e in entries]
    if entries[-1].at > MAX_SPAN_S:
        raise TraceError(
            f"--trace {spec}: it spans {entries[-1].at / 3600:,.0f} hours ({path.name}:{entries[-1].line} is the"
            " last): a trace may last a day; cut it into parts"
        )
    label = SAMPLE if spec == SAMPLE else str(path)
    endpoint = next(iter(endpoints), "")
    return Trace(label, tuple(entries), len(bad), tuple(bad[:EXAMPLES]), "/".join(sorted(forms)), endpoint)


@functools.lru_cache(maxsize=4)
def cached_trace(spec: str) -> Trace:
    """:func:`load_trace`, read once per process (the session checks it, the pool deals it out)."""
    return load_trace(spec)


class BlockPrompts:
    """Prompts built from hash blocks: block ``h`` is the same text in every worker of a run (seeded by the run and
    ``h``), so requests that share an id share that prompt prefix; different runs (seeds) share nothing."""

    CACHE = 4096

    def __init__(self, calibration: Calibration, seed: int) -> None:
        self.calibration = calibration
        self.seed = seed
        self.words_per_block = max(1, round(BLOCK_TOKENS / max(calibration.tokens_per_word, 0.05)))
        self._blocks: dict[int, list[str]] = {}

    def _block(self, h: int) -> list[str]:
        words = self._blocks.get(h)
        if words is None:
            if len(self._blocks) >= self.CACHE:
                self._blocks.pop(next(iter(self._blocks)))
            factory = PromptFactory(self.calibration, seed=self.seed * 1_000_003 + h * 7919 + 17)
            words = factory.words(self.words_per_block).split(" ")
            self._blocks[h] = words
        return words

    def prompt(self, entry: TraceEntry, fresh: PromptFactory) -> str:
        """The prompt of ``entry``: its blocks in order, cut to its input length (a fresh random prompt of that
        length when it names none)."""
        if not entry.hash_ids:
            return fresh.prompt(entry.input_tokens)
        wanted = self.calibration.words_for(entry.input_tokens)
        words: list[str] = []
        for h in entry.hash_ids:
            words.extend(self._block(h))
            if len(words) >= wanted:
                break
        return " ".join(words[:wanted])
