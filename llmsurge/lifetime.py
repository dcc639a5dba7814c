"""A run owns its processes: workers and the simulated server die with the process that started them.

Each child watches its parent's sentinel (a pipe that multiprocessing closes when the parent exits, however it
exits: SIGKILL included) in a daemon thread and leaves at once when it fires. Stop signals are the parent's to
handle: a child ignores them, so SIGTERM sent to the whole process group (systemd, ``docker stop``) lets the
parent cancel, record and save instead of the children vanishing with requests in flight.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
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


def leave_stop_signals_to_parent() -> None:
    """Leave stop signals meant for the whole group to the parent (it stops us through our command queue).

    SIGINT and SIGHUP are ignored. SIGTERM is obeyed when it cannot be the group's: when our own parent sent it
    (``Process.terminate()``, multiprocessing's exit handler, which would otherwise wait on us forever) or when the
    parent is gone (orphaned, ppid changed). A SIGTERM sent to the whole process group by anyone else (systemd,
    ``docker stop``) is left to the parent, which cancels, records and saves, then ends us.
    """
    parent = os.getppid()
    for sig in STOP_SIGNALS:
        if sig != getattr(signal, "SIGTERM", None):
            signal.signal(sig, signal.SIG_IGN)
    if not hasattr(signal, "SIGTERM"):  # pragma: no cover - not on this platform
        return

    def orphaned() -> bool:
        return os.getppid() != parent

    def on_term(_signum: int, _frame: object) -> None:  # a thread that did not block SIGTERM took it
        if orphaned():
            os._exit(exit_status(signal.SIGTERM))

    signal.signal(signal.SIGTERM, on_term)
    if not hasattr(signal, "sigwaitinfo"):  # pragma: no cover - macOS: the orphan check alone
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from now on inherit the mask

    def watch() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or orphaned():
                os._exit(exit_status(signal.SIGTERM))

    threading.Thread(target=watch, daemon=True, name="sigterm-watch").start()


FORCE_AFTER_S = 1.0


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP on an asyncio loop: the first one stops the run cleanly (``on_first``); another,
    a second or more later, leaves at once. A terminal hang-up reaches a process twice (as session leader and as
    the foreground group), so a repeated SIGHUP, or any repeat within :data:`FORCE_AFTER_S`, is not a second
    request."""

    def __init__(self) -> None:
        self.signum: int | None = None
        """The first stop signal received, if any."""
        self._at = 0.0

    def received(self, signum: int, on_first: Callable[[], None]) -> None:
        """Handle one delivery of ``signum``."""
        now = time.monotonic()
        if self.signum is None:
            self.signum, self._at = signum, now
            on_first()
            return
        if signum == getattr(signal, "SIGHUP", None) or now - self._at < FORCE_AFTER_S:
            return
        try:
            print(f"llmsurge: {signal.Signals(signum).name} again: leaving now", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
        os._exit(exit_status(signum))  # the workers and the simulated server die with us

    def install(self, loop: asyncio.AbstractEventLoop, on_first: Callable[[], None]) -> None:
        """Handle the stop signals on ``loop`` (a no-op off the main thread)."""
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.received, sig, on_first)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the stop signals back."""
        for sig in STOP_SIGNALS:
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass


FD_MARGIN = 64
"""Open files a worker needs besides its connections (pipes, the event loop, libraries)."""


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to the hard one (children inherit it); returns the limit.

    A connection is a file: at the default soft limit of 1,024, a load of more concurrent streams fails with
    "too many open files" in the client, counted as the server's errors (ROCm/ATOM #1394 lost 9,321 of 10,240)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on this platform
        return 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_files_note(concurrency: int | None, workers: int, limit: int) -> str:
    """One line when ``concurrency`` streams over ``workers`` processes cannot fit in ``limit`` files each."""
    if not concurrency:
        return ""
    per_worker = -(-concurrency // max(1, workers)) + FD_MARGIN
    if per_worker <= limit:
        return ""
    fits = max(0, (limit - FD_MARGIN) * workers)
    return (
        f"{concurrency:,} requests in flight need about {per_worker:,} open files per worker, and this system allows"
        f" {limit:,} (ulimit -n): about {fits:,} will fit, the rest fail to connect; raise the hard limit or add"
        " --workers"
    )


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


EVENT_LOOP_ENV = "LLMSURGE_EVENT_LOOP"
"""Which event loop the workers run on: ``uvloop`` (the default, a dependency) or ``asyncio`` (the standard
library's, to compare them or to rule uvloop out of a fault)."""


def event_loop_asked() -> str:
    """What :data:`EVENT_LOOP_ENV` asks for: ``uvloop``, ``asyncio``, or '' (unset: uvloop where installed).

    Raises:
        ValueError: another value, or uvloop asked for where it is not installed (the message names the fix).
    """
    asked = os.environ.get(EVENT_LOOP_ENV, "").strip().lower()
    if asked not in ("", "uvloop", "asyncio"):
        raise ValueError(f"{EVENT_LOOP_ENV}={asked!r}: set it to asyncio or uvloop, or unset it (uvloop)")
    if asked == "uvloop":
        import importlib.util

        if importlib.util.find_spec("uvloop") is None:
            raise ValueError(f"{EVENT_LOOP_ENV}=uvloop, but uvloop is not installed: pip install uvloop")
    return asked
