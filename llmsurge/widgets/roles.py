"""Colours by meaning, from the theme: panes ask for a role (good, bad, warn …), never for a colour.

Each role is a component class styled in ``tui/app.tcss`` with theme variables (``$success``, ``$error`` …), so
every Textual theme — light ones included — colours the panes, and a theme change redraws them.
"""

from __future__ import annotations

from typing import Any, cast

from rich.style import Style
from textual.widget import Widget

ROLES = ("good", "bad", "warn", "accent", "muted", "strong")
STATES = ("waiting", "warmup", "running", "paused", "done", "stopping", "error", "sim")
ROLE_CLASSES = frozenset({f"pane--{r}" for r in ROLES} | {f"state--{s}" for s in STATES})


class RoleStyles:
    """Mixed into a widget (before the widget class) to style its text by role: ``self.role("bad")``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Textual collects component classes along the first widget base only: declare them on each class.
        cls.COMPONENT_CLASSES = set(ROLE_CLASSES) | set(cls.__dict__.get("COMPONENT_CLASSES", set()))  # type: ignore[attr-defined]

    _role_cache: dict[str, Style] | None = None
    style_generation = 0
    """Counts stylesheet updates: a pane that skips redraws keys them on this (not on the theme's name, which
    changes a frame before the pane's styles do — a redraw in between would keep the old colours)."""

    def notify_style_update(self) -> None:
        """The stylesheet was applied again (a theme change): the role styles are worked out afresh."""
        self._role_cache = None
        self.style_generation += 1
        super().notify_style_update()  # type: ignore[misc]

    def _role_styles(self) -> dict[str, Style]:
        if self._role_cache is None:
            self._role_cache = {}
        return self._role_cache

    def role(self, name: str) -> Style:
        """The rich style of role ``name`` in the current theme.

        A translucent colour (``$foreground-muted``) is blended onto the pane's background here: a rich style
        cannot carry alpha, and Textual's partial style would drop it (muted text would show at full strength).
        """
        cache = self._role_styles()
        key = f"pane--{name}"
        if key not in cache:
            widget = cast(Widget, self)
            styles = widget.get_component_styles(key)
            style = styles.partial_rich_style
            if styles.has_rule("color") and styles.color.a < 1:
                _, background = widget.background_colors
                style += Style(color=(background + styles.color).rich_color)
            cache[key] = style
        return cache[key]

    def state_style(self, state: str) -> Style:
        """The badge style of a run state (``running``, ``paused`` …) in the current theme."""
        cache = self._role_styles()
        key = f"state--{state}"
        if key not in cache:
            cache[key] = cast(Widget, self).get_component_styles(key).rich_style
        return cache[key]
