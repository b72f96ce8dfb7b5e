"""Opening a file only if it is a regular one, without a check-then-open race: a FIFO (which would
wait for a writer forever), a device or a folder named where a picture was expected is refused by
``fstat`` on what was really opened."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO


def open_regular(path: str | os.PathLike[str]) -> int:
    """A file descriptor of the regular file at ``path``, or OSError. Opened without waiting (a FIFO
    swapped in after ``media_stat`` would wait for a writer) and checked by ``fstat`` on what was
    really opened, so no check-then-open race lets a FIFO or a device through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "rb")`` for a regular file only (``open_regular``)."""
    return os.fdopen(open_regular(path), "rb")


@contextlib.contextmanager
def pinned(path: str | os.PathLike[str]) -> Iterator[str]:
    """A name for the regular file at ``path`` that nothing can swap for a FIFO after the check, for
    libraries that open files by name (FFmpeg): ``/proc/self/fd/N`` of a descriptor ``open_regular``
    made (Linux; the library opens that very file), else the path itself. Raises OSError."""
    fd = open_regular(path)
    try:
        alias = f"/proc/self/fd/{fd}"
        yield alias if os.path.exists(alias) else os.fsdecode(path)
    finally:
        os.close(fd)
