"""Command palette: every steering action, plus exact values typed in ("concurrency 48", "rate 12.5")."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from llmsurge.engine import limits
from llmsurge.metrics.slo import SloError, parse_duration
from llmsurge.presets import list_presets

if TYPE_CHECKING:
    from llmsurge.tui.app import LLMSurgeApp

_CONCURRENCY = re.compile(r"^\s*(?:concurrency|c)\s*=?\s*(\d+)\s*$", re.I)
_BASELINE = re.compile(r"^\s*baseline\s+(\S.*?)\s*$", re.I)
_SLO = re.compile(r"^\s*slo\s+(ttft|ttfc|tpot|itl|e2el)\s*=?\s*(off|none|[0-9.]+\s*(?:ms|s)?)\s*$", re.I)
_QUALITY = re.compile(r"^\s*quality\s+(\d+)\s*$", re.I)
_RATE = re.compile(r"^\s*(?:rate|r)\s*=?\s*(\d+(?:\.\d*)?|\.\d+)\s*$", re.I)


class LoadCommands(Provider):
    """Steering commands for the palette."""

    @property
    def surge(self) -> LLMSurgeApp:
        """The app (typed)."""
        return self.app  # type: ignore[return-value]

    def _actions(self) -> list[tuple[str, Callable[[], object], str]]:
        a = self.surge
        return [
            ("Concurrency +1", partial(a.steering.step_concurrency, 1), "one more request in flight (+)"),
            ("Concurrency -1", partial(a.steering.step_concurrency, -1), "one fewer request in flight (-)"),
            ("Double concurrency", partial(a.steering.scale, 2), "× 2 requests in flight (])"),
            ("Halve concurrency", partial(a.steering.scale, 0.5), "÷ 2 requests in flight ([)"),
            ("Raise request rate", partial(a.steering.step_rate, 1), "open loop, faster arrivals (r)"),
            ("Lower request rate", partial(a.steering.step_rate, -1), "open loop, slower arrivals (R)"),
            ("Pause / resume", a.steering.toggle_pause, "stop starting requests; in flight drain (space)"),
            ("Switch preset…", a.steering.pick_preset, "pick a preset scenario; the run goes on (p)"),
            ("Save results now", a.action_save, "write summary.json (s)"),
            ("Quit and save", a.action_quit_and_save, "stop the load, save, leave (q)"),
        ]

    async def discover(self) -> Hits:
        for name, cb, help_ in self._actions():
            yield DiscoveryHit(name, cb, help=help_)
        yield DiscoveryHit("concurrency N", lambda: None, help="type e.g. 'concurrency 48' to set it exactly")
        yield DiscoveryHit("rate R", lambda: None, help="type e.g. 'rate 12.5' for R requests/s (open loop)")
        yield DiscoveryHit("slo METRIC VALUE", lambda: None, help="type e.g. 'slo ttft 300ms' (or 'slo ttft off')")
        yield DiscoveryHit("baseline PATH", lambda: None, help="type e.g. 'baseline llmsurge-results/RUN'")

    async def search(self, query: str) -> Hits:
        a = self.surge
        m = _CONCURRENCY.match(query)
        if m:
            n = int(m.group(1))
            yield Hit(
                1.0,
                f"Set concurrency to {n}",
                partial(a.steering.set_concurrency, n),
                help="closed loop: N requests in flight",
            )
        m = _BASELINE.match(query)
        if m:
            path = m.group(1)
            yield Hit(
                1.0,
                f"Baseline: {path}",
                partial(a.steering.set_baseline, path),
                help="a saved run shown beside this one",
            )
        m = _SLO.match(query)
        if m:
            metric, value = m.group(1).lower(), m.group(2).lower().replace(" ", "")
            try:
                seconds = None if value in ("off", "none") else parse_duration(value, "slo")
            except SloError:
                seconds = -1.0
            if seconds is None or seconds > 0:
                label = f"SLO {metric.upper()} ≤ {value}" if seconds else f"Drop the {metric.upper()} SLO"
                yield Hit(
                    1.0, label, partial(a.steering.set_slo, metric, seconds), help="goodput: requests meeting every SLO"
                )
        m = _QUALITY.match(query)
        if m and 0 < int(m.group(1)) <= limits.MAX_CONCURRENCY:
            n = int(m.group(1))
            yield Hit(
                1.0,
                f"Quality set at concurrency {n}",
                partial(a.steering.run_quality, n),
                help="30 prompts with checkable answers; the score shows per segment",
            )
        m = _RATE.match(query)
        if m:
            r = float(m.group(1))
            if r > 0:
                yield Hit(
                    1.0,
                    f"Set request rate to {r:g}/s",
                    partial(a.steering.set_rate, r),
                    help="open loop with the current arrival law",
                )
        matcher = self.matcher(query)
        for name, cb, help_ in self._actions():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=help_)
        for sc, _path, _err in list_presets():
            if sc is None:
                continue
            label = f"Preset: {sc.name}"
            score = matcher.match(label)
            if score > 0:
                help_ = escape(sc.description)  # a user's file: text, not markup
                yield Hit(score, matcher.highlight(label), partial(a.steering.switch_preset, sc.name), help=help_)
