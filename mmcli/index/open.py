"""Finding and opening an index: its folder from ``--index``, its model, and what ``mmcli info`` shows."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.config import home_dir
from mmcli.errors import IndexMissing, ModelMismatch, UsageError
from mmcli.index.schema import DB_NAME
from mmcli.index.store import Store
from mmcli.results import IndexEntry, IndexInfo

if TYPE_CHECKING:
    from mmcli.models import ModelSpec

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def index_folder(name: str | None) -> Path:
    """``--index``: a name under MMCLI_HOME/indexes (default "default"), or a folder path."""
    if not name:
        return home_dir() / "indexes" / "default"
    if os.sep in name or name.startswith((".", "~")) or (os.altsep and os.altsep in name):
        folder = Path(name).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--index {name}: is a file, not an index folder", hint="give a folder path or a name")
        return folder
    if not NAME_RE.match(name):
        raise UsageError(f"invalid index name {name!r}", hint="use letters, digits, '.', '_' and '-', or a path")
    return home_dir() / "indexes" / name


def open_index(folder: Path) -> Store:
    """An existing index that holds at least its model (reading only; search, dupes, cluster, serve)."""
    store = Store(folder, create=False)
    if not store.meta().get("dim"):
        store.close()
        raise IndexMissing(f"the index at {folder} is empty", hint="add images with `mmcli index PATH`")
    return store


def model_spec_for(store_meta: dict[str, str], model: str | None, weights: str | os.PathLike[str] | None) -> ModelSpec:
    """The model to use with an index: the one it was built with, unless the user asks for another.
    An index that holds no vector yet (``dim`` unset: its model never loaded, or nothing was embedded)
    is bound to no model: one asked for wins, else the one it names is tried again."""
    from mmcli.models import parse_model_spec

    stored_name = store_meta.get("model_name")
    if not stored_name:
        return parse_model_spec(model, weights)
    stored_weights = store_meta.get("model_weights") or None
    if model is None and weights is None:
        return parse_model_spec(stored_name, stored_weights)
    if not store_meta.get("dim"):
        return parse_model_spec(model or stored_name, weights)
    wanted = parse_model_spec(model or stored_name, weights)
    stored = parse_model_spec(stored_name, stored_weights)
    if wanted.canonical != stored.canonical:
        same_name = stored.shown == wanted.shown
        raise ModelMismatch(
            f"this index was built with {stored.canonical if same_name else stored.shown}, "
            f"not {wanted.canonical if same_name else wanted.shown}",
            hint="use the same --model, or re-embed everything with `mmcli index --rebuild`",
        )
    return stored


def list_indexes() -> list[IndexEntry]:
    """Every index under ``$MMCLI_HOME/indexes``, by name (unreadable ones say why)."""
    from mmcli.errors import IndexStoreError

    base = home_dir() / "indexes"
    entries = []
    for folder in sorted(p for p in base.iterdir() if (p / "index.sqlite").is_file()) if base.is_dir() else []:
        size = index_size(folder)
        try:
            store = Store(folder, create=False)
        except IndexStoreError as exc:
            entries.append(IndexEntry(folder.name, str(folder), (), "", 0, 0, size, "", exc.message))
            continue
        try:
            meta = store.meta()
            ok, _ = store.counts()
            videos = store.video_count()
            entries.append(
                IndexEntry(
                    folder.name,
                    str(folder),
                    tuple(store.roots()),
                    meta.get("model_name", ""),
                    ok - videos,
                    store.missing_count(),
                    size,
                    _when(meta.get("updated")),
                    "ok",
                    videos,
                    store.frame_count(),
                )  # fmt: skip
            )
        finally:
            store.close()
    return entries


def index_size(folder: Path) -> int:
    """An index's size on disk, the one definition (``info`` and ``indexes``): its database with its
    write-ahead log, and its FAISS file; not SQLite's shared-memory file (made by whoever opens it), the
    lock, or what a rebuild leaves while it runs."""
    total = 0
    for p in folder.iterdir():
        if p.name in (DB_NAME, DB_NAME + "-wal") or (p.name.startswith("vectors") and p.suffix == ".faiss"):
            try:
                total += p.stat().st_size
            except OSError:
                pass  # (gone meanwhile: an older FAISS file replaced)
    return total


def _when(value: str | None) -> str:
    return datetime.datetime.fromtimestamp(float(value)).isoformat(timespec="seconds") if value else ""


def index_info(folder: Path) -> IndexInfo:
    from mmcli.index.vectors import APPROX_MIN

    store = Store(folder, create=False)
    try:
        meta = store.meta()
        ok, failed = store.counts()
        size = index_size(folder)

        def when(key: str) -> str:
            return _when(meta.get(key))

        n = store.vector_count()
        kind = "none" if n == 0 else "flat (exact)" if n < APPROX_MIN else "IVF-Flat (approximate)"
        oldest, newest, from_mtime, unknown = store.taken_range()
        return IndexInfo(
            folder=str(folder),
            model=meta.get("model_name", ""),
            model_spec=meta.get("model_spec", ""),
            dim=int(meta.get("dim", 0)),
            ok=ok,
            failed=failed,
            missing=store.missing_count(),
            size_bytes=size,
            created=when("created"),
            updated=when("updated"),
            format_version=int(meta.get("format_version", 0)),
            vectors=kind,
            taken_oldest=oldest.iso() if oldest else None,
            taken_newest=newest.iso() if newest else None,
            taken_from_mtime=from_mtime,
            taken_unknown=unknown,
            videos=store.video_count(),
            moments=store.frame_count(),
        )
    finally:
        store.close()
