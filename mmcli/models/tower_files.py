"""Where a model's exported towers live in the cache, what their sidecar records, and the check that
the files are the ones exported.

``$MMCLI_CACHE/onnx/<tower>-<key>.json`` (the sidecar) is the commit point of an export: it names
the tower's files (``<tower>-<key>-<token>.onnx``, the graph, and ``.onnx.data``, the weights,
memory-mapped when loaded) and records for each its size, modification time, SHA-256 and a hash of
a few sampled blocks. Files no sidecar names are leftovers of an export that did not finish; the
next export removes them. A sidecar may instead record that a model keeps torch (``refused``):
only refusals that will recur (an architecture the exporter cannot handle) are recorded.

The check when a tower is opened costs a stat, the graph's hash (it is small and read anyway) and
the sampled blocks of the weights: a truncated file, garbage, or another model's tower of the same
size fails it. When a file's modification time differs from the recorded one (a copy, a restore)
the whole file is hashed once and, if it matches, the new time is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcli.models.spec import ModelSpec, model_fingerprint

FORMAT = 2  # 2: weights in a memory-mapped .onnx.data file, every file checked; 1's sidecars are not read
SAMPLES = 16  # blocks hashed across a weights file at each load
BLOCK = 4096
WHOLE_BELOW = 4 << 20  # files smaller than this are hashed whole at each load


class TowerDamaged(Exception):
    """The files of an exported tower are not those its export recorded (or ONNX Runtime cannot load them)."""


@dataclass(frozen=True)
class TowerPaths:
    folder: Path
    stem: str  # "<tower>-<key>"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.stem}.json"

    @property
    def lock(self) -> Path:
        return self.folder / f".{self.stem}.lock"


def tower_paths(spec: ModelSpec, tower: str = "text") -> TowerPaths:
    from mmcli.config import cache_dir

    fingerprint = model_fingerprint(spec, ("cpu", "fp32"))
    key = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return TowerPaths(cache_dir() / "onnx", f"{tower}-{key}")


@dataclass(frozen=True)
class TowerState:
    ready: bool  # an export is recorded (its files are checked when the tower is opened)
    refused: str | None  # why this model keeps the torch path (recorded by an earlier export)
    meta: dict[str, Any] | None = None  # the sidecar of a recorded export


def tower_state(spec: ModelSpec, tower: str = "text") -> TowerState:
    """What the sidecar says: read only, no file checked (``check_files`` does that)."""
    try:
        meta = json.loads(tower_paths(spec, tower).sidecar.read_text())
    except (OSError, ValueError):
        return TowerState(False, None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return TowerState(False, None)  # none, or an older format: exported again
    if meta.get("refused"):
        return TowerState(False, str(meta["refused"]))
    files = meta.get("files")
    if not isinstance(files, dict) or not isinstance(meta.get("model"), str) or meta["model"] not in files:
        return TowerState(False, None)
    return TowerState(True, None, meta)


def file_record(path: Path) -> dict[str, Any]:
    """What the sidecar records of one of a tower's files."""
    st = path.stat()
    sample = _sample(path, st.st_size)
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _whole(path), "sample": sample}


def check_files(paths: TowerPaths, meta: dict[str, Any]) -> None:
    """Raise TowerDamaged unless every file the sidecar names is the one recorded (see the module doc)."""
    touched = False
    for name, record in meta["files"].items():
        path = paths.folder / name
        try:
            st = path.stat()
            if st.st_size != record.get("bytes"):
                raise TowerDamaged(f"{name} is {st.st_size} bytes, {record.get('bytes')} were exported")
            small = st.st_size < WHOLE_BELOW
            if small or st.st_mtime_ns != record.get("mtime_ns"):
                if _whole(path) != record.get("sha256"):
                    raise TowerDamaged(f"{name} is not the file that was exported (its SHA-256 differs)")
                if not small:
                    record["mtime_ns"], touched = st.st_mtime_ns, True
            elif _sample(path, st.st_size) != record.get("sample"):
                raise TowerDamaged(f"{name} is not the file that was exported (its sampled blocks differ)")
        except OSError as exc:
            raise TowerDamaged(f"{name} cannot be read ({exc.strerror or exc})") from None
    if touched:  # a copy or a restore of the same bytes: its new time, so the whole hash is not needed again
        try:
            fd = lock(paths, wait=False)
        except OSError:
            return  # a read-only cache, or an export running: hashed again next time
        try:
            if json.loads(paths.sidecar.read_text()).get("model") == meta.get("model"):
                write_sidecar(paths, meta)
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)


def lock(paths: TowerPaths, wait: bool = True) -> int:
    """A descriptor holding the exclusive flock of the tower's lock file (one export, or sidecar write, at
    a time); closing it releases it. OSError where the cache cannot be written or (``wait`` False) the
    lock is held."""
    paths.folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    if sys.platform != "win32":
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError:
            os.close(fd)
            raise
    return fd


def write_sidecar(paths: TowerPaths, meta: dict[str, Any]) -> None:
    from mmcli.atomic import atomic_write_bytes

    atomic_write_bytes(paths.sidecar, json.dumps({"format": FORMAT, **meta}, indent=1).encode())


def named_files(meta: dict[str, Any] | None) -> set[str]:
    return set(meta.get("files", {})) if meta else set()


def remove_leftovers(paths: TowerPaths, keep: set[str]) -> None:
    """Remove this tower's files that the sidecar does not name (a killed or failed export's)."""
    try:
        entries = list(os.scandir(paths.folder))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith((f"{paths.stem}-", f".{paths.stem}-")) and entry.name not in keep:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _whole(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sample(path: Path, size: int) -> str:
    """SHA-256 of the size and ``SAMPLES`` blocks spread over the file (the first and the last among them)."""
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(SAMPLES):
            f.seek(max(0, (size - BLOCK) * i // (SAMPLES - 1)))
            digest.update(f.read(BLOCK))
    return digest.hexdigest()
