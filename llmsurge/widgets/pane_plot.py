"""A textual-plot PlotWidget set up for a small pane: no focus (so it never takes the steering keys), thin margins."""

from __future__ import annotations

from typing import Any

from textual_plot import PlotWidget


class PanePlot(PlotWidget, can_focus=False):
    """PlotWidget without focus (its own +/- zoom keys would shadow the app's) and with one-line margins."""

    def __init__(self, *, margin_left: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._margin_left = margin_left

    def on_mount(self) -> None:
        self.margin_top = 1
        self.margin_bottom = 1
        self.margin_left = self._margin_left
