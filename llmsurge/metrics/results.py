"""Result files: ``requests.jsonl`` and ``telemetry.jsonl`` appended as data arrives, ``summary.json`` atomic."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from llmsurge.metrics.records import RequestRecord
from llmsurge.redaction import has_secrets, redact

RUN_FILES = ("summary.json", "requests.jsonl", "telemetry.jsonl")


class ResultsFolderError(ValueError):
    """The results folder cannot be this run's own; the message names the fix."""


def safe_name(name: str) -> str:
    """``name`` as one path component: letters, digits, ``.``, ``_`` and ``-`` only (``../../x`` → ``x``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60] or "run"


def default_results_folder(label: str, root: Path = Path("llmsurge-results")) -> Path:
    """``llmsurge-results/<date>-<time>-<label>`` (made unique when claimed)."""
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(label)}"


def check_results_folder(folder: Path) -> None:
    """Refuse, in one line, a folder that cannot be this run's own: a file, a folder holding another run, or one
    that cannot be written or created (a probe file is made and removed where it would go). Called before any
    request is sent."""
    if folder.exists() and not folder.is_dir():
        raise ResultsFolderError(f"--output {folder}: that is a file, not a folder: name a new folder")
    if folder.is_dir() and any((folder / f).exists() for f in RUN_FILES):
        raise ResultsFolderError(
            f"--output {folder} already holds a run's results: name a new folder (or leave -o out for a fresh one)"
        )
    where = folder
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise ResultsFolderError(f"--output {folder}: {where} is a file, so the folder cannot be made: name another")
    try:
        fd, probe = tempfile.mkstemp(prefix=".llmsurge-probe-", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsFolderError(
            f"--output {folder}: cannot write in {where} ({exc.strerror or exc}): name a folder you can write to"
        ) from None


def claim_results_folder(folder: Path, unique: bool = False) -> Path:
    """Create the run's folder and return it. ``unique`` (a default name): if another run took that name, take
    ``-2``, ``-3`` … instead, atomically, so two runs started in the same second never share a folder."""
    try:
        if not unique:
            check_results_folder(folder)
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        base, n = folder, 1
        while True:
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                n += 1
                folder = base.with_name(f"{base.name}-{n}")
    except ResultsFolderError:
        raise
    except OSError as exc:
        raise ResultsFolderError(f"--output {folder}: cannot create it ({exc.strerror or exc})") from None


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over: readers never see half a file.

    The text is redacted of every registered secret, whatever put it there."""
    write_text_atomic(path, json.dumps(data, indent=2, default=_default, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (redacted) to a temporary file beside ``path`` and rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if has_secrets():
        text = redact(text)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _default(o: object) -> object:
    tolist = getattr(o, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return tolist()
    return str(o)


def clean_floats(data: Any) -> Any:
    """NaN and infinities become ``None`` so ``summary.json`` is strict JSON."""
    if isinstance(data, float):
        return data if data == data and data not in (float("inf"), float("-inf")) else None
    if isinstance(data, dict):
        return {k: clean_floats(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [clean_floats(v) for v in data]
    return data


class ResultWriter:
    """One run's result folder. Lines are appended and flushed per batch, so a crash loses nothing finished.

    A write that fails (disk full) never raises into the caller (the collector thread must live on): the writer
    keeps the error, stops writing, and tells ``on_error`` once; what was written before stays on disk.
    """

    def __init__(self, folder: str | Path, on_error: Callable[[OSError], None] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._requests = open(self.folder / "requests.jsonl", "x", encoding="utf-8")  # noqa: SIM115
        self._telemetry = open(self.folder / "telemetry.jsonl", "x", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self.error: OSError | None = None
        """The first write that failed; nothing more is appended after it."""
        self.on_error = on_error

    def _append(self, f: TextIO, text: str) -> bool:
        if self.error is not None or f.closed:
            return False
        if has_secrets():
            text = redact(text)
        try:
            f.write(text)
            f.flush()
        except OSError as exc:
            self.error = exc
            if self.on_error is not None:
                self.on_error(exc)
            return False
        return True

    def add_requests(self, records: Iterable[RequestRecord]) -> None:
        """Append finished requests (warm-up ones too, marked as such)."""
        lines = [json.dumps(r.to_json()) for r in records]
        if not lines:
            return
        with self._lock:
            self._append(self._requests, "\n".join(lines) + "\n")

    def add_telemetry(self, sample: dict[str, object]) -> None:
        """Append one telemetry sample."""
        line = json.dumps(clean_floats(sample), default=_default)
        with self._lock:
            self._append(self._telemetry, line + "\n")

    def close(self) -> None:
        """Close the line files (a failing flush on a full disk is already recorded in ``error``)."""
        with self._lock:
            for f in (self._requests, self._telemetry):
                try:
                    f.close()
                except OSError as exc:
                    self.error = self.error or exc
