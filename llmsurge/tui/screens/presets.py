"""The preset picker: each preset's name and one-line description; Enter switches to it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from llmsurge.presets import list_presets
from llmsurge.redaction import shown


class PresetPicker(ModalScreen[str | None]):
    """Choose a preset; dismisses with its name (or None on Escape)."""

    CSS_PATH = "presets.tcss"
    BINDINGS = [Binding("escape", "dismiss_none", "cancel", id="preset-cancel")]

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for sc, path, err in list_presets():
            if sc is None:
                options.append(
                    Option(
                        Text(shown(f"{path.stem}  (invalid: {err})", limit=300), style="red"),
                        id=path.stem,
                        disabled=True,
                    )
                )
                continue
            label = Text()
            label.append(f"{shown(sc.name):<16}", style="bold")
            label.append(shown(sc.description, limit=200))
            if sc.name == self.current:
                label.append("  (running)", style="italic")
            options.append(Option(label, id=sc.name))
        with Vertical(id="picker"):
            yield Label("Switch preset — the run goes on, in a new segment", id="picker-title")
            yield OptionList(*options, id="preset-list")
            yield Label("enter: switch   escape: cancel", id="picker-help")

    def on_mount(self) -> None:
        """The list opens on the running preset (the choice nearest to hand), not on the first."""
        options = self.query_one("#preset-list", OptionList)
        for i in range(options.option_count):
            if options.get_option_at_index(i).id == self.current:
                options.highlighted = i
                break

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
