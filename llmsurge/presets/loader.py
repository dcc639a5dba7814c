"""Load and validate preset TOML files into Scenarios; errors name the file, the key and what is allowed."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from llmsurge.engine import limits
from llmsurge.engine.endpoints import DEFAULT as DEFAULT_ENDPOINT
from llmsurge.engine.endpoints import ENDPOINTS
from llmsurge.engine.lengths import LengthDist, LengthError
from llmsurge.engine.scenario import (
    ARRIVALS,
    SEARCH_MODES,
    Load,
    PromptCase,
    RequestShape,
    Scenario,
    Search,
    Stage,
)
from llmsurge.inputs import PRESET_CAP, InputFileError, read_regular
from llmsurge.metrics.slo import SLO_METRICS, SloError, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent

TOP_KEYS = {
    "name",
    "description",
    "reference",
    "warmup",
    "stop_on_plateau",
    "load",
    "length",
    "request",
    "stages",
    "cases",
    "search",
    "slo",
}
SEARCH_KEYS = {"mode", "target", "start", "level_duration", "max_levels"}
LOAD_KEYS = {"concurrency", "rate", "arrival", "burstiness", "max_concurrency", "trace", "speedup"}
LENGTH_KEYS = {"requests", "duration"}
STAGE_KEYS = LOAD_KEYS | LENGTH_KEYS
REQUEST_KEYS = {
    "endpoint",
    "batch",
    "documents",
    "tools",
    "images",
    "stream",
    "input_tokens",
    "output_tokens",
    "ignore_eos",
    "temperature",
    "timeout",
    "dataset",
    "shared_prefix_tokens",
    "prefix_groups",
    "turns",
    "think_time",
    "fill_context",
    "quality",
}
CASE_KEYS = {"name", "prompt", "output_tokens"}


class PresetError(ValueError):
    """A preset that cannot be used; the message says where and what is allowed."""


def user_presets_dir() -> Path:
    """``$LLMSURGE_PRESETS_DIR``, else ``$XDG_CONFIG_HOME/llmsurge/presets`` (``~/.config/…``)."""
    env = os.environ.get("LLMSURGE_PRESETS_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "llmsurge" / "presets"


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> PresetError:
        return PresetError(f"{self.path}: {key}: {msg}")

    def keys(self, table: object, allowed: set[str], where: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(where, "must be a table")
        for k in table:
            if k not in allowed:
                raise self.fail(
                    f"{where}.{k}" if where else k, f"unknown key; allowed here: {', '.join(sorted(allowed))}"
                )
        return table

    def _number(
        self, table: dict[str, Any], key: str, where: str, whole: bool, minimum: float, strict: bool, maximum: float
    ) -> float | None:
        if key not in table:
            return None
        v = table[key]
        ok = isinstance(v, int) if whole else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok:
            raise self.fail(f"{where}{key}", f"must be {'an integer' if whole else 'a number'}, got {v!r}")
        if not math.isfinite(v) or ((v <= minimum) if strict else (v < minimum)) or v > maximum:
            low = f"{'>' if strict else '>='} {minimum:g}"
            raise self.fail(f"{where}{key}", f"must be a finite number {low} and <= {maximum:g}, got {v!r}")
        return float(v)

    def num(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        minimum: float = 0.0,
        strict: bool = True,
        maximum: float = limits.MAX_SECONDS,
    ) -> float | None:
        """A number under ``key`` (None: absent), within its bounds."""
        return self._number(table, key, where, False, minimum, strict, maximum)

    def integer(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        minimum: float = 0.0,
        strict: bool = True,
        maximum: float = limits.MAX_SECONDS,
    ) -> int | None:
        """A whole number under ``key`` (None: absent), within its bounds."""
        v = self._number(table, key, where, True, minimum, strict, maximum)
        return None if v is None else int(v)

    def choice(self, table: dict[str, Any], key: str, where: str, allowed: tuple[str, ...]) -> str | None:
        if key not in table:
            return None
        v = table[key]
        if v not in allowed:
            raise self.fail(f"{where}{key}", f"must be one of {', '.join(allowed)}, got {v!r}")
        return str(v)

    def boolean(self, table: dict[str, Any], key: str, where: str) -> bool | None:
        if key not in table:
            return None
        if not isinstance(table[key], bool):
            raise self.fail(f"{where}{key}", f"must be true or false, got {table[key]!r}")
        return bool(table[key])

    def load(self, t: dict[str, Any], where: str) -> Load:
        conc = self.integer(t, "concurrency", where, 1, strict=False, maximum=limits.MAX_CONCURRENCY)
        rate = self.num(t, "rate", where, maximum=limits.MAX_RATE)
        trace = t.get("trace")
        if trace is not None:
            if not isinstance(trace, str) or not trace or conc is not None or rate is not None:
                raise self.fail(where + "trace", 'a trace file (or "sample") on its own: no concurrency or rate')
            return Load(
                concurrency=None,
                trace=trace,
                speedup=self.num(t, "speedup", where, maximum=limits.MAX_RATE) or 1.0,
                max_concurrency=self.integer(t, "max_concurrency", where, maximum=limits.MAX_CONCURRENCY),
            )
        if conc is None and rate is None:
            raise self.fail(where.rstrip(".") or "load", "needs concurrency = N, rate = R or trace = FILE")
        if rate is not None and conc is not None:
            raise self.fail(where + "rate", "give concurrency or rate, not both (max_concurrency caps a rate)")
        return Load(
            concurrency=conc if rate is None else None,
            rate=rate,
            arrival=self.choice(t, "arrival", where, ARRIVALS) or "poisson",
            burstiness=self.num(t, "burstiness", where) or 1.0,
            max_concurrency=self.integer(t, "max_concurrency", where, maximum=limits.MAX_CONCURRENCY),
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = read_regular(path, "preset", PRESET_CAP)
        return tomllib.loads(raw.decode("utf-8"))
    except InputFileError as exc:
        raise PresetError(str(exc)) from None
    except UnicodeDecodeError:
        raise PresetError(f"{path}: not UTF-8 text (a preset is a TOML file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None


def _stages(c: _Checker, data: dict[str, Any]) -> tuple[Stage, ...]:
    """``[load]`` with ``[length]``, or ``[[stages]]`` (each with its own length, or the file's)."""
    length = c.keys(data.get("length", {}), LENGTH_KEYS, "length")
    requests = c.integer(length, "requests", "length.", maximum=limits.MAX_COUNT)
    duration = c.num(length, "duration", "length.")
    if "stages" not in data:
        load = c.load(c.keys(data.get("load", {}), LOAD_KEYS, "load"), "load.")
        if requests is None and duration is None and load.trace is None:  # a trace's length is its requests
            raise c.fail("length", "needs requests = N or duration = SECONDS")
        return (Stage(load, requests, duration),)
    if "load" in data:
        raise c.fail("stages", "give either [load] or [[stages]], not both")
    raw_stages = data["stages"]
    if not isinstance(raw_stages, list) or not raw_stages:
        raise c.fail("stages", "must be a non-empty array of tables ([[stages]])")
    stages = []
    for i, st in enumerate(raw_stages):
        where = f"stages[{i}]."
        c.keys(st, STAGE_KEYS, f"stages[{i}]")
        s_req = c.integer(st, "requests", where, maximum=limits.MAX_COUNT)
        s_dur = c.num(st, "duration", where)
        if s_req is None and s_dur is None:
            s_req, s_dur = requests, duration
        if s_req is None and s_dur is None:
            raise c.fail(f"stages[{i}]", "needs requests = N or duration = SECONDS")
        stages.append(Stage(c.load(st, where), s_req, s_dur))
    return tuple(stages)


def _cases(c: _Checker, data: dict[str, Any]) -> tuple[PromptCase, ...]:
    raw_cases = data.get("cases", [])
    if not isinstance(raw_cases, list):
        raise c.fail("cases", "must be an array of tables ([[cases]])")
    cases = []
    for i, case in enumerate(raw_cases):
        c.keys(case, CASE_KEYS, f"cases[{i}]")
        prompt = case.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise c.fail(f"cases[{i}].prompt", "must be a non-empty string")
        out = c.integer(case, "output_tokens", f"cases[{i}].", maximum=limits.MAX_COUNT)
        if out is None:
            raise c.fail(f"cases[{i}].output_tokens", "is required")
        cases.append(PromptCase(str(case.get("name", f"case{i}")), prompt, out))
    return tuple(cases)


def _shape(c: _Checker, data: dict[str, Any]) -> RequestShape:
    req = c.keys(data.get("request", {}), REQUEST_KEYS, "request")
    w = "request."
    shape_kwargs: dict[str, Any] = {
        "endpoint": c.choice(req, "endpoint", w, tuple(ENDPOINTS)),
        "stream": c.boolean(req, "stream", w),
        "ignore_eos": c.boolean(req, "ignore_eos", w),
        "temperature": c.num(req, "temperature", w, 0.0, strict=False, maximum=limits.MAX_TEMPERATURE),
        "timeout": c.num(req, "timeout", w),
        "shared_prefix_tokens": c.integer(req, "shared_prefix_tokens", w, maximum=limits.MAX_COUNT),
        "prefix_groups": c.integer(req, "prefix_groups", w, maximum=limits.MAX_CONCURRENCY),
        "turns": c.integer(req, "turns", w, maximum=limits.MAX_TURNS),
        "think_time": c.num(req, "think_time", w, 0.0, strict=False),
        "fill_context": c.num(req, "fill_context", w, maximum=1.0),
        "batch": c.integer(req, "batch", w, maximum=4096),
        "documents": c.integer(req, "documents", w, maximum=4096),
        "tools": c.integer(req, "tools", w, maximum=128),
        "images": c.integer(req, "images", w, maximum=64),
    }
    endpoint = shape_kwargs["endpoint"] or DEFAULT_ENDPOINT
    for other in ENDPOINTS.values():  # an option of another endpoint's: named, never ignored
        for key, _flag in other.options:
            if key in req and other.name != endpoint:
                raise c.fail(
                    f"{w}{key}",
                    f"applies to endpoint {other.name!r} (this preset sends {endpoint!r}):"
                    f" drop it, or send {other.name!r}",
                )
    for key in ("input_tokens", "output_tokens"):
        if key in req:
            try:
                dist = LengthDist.parse(req[key])
            except LengthError as exc:
                raise c.fail(f"{w}{key}", str(exc)) from None
            shape_kwargs[key] = dist.nominal
            shape_kwargs[key.replace("tokens", "dist")] = None if dist.is_fixed else dist
    if "dataset" in req:
        ds = req["dataset"]
        if not isinstance(ds, str) or not ds:
            raise c.fail(f"{w}dataset", "must be a file path (relative to the preset's folder) or a bundled name")
        beside = c.path.parent / Path(ds).expanduser()
        shape_kwargs["dataset"] = str(beside) if not Path(ds).expanduser().is_absolute() and beside.exists() else ds
    cases = _cases(c, data)
    if c.boolean(req, "quality", w):
        from llmsurge.quality import ITEMS

        cases += tuple(PromptCase(i.name, i.prompt, i.max_tokens, checked=True) for i in ITEMS)
    return RequestShape(**{k: v for k, v in shape_kwargs.items() if v is not None}, cases=cases)


def _search(c: _Checker, data: dict[str, Any]) -> Search | None:
    if "search" not in data:
        return None
    t = c.keys(data["search"], SEARCH_KEYS, "search")
    w = "search."
    default = Search()
    return Search(
        mode=c.choice(t, "mode", w, SEARCH_MODES) or default.mode,
        target=c.num(t, "target", w, maximum=1.0) or default.target,
        start=c.num(t, "start", w, maximum=limits.MAX_RATE) or default.start,
        level_duration=c.num(t, "level_duration", w) or default.level_duration,
        max_levels=c.integer(t, "max_levels", w, maximum=64) or default.max_levels,
    )


def _slo(c: _Checker, data: dict[str, Any]) -> str:
    """``[slo]`` ``ttft = "500ms"`` (or a number of ms) → the ``--slo`` spelling, checked."""
    if "slo" not in data:
        return ""
    table = c.keys(data["slo"], set(SLO_METRICS), "slo")
    parts = []
    for metric, value in table.items():
        text = f"{value}ms" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        try:
            parse_duration(text, metric)
        except SloError as exc:
            raise c.fail(f"slo.{metric}", f'must be a duration like "500ms" or "2s" ({exc})') from None
        parts.append(f"{metric}={text}")
    return ",".join(parts)


def load_preset_file(path: str | Path) -> Scenario:
    """Parse and validate one preset file."""
    path = Path(path)
    data = _read_toml(path)
    c = _Checker(path)
    c.keys(data, TOP_KEYS, "")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise c.fail("name", "must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise c.fail("description", "must be a string")
    search = _search(c, data)
    stages = (Stage(search.load_at(search.start), duration=search.level_duration),) if search else _stages(c, data)
    return Scenario(
        name=name,
        description=description,
        stages=stages,
        shape=_shape(c, data),
        warmup=c.integer(data, "warmup", "", 0, strict=False, maximum=limits.MAX_COUNT) or 0,
        stop_on_plateau=c.boolean(data, "stop_on_plateau", "") or False,
        reference=str(data.get("reference", "")),
        search=search,
        slo=_slo(c, data),
    )


def _preset_files() -> dict[str, Path]:
    """Name → file; a user preset with a built-in's name replaces it."""
    files = {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    udir = user_presets_dir()
    if udir.is_dir():
        files.update({p.stem: p for p in sorted(udir.glob("*.toml"))})
    return files


def list_presets() -> list[tuple[Scenario | None, Path, str]]:
    """Every preset as (scenario or None, file, error message or '')."""
    out: list[tuple[Scenario | None, Path, str]] = []
    for _name, path in sorted(_preset_files().items()):
        try:
            out.append((load_preset_file(path), path, ""))
        except PresetError as exc:
            out.append((None, path, str(exc)))
    return out


def is_preset_path(name_or_file: str) -> bool:
    """Whether ``name_or_file`` names a file rather than a preset."""
    return name_or_file.endswith(".toml") or any(c in name_or_file for c in "/\\") or name_or_file.startswith(".")


def find_preset(name_or_file: str, by_name: bool = False) -> Scenario:
    """A preset by name (built-in or user) or by path to a TOML file; ``by_name``: names only (the live API: a
    path there would open any file the run's user can read)."""
    if is_preset_path(name_or_file):
        if by_name:
            raise PresetError(
                f"a preset is given by its name (llmsurge presets lists them), not a path: {name_or_file!r}"
            )
        return load_preset_file(Path(name_or_file).expanduser())
    files = _preset_files()
    if name_or_file not in files:
        raise PresetError(
            f"no preset named {name_or_file!r}; available: {', '.join(sorted(files))}"
            f" (or put NAME.toml in {user_presets_dir()})"
        )
    return load_preset_file(files[name_or_file])
