"""Result files: ``requests.jsonl`` and ``telemetry.jsonl`` appended as data arrives, ``summary.json`` atomic."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llmsurge.metrics.records import RequestRecord


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=_default, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
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
    """One run's result folder. Lines are appended and flushed per batch, so a crash loses nothing finished."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._requests = open(self.folder / "requests.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._telemetry = open(self.folder / "telemetry.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self.requests_written = 0

    def add_requests(self, records: Iterable[RequestRecord]) -> None:
        """Append finished requests (warm-up ones too, marked as such)."""
        lines = [json.dumps(r.to_json()) for r in records]
        if not lines:
            return
        with self._lock:
            if self._requests.closed:
                return
            self._requests.write("\n".join(lines) + "\n")
            self._requests.flush()
            self.requests_written += len(lines)

    def add_telemetry(self, sample: dict[str, Any]) -> None:
        """Append one telemetry sample."""
        line = json.dumps(clean_floats(sample), default=_default)
        with self._lock:
            if not self._telemetry.closed:
                self._telemetry.write(line + "\n")
                self._telemetry.flush()

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` atomically (may be called again to update it)."""
        path = self.folder / "summary.json"
        write_json_atomic(path, clean_floats(summary))
        return path

    def close(self) -> None:
        """Close the line files."""
        with self._lock:
            self._requests.close()
            self._telemetry.close()
