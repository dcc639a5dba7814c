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

    def role(self, name: str) -> Style:
        """The rich style of role ``name`` in the current theme."""
        return cast(Widget, self).get_component_rich_style(f"pane--{name}", partial=True)

    def state_style(self, state: str) -> Style:
        """The badge style of a run state (``running``, ``paused`` …) in the current theme."""
        return cast(Widget, self).get_component_rich_style(f"state--{state}")
