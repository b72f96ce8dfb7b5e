"""Writing files: atomically (temp file in the same folder + fsync + os.replace + fsync of the folder) where
that is safe, and through FIFOs and devices the user names, never replacing them."""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

EMBEDDINGS_FORMAT = "mmcli-embeddings/1"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(
    path: Path,
    data: bytes,
    before_replace: Callable[[], None] | None = None,
    private: bool = False,
    prepare: Callable[[Path], None] | None = None,
) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The file gets the mode the umask gives a new file (0600 when ``private``); ``prepare`` may then
    change the temporary file (its mode, its owner) before it takes the name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if not private:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            if prepare is not None:
                prepare(Path(tmp))
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def check_output(path: Path) -> tuple[Path, bool]:
    """Where a file the user named will be written, and whether it is written through (not a
    regular file); a usage error for a folder or an impossible path. Called before the work."""
    from mmcli.errors import UsageError

    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise UsageError(f"cannot write {path}: a part of the path is not a folder") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {path}: it is a folder")
    if st is None:  # a new file: its folders are made, unless something else stands in their place
        existing = next(p for p in target.parents if p.exists())
        if not existing.is_dir():
            raise UsageError(f"cannot write {path}: {existing} is not a folder")
    return target, st is not None and not stat.S_ISREG(st.st_mode)


def write_output(path: Path, data: bytes) -> None:
    """Write a file the user named (``--html``, ``--grid``, ``-o``).

    A regular file (or a new one) is replaced atomically; a symbolic link is followed and its target
    written; a FIFO, a device or a socket (``/dev/stdout``, a pipe) is written through, never
    replaced. A folder, or a path under something that is not a folder, is a usage error.
    """
    target, through = check_output(path)
    if through:
        with open(target, "wb") as f:  # a FIFO, a terminal, /dev/stdout: write through
            f.write(data)
    else:
        atomic_write_bytes(target, data)


def write_embeddings(
    output: Path, vectors: np.ndarray, keys: list[str], key_name: str, times: list[float | None] | None = None
) -> Path:
    """``output`` (.npy, float32 rows) and ``<stem>.paths.json`` / ``<stem>.texts.json`` beside it;
    ``times``: each row's moment in its video (None for an image), written when any row has one."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32))
    companion = output.with_name(output.stem + (".paths.json" if key_name == "path" else ".texts.json"))
    meta: dict[str, object] = {"format": EMBEDDINGS_FORMAT, "rows": len(keys), key_name + "s": keys}
    if times is not None and any(t is not None for t in times):
        meta["times"] = times
    write_output(companion, json.dumps(meta, ensure_ascii=False).encode("utf-8", "surrogateescape"))
    write_output(output, buf.getvalue())
    return companion
