"""One writer per index: an exclusive, non-blocking flock on ``index.lock`` (released by the OS on exit,
so a SIGKILLed indexer never leaves a stale lock). Readers (search) take no lock."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from mmcli.errors import IndexLocked


class IndexLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "index.lock"
        self.fd: int | None = None

    def __enter__(self) -> IndexLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; SQLite still serialises the writes
            self.fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise IndexLocked(
                f"another `mmcli index` (pid {holder}) is updating the index at {self.path.parent}",
                hint="wait for it to finish; `mmcli search` works meanwhile",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
