"""Files a user names (presets, datasets, traces): regular files of a bounded size, or one line saying why not.

Opening is never a wait: a FIFO opened for reading blocks until a writer comes (it froze a whole run for minutes),
and a device such as ``/dev/zero`` reads for ever. So a file is opened without blocking, checked with ``fstat`` —
the file that was opened, not a name that may have changed since — and refused unless it is a regular file no
larger than its cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

MB = 1024 * 1024
PRESET_CAP = 1 * MB
"""A preset is a page of TOML."""
TRACE_CAP = 1024 * MB
"""A trace of a million requests in Mooncake's JSONL is ~100 MB; BurstGPT's whole CSV ~200 MB."""
DATASET_CAP = 8 * 1024 * MB
"""ShareGPT's largest files are ~0.7 GB; a dataset is indexed streamed, never held whole."""


class InputFileError(ValueError):
    """A named file that cannot be used as input; the message names it and the fix."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], what: str, cap: int) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file of at most ``cap`` bytes; else
    :class:`InputFileError` naming it (``what``: the flag or kind of file, for the message). The caller closes it."""
    shown = os.fspath(path)
    try:
        fd = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputFileError(f"{what} {shown}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{what} {shown}: is a folder, not a file") from None
    except OSError as exc:
        raise InputFileError(f"{what} {shown}: cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(f"{what} {shown}: is {_kind(st.st_mode)}, not a regular file: name a file")
        if st.st_size > cap:
            raise InputFileError(
                f"{what} {shown}: {st.st_size / MB:,.0f} MB is more than the {cap / MB:,.0f} MB read for it:"
                " cut it into parts"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], what: str, cap: int) -> bytes:
    """The whole of a regular file of at most ``cap`` bytes (see :func:`open_regular`); never more than ``cap``
    bytes are read, even from a file that grows meanwhile."""
    with open_regular(path, what, cap) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise InputFileError(f"{what} {Path(path)}: grew past {cap / MB:,.0f} MB while it was read")
    return data
