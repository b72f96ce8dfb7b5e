"""One writer per index: an exclusive, non-blocking flock on ``index.lock``.

The OS releases a flock when the last descriptor of it closes, so a SIGKILLed indexer leaves no
lock behind, provided no other process shares the descriptor. Decoding helpers are forked while
the lock is held: every process forked by a lock holder closes it first thing (``close_held_locks``,
registered with ``os.register_at_fork`` when a lock is first taken), and decoding helpers die with
their parent. A lock still held although the pid written in it is dead (helpers of an
older mmcli, orphaned by a kill) is stale: the file is replaced and the lock taken on the new one.
Readers (search) take no lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from mmcli.errors import IndexLocked

_held: set[int] = set()  # descriptors of locks this process holds
_fork_hook = False  # close_held_locks registered to run in forked children


def close_held_locks() -> None:
    """In a forked child: drop the parent's lock descriptors so only the parent holds the lock."""
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


def _hold(fd: int) -> None:
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=close_held_locks)
        _fork_hook = True
    _held.add(fd)


def _owner(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def process_alive(pid: int) -> bool:
    """Is there a process ``pid`` (ours or another user's)? Also used for the server's discovery file."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class IndexLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "index.lock"
        self.fd: int | None = None

    def __enter__(self) -> IndexLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; SQLite still serialises the writes
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            return self
        for _attempt in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(fd)
                os.close(fd)
                if owner is not None and not process_alive(owner):
                    self._replace_stale()
                    continue
                raise IndexLocked(
                    f"another `mmcli index` (pid {owner or '?'}) is updating the index at {self.path.parent}",
                    hint="wait for it to finish; `mmcli search` works meanwhile",
                ) from None
            if not self._still_ours(fd):  # another process replaced a stale file meanwhile
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self.fd = fd
            _hold(fd)
            return self
        raise IndexLocked(f"cannot take the lock of the index at {self.path.parent}", hint="try again")

    def _replace_stale(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _still_ours(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            _held.discard(self.fd)
            os.close(self.fd)
            self.fd = None
