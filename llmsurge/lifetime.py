"""A run owns its processes: workers and the simulated server die with the process that started them.

Each child watches its parent's sentinel (a pipe that multiprocessing closes when the parent exits, however it
exits: SIGKILL included) in a daemon thread and leaves at once when it fires. Stop signals are the parent's to
handle: a child ignores them, so SIGTERM sent to the whole process group (systemd, ``docker stop``) lets the
parent cancel, record and save instead of the children vanishing with requests in flight.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from multiprocessing.connection import wait

PARENT_GONE_EXIT = 70
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def die_with_parent() -> bool:
    """In a multiprocessing child: exit as soon as the parent process is gone. Returns whether it watches."""
    parent = mp.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if parent is None or sentinel is None:
        return False

    def watch() -> None:
        wait([sentinel])
        os._exit(PARENT_GONE_EXIT)  # no clean-up: whoever could use our results is gone

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    return True


def set_process_name(name: str) -> None:
    """Name this process as ``ps``, ``top`` and ``htop`` show it (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def ignore_stop_signals() -> None:
    """Leave SIGINT, SIGTERM and SIGHUP to the parent (it stops us through our command queue)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def exit_status(signum: int) -> int:
    """The conventional exit status after a signal: 128 + its number (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + int(signum)


class ExitCode:
    """Exit statuses of the headless commands; stable, listed in the README."""

    OK = 0
    THRESHOLDS = 1  # a --fail-on threshold was breached (`check`: the server is not healthy)
    BAD_INPUT = 2  # bad flags, preset, URL or results folder: nothing was sent
    UNREACHABLE = 3  # the server did not answer within --wait
    NOT_SAVED = 4  # results could not be written (disk full …): what was written is kept
