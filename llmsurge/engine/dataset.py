"""Prompt files: JSONL (OpenAI chat ``messages``, or ``prompt``; optional ``max_tokens``) and ShareGPT-style
``conversations`` (``from``/``value``), one per line or as one JSON array.

A file is read once, streamed, to index where its good entries start (8 bytes each: a 1 GB file is never held in
memory); a bad entry is named (``file:line: what is wrong``), counted and skipped. Workers read the entries they
send by seeking to them, in an order shuffled with the run's seed and dealt out between workers, so no entry is
sent twice before the file has gone round once.
"""

from __future__ import annotations

import codecs
import json
import threading
from array import array
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from llmsurge.engine import limits
from llmsurge.inputs import DATASET_CAP, InputFileError, open_regular

BUILTIN = {"sample": "sample-chats.jsonl"}
"""Datasets that ship with llmsurge, by name (``--dataset sample``)."""
SHOWN_BAD = 5
"""Bad entries named one by one; the rest are counted."""
CHUNK = 1 << 20
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
WORDS_TO_TOKENS = 1.3
"""Tokens per word of English, to size ``max_tokens`` from a reference answer when the entry gives none."""


class DatasetError(ValueError):
    """A dataset that cannot be used at all; the message names the file and the fix."""


@dataclass(frozen=True)
class Entry:
    """One request's worth of a dataset: chat ``messages`` or a ``prompt``, and ``max_tokens`` when known."""

    messages: tuple[dict[str, object], ...] = ()
    prompt: str = ""
    max_tokens: int | None = None

    def as_prompt(self) -> str:
        """The entry as one piece of text (for /v1/completions)."""
        if self.prompt:
            return self.prompt
        return "\n\n".join(_text(m.get("content")) for m in self.messages)

    def as_messages(self) -> list[dict[str, object]]:
        """The entry as chat messages (a ``prompt`` becomes one user message)."""
        return [dict(m) for m in self.messages] if self.messages else [{"role": "user", "content": self.prompt}]


@dataclass(frozen=True)
class DatasetIndex:
    """Where a file's good entries start, and what was wrong with the others."""

    path: str
    offsets: bytes = field(repr=False)  # array('q').tobytes(): byte offsets of the good entries
    line_numbers: bytes = field(repr=False)  # array('q'): the line each starts on (for messages)
    json_array: bool = False
    bad: int = 0
    bad_examples: tuple[str, ...] = ()
    size: int = 0
    mtime: float = 0.0

    @property
    def entries(self) -> int:
        """How many good entries the file has."""
        return len(self.offsets) // 8

    def describe(self) -> str:
        """``data.jsonl: 1,204 entries (3 bad lines skipped)``."""
        bad = f" ({self.bad:,} bad entr{'y' if self.bad == 1 else 'ies'} skipped)" if self.bad else ""
        return f"{self.path}: {self.entries:,} entries{bad}"


def resolve(name_or_path: str) -> Path:
    """A path, or the name of a bundled dataset; :class:`DatasetError` naming the fix when there is none."""
    if name_or_path in BUILTIN:
        return Path(str(resources.files("llmsurge.data").joinpath(BUILTIN[name_or_path])))
    p = Path(name_or_path).expanduser()
    if not p.exists():
        raise DatasetError(
            f"{name_or_path}: no such dataset file (give a JSONL or JSON file, or one of: {', '.join(BUILTIN)})"
        )
    if p.is_dir():
        raise DatasetError(f"{name_or_path}: is a folder; give a JSONL or JSON file")
    try:
        open_regular(p, "--dataset", DATASET_CAP).close()  # a FIFO or a device would never end
    except InputFileError as exc:
        raise DatasetError(str(exc)) from None
    return p


