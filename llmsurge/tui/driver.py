"""Textual's Linux driver, made to survive its terminal going away.

When the window closes (or ``tmux kill-session``), writes to the terminal fail, and SIGHUP may or may not reach
us (a shell that ignores it does not pass it on). In Textual's driver the failing write kills its writer thread;
the app's next frame then blocks forever on the writer's full queue and the event loop stops, so nothing can save
the run. Here a write to a lost terminal is dropped instead, the loop lives on, and the app is told (as if by
SIGHUP): it stops the run and saves it like ``q``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


class TerminalOutput:
    """A text file that stops writing, quietly, once the terminal is gone, and says so once."""

    def __init__(self, file: IO[str], on_lost: Callable[[], None] | None = None) -> None:
        self._file = file
        self.on_lost = on_lost
        self.lost = False
        """True once a write or flush failed (the terminal is gone)."""

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            if self.on_lost is not None:
                self.on_lost()

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self._file.write(text)
            except (OSError, ValueError):
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._lose()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class ResilientLinuxDriver(LinuxDriver):
    """The Linux driver, writing through :class:`TerminalOutput`; the app's ``on_terminal_lost()`` is called (on
    its loop, without waiting: the writer thread must never block on the app) when the terminal goes away."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._file is not None:
            self._file = TerminalOutput(self._file, self._lost)  # type: ignore[assignment]

    def _lost(self) -> None:
        handler = getattr(self._app, "on_terminal_lost", None)
        if handler is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(handler)
