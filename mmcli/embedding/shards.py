"""Embeddings too many for one .npy: a folder of shards and a manifest (``mmcli embed -o DIR``).

    DIR/manifest.json        {"format": "mmcli-embedding-shards/1", "dim", "rows", "shards": [...]}
    DIR/00000.npy            float32 rows, as ``embed -o FILE.npy`` writes them
    DIR/00000.paths.json     their paths, in row order ({"format": "mmcli-embeddings/1", ...}; "times":
                             each row's moment in its video, null for an image, when a row is a moment)

Shards are written as rows arrive (memory holds one shard), each atomically; the manifest is written
last, so a folder with a manifest is complete and one without is not. Rows are in input order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.atomic import atomic_write_bytes, write_embeddings
from mmcli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

SHARDS_FORMAT = "mmcli-embedding-shards/1"
MANIFEST = "manifest.json"
DEFAULT_SHARD_ROWS = 100_000


def is_shard_folder(output: Path) -> bool:
    """``-o`` names a folder of shards (anything but a .npy file)."""
    return output.suffix.lower() != ".npy"


def check_folder(folder: Path) -> None:
    """Before the work: ``folder`` is new, empty, or an earlier folder of shards (replaced)."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output {folder}: not a folder (a single file must end in .npy)")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise UsageError(f"--output {folder}: the folder is not empty and holds no {MANIFEST} of mmcli's")


class ShardWriter:
    """Takes rows one at a time; writes a shard each ``shard_rows`` rows and the manifest at ``close``."""

    def __init__(self, folder: Path, shard_rows: int = DEFAULT_SHARD_ROWS, model: str = "") -> None:
        if shard_rows < 1:
            raise ValueError("shard_rows must be >= 1")
        check_folder(folder)
        self.folder, self.shard_rows, self.model = folder, shard_rows, model
        self.shards: list[dict[str, object]] = []
        self.rows = 0
        self.dim: int | None = None
        self._keys: list[str] = []
        self._times: list[float | None] = []
        self._vectors: list[np.ndarray] = []

    def add(self, key: str, time: float | None, vector: np.ndarray) -> None:
        """One row: an image's vector (``time`` None) or a video moment's."""
        self._keys.append(key)
        self._times.append(time)
        self._vectors.append(vector)
        if len(self._keys) >= self.shard_rows:
            self._flush()

    def _flush(self) -> None:
        import numpy as np

        if not self._keys:
            return
        if not self.shards:
            _forget_earlier(self.folder)  # only now: a run that embeds nothing leaves an earlier folder as it was
        vectors = np.stack(self._vectors)
        self.dim = int(vectors.shape[1])
        name = f"{len(self.shards):05d}"
        write_embeddings(self.folder / f"{name}.npy", vectors, self._keys, "path", self._times)
        self.shards.append({"vectors": f"{name}.npy", "paths": f"{name}.paths.json", "rows": len(self._keys)})
        self.rows += len(self._keys)
        self._keys, self._times, self._vectors = [], [], []

    def close(self) -> Path:
        """Write what is left and the manifest; returns the manifest's path."""
        self._flush()
        manifest = {"format": SHARDS_FORMAT, "model": self.model, "dim": self.dim, "rows": self.rows}
        manifest["shards"] = self.shards
        path = self.folder / MANIFEST
        atomic_write_bytes(path, json.dumps(manifest, indent=1).encode())
        return path


def _forget_earlier(folder: Path) -> None:
    """An earlier folder of shards: its manifest goes first (the folder is then incomplete), then its shards."""
    path = folder / MANIFEST
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    path.unlink()
    for shard in old.get("shards", []) if isinstance(old, dict) else []:
        for key in ("vectors", "paths"):
            name = str(shard.get(key, ""))
            if name and os.sep not in name and not name.startswith("."):
                (folder / name).unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    """A folder's manifest, checked to be mmcli's, of this version."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder / MANIFEST}: unreadable ({exc})") from None
    kind, _, version = str(manifest.get("format", "") if isinstance(manifest, dict) else "").partition("/")
    if kind != SHARDS_FORMAT.partition("/")[0]:
        raise UsageError(f"{folder}: not a folder of mmcli embeddings")
    if version != SHARDS_FORMAT.partition("/")[2]:
        raise UsageError(f"{folder} was written by a newer mmcli ({manifest['format']})", hint="upgrade mmcli")
    return manifest


def read_shards(folder: Path) -> tuple[np.ndarray, list[str]]:
    """All rows of a folder of shards and their paths, in order (for tests and small folders)."""
    import numpy as np

    manifest = read_manifest(folder)
    vectors, paths = [], []
    for shard in manifest["shards"]:
        vectors.append(np.load(folder / shard["vectors"]))
        meta = json.loads((folder / shard["paths"]).read_bytes().decode("utf-8", "surrogateescape"))
        paths += meta["paths"]
    return np.concatenate(vectors) if vectors else np.zeros((0, manifest.get("dim") or 0), np.float32), paths