def parse_entry(obj: object) -> Entry:
    """An entry from one JSON value; ``ValueError`` saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    max_tokens = obj.get("max_tokens", obj.get("output_len"))
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= limits.MAX_COUNT
    ):
        raise ValueError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("messages must be a non-empty list")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
                raise ValueError(f"messages[{i}] needs a role and a content")
        answer = None
        if msgs[-1]["role"] == "assistant" and len(msgs) > 1:  # a reference answer: its length sizes the output
            answer, msgs = msgs[-1], msgs[:-1]
        if max_tokens is None and answer is not None:
            max_tokens = _tokens_of(_text(answer.get("content")))
        return Entry(messages=tuple(msgs), max_tokens=max_tokens)
    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        return Entry(prompt=prompt, max_tokens=max_tokens)
    if "conversations" in obj:
        conv = obj["conversations"]
        if not isinstance(conv, list):
            raise ValueError("conversations must be a list of {from, value}")
        msgs = []
        for i, turn in enumerate(conv):
            who = turn.get("from") if isinstance(turn, dict) else None
            value = turn.get("value") if isinstance(turn, dict) else None
            if who not in ROLES or not isinstance(value, str):
                raise ValueError(f"conversations[{i}] needs from (human, gpt, system) and a string value")
            role = ROLES[who]
            if role == "assistant":
                if any(m["role"] == "user" for m in msgs):  # the first answer: the rest is not this request's
                    return Entry(messages=tuple(msgs), max_tokens=max_tokens or _tokens_of(value))
                continue
            msgs.append({"role": role, "content": value})
        if not any(m["role"] == "user" for m in msgs):
            raise ValueError("conversations has no human turn")
        return Entry(messages=tuple(msgs), max_tokens=max_tokens)
    raise ValueError("no 'messages', 'prompt' or 'conversations' key")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _tokens_of(text: str) -> int | None:
    words = len(text.split())
    return max(1, round(words * WORDS_TO_TOKENS)) if words else None


_cache: dict[str, DatasetIndex] = {}
_cache_lock = threading.Lock()


def load_index(name_or_path: str) -> DatasetIndex:
    """The index of a dataset (built once per process and file version); :class:`DatasetError` when the file
    cannot be read or has no good entry."""
    path = resolve(name_or_path)
    st = path.stat()
    key = str(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and (hit.size, hit.mtime) == (st.st_size, st.st_mtime):
            return hit
    index = build_index(path)
    with _cache_lock:
        _cache[key] = index
    return index


def build_index(path: Path) -> DatasetIndex:
    """Read ``path`` once, streamed, and index its good entries."""
    try:
        with open_regular(path, "--dataset", DATASET_CAP) as f:
            head = f.read(4096).lstrip()
            f.seek(0)
            is_array = head.startswith(b"[")
            offsets, lines, bad, examples = _index_array(f, path) if is_array else _index_lines(f, path)
        st = path.stat()
    except InputFileError as exc:
        raise DatasetError(str(exc)) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not len(offsets):
        why = f"; e.g. {examples[0]}" if examples else ""
        raise DatasetError(f"{path}: no usable entry (each needs 'messages', 'prompt' or 'conversations'){why}")
    return DatasetIndex(
        str(path), offsets.tobytes(), lines.tobytes(), is_array, bad, tuple(examples), st.st_size, st.st_mtime
    )


def _index_lines(f: BinaryIO, path: Path) -> tuple[array[int], array[int], int, list[str]]:
    offsets, lines = array("q"), array("q")
    bad, examples = 0, list[str]()
    pos = 0
    for n, raw in enumerate(f, start=1):
        start = pos
        pos += len(raw)
        if not raw.strip():
            continue
        try:
            parse_entry(json.loads(raw))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            bad += 1
            if len(examples) < SHOWN_BAD:
                examples.append(f"{path.name}:{n}: {_why(exc)}")
            continue
        offsets.append(start)
        lines.append(n)
    return offsets, lines, bad, examples


def _why(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


def _index_array(f: BinaryIO, path: Path) -> tuple[array[int], array[int], int, list[str]]:
    """A JSON array, element by element, without holding the file: ``raw_decode`` over a sliding window."""
    offsets, lines = array("q"), array("q")
    bad, examples = 0, list[str]()
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    pos = 0  # where reading is in buf
    byte, line = 0, 1  # the byte offset and line number of buf[pos]
    eof, opened = False, False
    space = " \t\r\n,"

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        data = f.read(CHUNK)
        eof = not data
        buf = buf[pos:] + utf8.decode(data, final=eof)  # keep only what is not read yet
        pos = 0
        return bool(data)

    def advance(to: int) -> None:
        nonlocal pos, byte, line
        gone = buf[pos:to]
        byte += len(gone.encode())
        line += gone.count("\n")
        pos = to

    while True:
        n = len(buf)
        j = pos
        while j < n and buf[j] in space:
            j += 1
        advance(j)
        if pos >= n:
            if not more():
                break
            continue
        if not opened:
            if buf[pos] != "[":
                raise DatasetError(f"{path}: not a JSON array nor JSON lines")
            advance(pos + 1)
            opened = True
            continue
        if buf[pos] == "]":
            break
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if more():
                continue  # the element runs past the window
            bad += 1
            if len(examples) < SHOWN_BAD:
                examples.append(f"{path.name}:{line + buf.count(chr(10), pos, exc.pos)}: not JSON ({exc.msg})")
            break  # a broken array cannot be resynchronised
        try:
            parse_entry(obj)
            offsets.append(byte)
            lines.append(line)
        except ValueError as exc:
            bad += 1
            if len(examples) < SHOWN_BAD:
                examples.append(f"{path.name}:{line}: {exc}")
        advance(end)
    return offsets, lines, bad, examples


class DatasetReader:
    """A worker's view of a dataset: entries in the run's shuffled order, every ``stride``-th from ``first``."""

    def __init__(self, index: DatasetIndex, seed: int, first: int = 0, stride: int = 1) -> None:
        self.index = index
        import numpy as np  # here, not at the top: a worker without a dataset starts without numpy

        self._offsets = np.frombuffer(index.offsets, dtype=np.int64)
        self._order = np.random.default_rng(seed).permutation(len(self._offsets))
        self._next = first % max(1, len(self._order))
        self._stride = max(1, stride)
        self._file = open(index.path, "rb")  # noqa: SIM115 - held for the run, closed by close()
        self._decoder = json.JSONDecoder()

    def next(self) -> Entry:
        """The next entry of this worker's share (round again when the file is used up)."""
        i = int(self._order[self._next])
        self._next = (self._next + self._stride) % len(self._order)
        return self.read(i)

    def read(self, i: int) -> Entry:
        """Entry ``i`` of the index."""
        f = self._file
        f.seek(int(self._offsets[i]))
        if not self.index.json_array:
            return parse_entry(json.loads(f.readline()))
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        while True:
            data = f.read(64 * 1024)
            text += utf8.decode(data, final=not data)
            try:
                obj, _ = self._decoder.raw_decode(text)
                return parse_entry(obj)
            except json.JSONDecodeError:
                if not data:
                    raise

    def close(self) -> None:
        """Close the file."""
        self._file.close()
