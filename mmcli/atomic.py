"""Atomic file writes: temp file in the same folder + fsync + os.replace (+ fsync of the folder)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

EMBEDDINGS_FORMAT = "mmcli-embeddings/1"


def atomic_write_bytes(path: Path, data: bytes, before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
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


def write_embeddings(output: Path, vectors: np.ndarray, keys: list[str], key_name: str) -> Path:
    """``output`` (.npy, float32 rows) and ``<stem>.paths.json`` / ``<stem>.texts.json`` beside it."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32))
    companion = output.with_name(output.stem + (".paths.json" if key_name == "path" else ".texts.json"))
    meta = {"format": EMBEDDINGS_FORMAT, "rows": len(keys), key_name + "s": keys}
    atomic_write_bytes(companion, json.dumps(meta, ensure_ascii=False).encode("utf-8", "surrogateescape"))
    atomic_write_bytes(output, buf.getvalue())
    return companion
