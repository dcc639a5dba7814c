"""A textual-plot PlotWidget set up for a small pane: no focus (so it never takes the steering keys), thin margins,
and ticks spaced for its size, so axis labels never run together in a narrow pane."""

from __future__ import annotations

import math
from typing import Any

from textual_plot import PlotWidget

STEPS = (1.0, 2.0, 5.0)  # no 2.5: the axis prints whole labels, and 7.5 would read as 8


def nice_ticks(lo: float, hi: float, most: int) -> list[float]:
    """At most ``most`` ticks at a nice step (1, 2, 5 × 10ⁿ) between ``lo`` and ``hi``."""
    most = max(2, most)
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return [lo]
    magnitude = 10 ** math.floor(math.log10(span / most))
    for factor in (1.0, 10.0, 100.0):
        for step in STEPS:
            size = step * magnitude * factor
            first = math.ceil(lo / size) * size
            count = math.floor((hi - first) / size + 1e-9) + 1
            if count <= most:
                return [round(first + i * size, 10) for i in range(count)]
    return [lo, hi]


def _label_width(ticks: list[float]) -> int:
    return max((len(f"{t:g}") for t in ticks), default=1)


class PanePlot(PlotWidget, can_focus=False):
    """PlotWidget without focus (its own +/- zoom keys would shadow the app's) and with one-line margins."""

    def __init__(self, *, margin_left: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._margin_left = margin_left

    def on_mount(self) -> None:
        self.margin_top = 1
        self.margin_bottom = 1
        self.margin_left = self._margin_left

    def fit_ticks(self, x: tuple[float, float], y: tuple[float, float], whole_y: bool = False) -> None:
        """Ticks for these axis ranges, as many as the pane has room for without labels touching; ``whole_y``: a
        count axis, whose ticks are whole numbers (never 0.5 requests)."""
        width = max(4, self.size.width - self._margin_left - 2)
        height = max(2, self.size.height - 2)
        most = 8
        while most > 2:
            ticks = nice_ticks(x[0], x[1], most)
            if len(ticks) * (_label_width(ticks) + 2) <= width:
                break
            most -= 1
        self.set_xticks(nice_ticks(x[0], x[1], most))
        yticks = nice_ticks(y[0], y[1], max(2, min(6, height // 2)))
        if whole_y:
            yticks = [t for t in yticks if float(t).is_integer()] or [0.0, 1.0]
        self.set_yticks(yticks)
