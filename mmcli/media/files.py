"""Reading media files: the checks before any open, one read of the whole file, and its content hash
and capture time (what the index stores with a vector), without a second read."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from mmcli.errors import ImageLoadError
from mmcli.media.regular import open_file, open_regular  # noqa: F401 (open_regular: re-exported)
from mmcli.media.taken import HEAD_BYTES, from_header
from mmcli.results import Read, Taken

WHOLE_READ_LIMIT = 256 << 20  # files up to this size are read once into memory (hash + decode)


def file_error(name: str, exc: OSError, vanished: bool = False) -> ImageLoadError:
    """The one mapping of an OSError met while opening or reading ``name`` to what users are told."""
    if isinstance(exc, FileNotFoundError):
        return ImageLoadError(name, "vanished while being read" if vanished else "no such file")
    if isinstance(exc, IsADirectoryError):
        return ImageLoadError(name, "is a directory")
    if isinstance(exc, PermissionError):
        return ImageLoadError(name, "permission denied")
    return ImageLoadError(name, exc.strerror or str(exc))


def media_stat(path: str | os.PathLike[str]) -> os.stat_result:
    """The stat of a non-empty regular file (images and videos), or ImageLoadError saying what it is.
    Called before open(): opening a FIFO would wait for a writer."""
    name = os.fsdecode(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise file_error(name, exc) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(name, "is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(name, "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(name, "empty file")
    return st


def read_whole(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of an image file, read once, or None for a file above ``WHOLE_READ_LIMIT`` (then
    decoded from the file). Raises ImageLoadError for what cannot be an image file."""
    return read_whole_stat(path)[0]


def read_whole_stat(path: str | os.PathLike[str]) -> tuple[bytes | None, os.stat_result]:
    """``read_whole``, and the file's stat (its mtime dates a picture without EXIF)."""
    name = os.fsdecode(path)
    st = media_stat(path)
    if st.st_size > WHOLE_READ_LIMIT:
        return None, st
    try:
        with open_file(path) as f:
            data = f.read()
    except OSError as exc:
        raise file_error(name, exc) from None
    if not data:
        raise ImageLoadError(name, "empty file")
    return data, st


def hash_file(path: str) -> Read | OSError:
    """The Read of a file on disk (its bytes in chunks), or the OSError that stopped it."""
    h = hashlib.sha256()
    head = b""
    try:
        with open_file(path) as f:
            while chunk := f.read(1 << 20):
                head = head or chunk
                h.update(chunk)
            st = os.fstat(f.fileno())
    except OSError as exc:
        return exc
    return Read(h.hexdigest(), from_header(head, st.st_mtime, path, st.st_size))


def read_taken(path: str) -> Taken | None:
    """The capture time of the regular file at ``path`` (one read of its first MiB); None if it cannot
    be read."""
    try:
        with open_file(path) as f:
            head = f.read(HEAD_BYTES)
            st = os.fstat(f.fileno())
    except OSError:
        return None
    return from_header(head, st.st_mtime, path, st.st_size)


def read_of(data: bytes, mtime: float) -> Read:
    """The Read of a file whose bytes are in hand (the decoder's): no second read."""
    return Read(hashlib.sha256(data).hexdigest(), from_header(data, mtime, None, len(data)))


def read_facts(path: str, data: bytes | None, mtime: float) -> Read | None:
    """Content hash and capture time of bytes in hand; a file too large to hold is read in chunks."""
    if data is not None:
        return read_of(data, mtime)
    read = hash_file(path)
    return read if isinstance(read, Read) else None


def hash_files(paths: Sequence[str]) -> dict[str, Read | OSError]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(paths, pool.map(hash_file, paths)))
