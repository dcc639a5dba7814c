"""Result files read back are outside text too: each line of ``requests.jsonl`` and each figure of ``summary.json``
is checked for the type every reader expects before any reader uses it, so a malformed file is one line naming the
file, the line and the field — never a traceback (``report``, ``compare``, ``runs``).

What is checked is what is read: a field a reader never uses may hold anything.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from llmsurge.metrics.records import Status

STATUSES = tuple(s.value for s in Status)
NUMBERS = (
    "start_time", "ttft_ms", "ttfc_ms", "tpot_ms", "e2el_ms", "latency_ms", "client_wait_ms", "ttfr_ms",
    "connect_ms", "tls_ms", "headers_ms", "retry_after_s", "server_prompt_ms", "server_decode_ms", "server_queue_ms",
    "ttft_minus_server_prompt_ms",
)  # fmt: skip
"""Fields of a request line that are a finite number or null."""
COUNTS = (
    "segment", "worker", "http_status", "prompt_tokens", "output_tokens", "max_tokens", "cached_tokens",
    "reasoning_chunks", "turn", "inputs", "server_prompt_tokens", "server_cached_tokens", "retries",
)  # fmt: skip
"""Fields of a request line that are a whole number ≥ 0 or null."""
FLAGS = ("warmup", "tokens_estimated", "ignore_eos", "resent", "reused")
TEXTS = (
    "id", "error_kind", "error", "finish_reason", "model", "target", "usage_rejected", "degenerate", "server_source",
)  # fmt: skip
MAX_COUNT = 10**15


class ResultFileError(ValueError):
    """A result file that does not hold what llmsurge wrote; the message names the file, the line and the field."""


MAX_FIGURE = 1e15
"""No figure llmsurge writes is larger (1e15 ms is 31,000 years): a larger one is a file edited by hand."""


def _number(v: object) -> bool:
    return v is None or (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_FIGURE
    )


def _count(v: object) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT)


def row_problem(row: object) -> str:
    """Why a ``requests.jsonl`` line cannot be read ('' when it can): the field and what it must be."""
    if not isinstance(row, dict):
        return f"a line must be a JSON object, not {type(row).__name__}"
    if row.get("status") not in STATUSES:
        return f"field 'status' must be one of {', '.join(STATUSES)}, not {row.get('status')!r:.40}"
    if not isinstance(row.get("segment"), int) or isinstance(row.get("segment"), bool):
        return f"field 'segment' must be a whole number, not {row.get('segment')!r:.40}"
    for key in NUMBERS:
        if not _number(row.get(key)):
            return f"field {key!r} must be a finite number (at most 1e15) or null, not {row[key]!r:.40}"
    for key in COUNTS:
        if not _count(row.get(key)):
            return f"field {key!r} must be a whole number ≥ 0 or null, not {row[key]!r:.40}"
    for key in FLAGS:
        if row.get(key) is not None and not isinstance(row[key], bool):
            return f"field {key!r} must be true, false or null, not {row[key]!r:.40}"
    for key in TEXTS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"field {key!r} must be text or null, not {row[key]!r:.40}"
    itl = row.get("itl_ms")
    if itl is not None and (not isinstance(itl, list) or not all(_number(x) and x is not None for x in itl)):
        return f"field 'itl_ms' must be a list of finite numbers, not {itl!r:.40}"
    quality = row.get("quality")
    if quality is not None and not isinstance(quality, dict):
        return f"field 'quality' must be an object or null, not {quality!r:.40}"
    return ""


def request_rows(path: Path, strict: bool = True) -> Iterator[tuple[int, dict[str, object]]]:
    """Each line of a ``requests.jsonl`` as (line number, row), checked; a last line cut short by a crash is left
    out. :class:`ResultFileError` naming the line and field for the first bad one (``strict``), or bad lines left
    out (not ``strict``: a figure read for a comparison)."""
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                if not line.endswith("\n"):
                    return  # the last line of a run that was killed mid-write
                if strict:
                    raise ResultFileError(f"{path}:{n}: not a JSON line") from None
                continue
            why = row_problem(row)
            if why:
                if strict:
                    raise ResultFileError(f"{path}:{n}: {why}")
                continue
            yield n, row


FIGURE = re.compile(r"^(mean|median|std|min|max|p\d+(\.\d+)?|n)_|_(throughput|rate|tokens|share|goodput|ms|s)$")
FIGURE_KEYS = frozenset({"completed", "failed", "cancelled", "duration", "start_time", "output_tokens_estimated"})
FIGURE_TEXTS = frozenset({"load", "name", "preset", "llmsurge_version", "date", "backend", "model_id"})
"""Keys of a summary (or a segment) that hold text and are read as text."""
SHARES = ("error_rate", "prefix_cache_hit_rate", "good_share", "itl_bunched_share")
"""Keys of a summary (or a segment) that are a fraction of something: between 0 and 1."""


def _figures_problem(d: dict[str, object], where: str) -> str:
    """The first figure of a summary (or a segment) that is not a finite number or null, or text key not text."""
    for key, v in d.items():
        if key in FIGURE_TEXTS:
            if v is not None and not isinstance(v, str):
                return f"{where}field {key!r} must be text, not {v!r:.40}"
        elif (key in FIGURE_KEYS or FIGURE.search(key)) and (isinstance(v, bool) or not _number(v)):
            return f"{where}field {key!r} must be a finite number (at most 1e15) or null, not {v!r:.40}"
    for key in SHARES:
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not 0.0 <= v <= 1.0:
            return f"{where}field {key!r} is a share: it must be between 0 and 1, not {v!r:.40}"
    errors = d.get("errors")
    if errors is not None and (
        not isinstance(errors, dict) or not all(_count(n) and n is not None for n in errors.values())
    ):
        return f"{where}field 'errors' must map each kind to a count, not {errors!r:.40}"
    return ""


def summary_problem(data: object) -> str:
    """Why an llmsurge ``summary.json`` cannot be read ('' when it can)."""
    if not isinstance(data, dict):
        return f"must be a JSON object, not {type(data).__name__}"
    why = _figures_problem(data, "")
    if why:
        return why
    segments = data.get("segments", [])
    if not isinstance(segments, list):
        return f"field 'segments' must be a list, not {segments!r:.40}"
    for i, seg in enumerate(segments):
        if not isinstance(seg, dict):
            return f"segments[{i}] must be an object, not {seg!r:.40}"
        if not isinstance(seg.get("segment"), int) or isinstance(seg.get("segment"), bool):
            return f"segments[{i}]: field 'segment' must be a whole number, not {seg.get('segment')!r:.40}"
        why = _figures_problem(seg, f"segments[{i}]: ")
        if why:
            return why
        for key in ("client", "telemetry", "reconciliation", "roofline"):
            if seg.get(key) is not None and not isinstance(seg[key], dict):
                return f"segments[{i}]: field {key!r} must be an object, not {seg[key]!r:.40}"
    for key in ("config", "server", "client", "roofline", "calibration", "telemetry", "warmup", "search"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"field {key!r} must be an object, not {data[key]!r:.40}"
    if data.get("notes") is not None and not isinstance(data["notes"], list):
        return f"field 'notes' must be a list, not {data['notes']!r:.40}"
    return ""
