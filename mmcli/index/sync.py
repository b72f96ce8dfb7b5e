"""`mmcli index`: bring an index up to date with folders of images, incrementally.

1. Walk the roots; stat every image file.
2. Unchanged files (same size and mtime_ns as stored, ok or failed) are skipped.
3. New and changed files are hashed (SHA-256). A hash already in the index gives its vector back
   without running the model: a renamed, moved or copied file costs one read.
4. Rows under the roots whose files are gone are removed.
5. The rest is embedded (decoding in parallel with the model, or on a Ray cluster with ``ray``) and
   committed in batches, so a killed run loses at most one batch and the next run resumes.
6. The FAISS file is rebuilt from SQLite and written atomically.
When nothing needs embedding, no model is loaded. The model is recorded before any work, so even a
first run killed at once leaves an index that knows its model. ``--rebuild`` loads the model first,
builds a complete new database beside the old one and swaps it in in one transaction.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import DiskFull, IndexCorrupt, IndexReadOnly, IndexStoreError, UsageError
from mmcli.faults import fault_point
from mmcli.index import changes, schema
from mmcli.index.changes import Changes, find_changes
from mmcli.index.lock import IndexLock
from mmcli.index.open import model_spec_for
from mmcli.index.schema import REBUILD_DB, ensure_writable
from mmcli.index.store import FileRow, Store
from mmcli.results import FileFailure, ImageVector

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mmcli.models import Encoder, ModelSpec
    from mmcli.ray_embed import RayOptions

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class IndexSummary:
    scanned: int
    unchanged: int
    added: int
    updated: int
    renamed: int
    copied: int
    removed: int  # entries dropped (--prune, or files found again elsewhere)
    failed: int
    embedded: int
    seconds: float
    embed_seconds: float
    model_loaded: bool
    missing: int = 0  # files found gone this time: kept, out of searches
    restored: int = 0  # missing files that came back
    warnings: tuple[str, ...] = ()

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


@dataclass(frozen=True)
class IndexJob:
    """What one `mmcli index` run was asked to do, besides the index and the model."""

    roots: tuple[Path, ...]
    device: str = "auto"
    precision: str = "auto"
    include_hidden: bool = False
    exclude: tuple[str, ...] = ()
    batch_size: int = 32
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_progress: ProgressFn | None = None
    on_failure: Callable[[FileFailure], None] | None = None
    prune: bool = False
    ray: RayOptions | None = None  # embed on a Ray cluster (planning stays here)


def run_index(
    folder: Path,
    roots: Sequence[str],
    *,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    rebuild: bool = False,
    include_hidden: bool = False,
    exclude: Sequence[str] = (),
    batch_size: int = 32,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: ProgressFn | None = None,
    on_failure: Callable[[FileFailure], None] | None = None,
    prune: bool = False,
    ray: RayOptions | None = None,
) -> IndexSummary:
    """Bring the index at ``folder`` up to date with ``roots``; with ``rebuild``, embed everything again
    into a new database beside it and swap that in only when it is complete. With ``ray``, the files
    that need the model are embedded on a Ray cluster; Ray is not started when none do."""
    start = time.perf_counter()
    root_paths = tuple(Path(r).expanduser().resolve() for r in roots)
    for r in root_paths:
        if not r.exists():
            raise UsageError(f"no such file or folder: {r}")
    job = IndexJob(
        root_paths, device, precision, include_hidden, tuple(exclude), batch_size, workers, max_pixels,
        on_progress, on_failure, prune, ray,
    )  # fmt: skip
    ensure_writable(folder)
    with IndexLock(folder):
        store = _open_for_writing(folder, rebuild)
        try:
            if rebuild:
                summary = _rebuild(store, model, weights, job, start)
            else:
                spec = model_spec_for(store.meta(), model, weights)
                store.record_model(model_meta(spec))  # before any work: a killed first run keeps it
                summary = _update(store, spec, job, start)
            from mmcli.index.vectors import load_or_rebuild

            if store.meta().get("dim"):
                load_or_rebuild(store, write=True, must_write=True)
            store.add_roots(os.fsdecode(r) for r in root_paths)
            return summary
        except sqlite3.OperationalError as exc:
            if _is_disk_full(exc):
                raise _disk_full(folder) from None
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY:
                raise IndexReadOnly(f"the index at {folder} is read-only: it cannot be updated here") from None
            raise IndexStoreError(f"cannot write the index at {folder}: {exc}") from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _disk_full(folder) from None
            raise
        finally:
            store.close()


def model_meta(spec: ModelSpec) -> dict[str, str]:
    return {"model_name": spec.name, "model_spec": spec.canonical, "model_weights": str(spec.weights or "")}


def _rebuild(store: Store, model: str | None, weights: str | None, job: IndexJob, start: float) -> IndexSummary:
    """Load the model first (one that cannot load changes nothing), embed everything into
    ``rebuild.sqlite``, then swap it in, in one transaction: readers see the old index until then."""
    from mmcli.models import load_encoder, parse_model_spec

    stored = store.meta()
    if model is None and weights is None and stored.get("model_name"):
        spec = parse_model_spec(stored["model_name"], stored.get("model_weights") or None)
    else:
        spec = parse_model_spec(model, weights)
    if job.ray is None:
        encoder: Encoder | None = load_encoder(spec, device=job.device, precision=job.precision)
    else:
        from mmcli.models import describe_encoder

        describe_encoder(spec)  # the weights resolve and the model builds (on meta), or nothing changes
        encoder = None
    schema.remove(store.folder, REBUILD_DB)  # what a killed rebuild left
    side = Store(store.folder, create=True, name=REBUILD_DB, model=model_meta(spec))
    try:
        summary = _update(side, spec, job, start, encoder=encoder)
        fault_point("index.rebuild-swap")
        store.adopt(side)
        fault_point("index.rebuild-swapped")
    finally:
        side.close()
    schema.remove(store.folder, REBUILD_DB)
    return summary


def _is_disk_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    return code == sqlite3.SQLITE_FULL if code is not None else "full" in str(exc)


def _disk_full(folder: Path) -> DiskFull:
    return DiskFull(
        f"the disk is full while writing the index at {folder}; it keeps everything committed before",
        hint="free some space and run `mmcli index` again: it resumes",
    )


def _open_for_writing(folder: Path, rebuild: bool) -> Store:
    """The index's store; with ``rebuild``, a corrupt database is set aside instead of failing."""
    try:
        return Store(folder, create=True)
    except IndexCorrupt:
        if not rebuild:
            raise
    schema.set_aside(folder)
    return Store(folder, create=True)


def _update(store: Store, spec: ModelSpec, job: IndexJob, start: float, encoder: Encoder | None = None) -> IndexSummary:
    found = find_changes(store, job.roots, job.include_hidden, job.exclude)
    fault_point("index.scanned")
    scan, existing = found.scan, found.existing
    hashes = changes.hash_files(found.candidates)
    gone_hashes = {row.hash for row in found.gone if row.hash and row.status == "ok"}
    counts = {"added": 0, "updated": 0, "renamed": 0, "copied": 0, "failed": 0, "removed": 0, "missing": 0}
    renamed_from: set[str] = set()
    to_embed: list[str] = []
    back = [existing[p].id for p in found.unchanged if existing[p].missing]
    with store.transaction() if found.candidates or found.gone or back else contextlib.nullcontext():
        store.mark_missing(back, missing=False)
        for path in found.candidates:
            digest = hashes[path]
            size, mtime = scan[path]
            if isinstance(digest, OSError):
                store.put_failed(path, size, mtime, None, f"cannot read: {digest.strerror or digest}")
                counts["failed"] += 1
                if job.on_failure:
                    job.on_failure(FileFailure(path, f"cannot read: {digest.strerror or digest}"))
                continue
            vector = store.vector_for_hash(digest)
            if vector is None:
                to_embed.append(path)
                continue
            store.put_ok(path, size, mtime, digest, vector)
            if path in existing:
                counts["updated"] += 1
            elif digest in gone_hashes or _drop_vanished_twins(store, digest, scan):
                counts["renamed"] += 1
                renamed_from.add(digest)
            else:
                counts["copied"] += 1
        for row in found.gone:
            if row.status == "ok" and row.hash in renamed_from or job.prune:
                store.delete([row.id])  # found again elsewhere (a rename), or --prune
                counts["removed"] += not (row.status == "ok" and row.hash in renamed_from)
            elif not row.missing:
                store.mark_missing([row.id])  # kept: out of searches, its vector waits for the file
                counts["missing"] += 1

    embed_seconds = 0.0
    embedded = 0
    if to_embed:
        t0 = time.perf_counter()
        if job.ray is not None:
            done = _embed_on_ray(store, spec, to_embed, scan, hashes, existing, job)
        else:
            encoder = _load_for_index(store, spec, job, encoder)
            done = _embed_into(store, encoder, to_embed, scan, hashes, existing, job)
        embed_seconds = time.perf_counter() - t0
        embedded = done["added"] + done["updated"]
        for key, value in done.items():
            counts[key] += value
    return IndexSummary(
        scanned=len(scan),
        unchanged=len(found.unchanged),
        added=counts["added"],
        updated=counts["updated"],
        renamed=counts["renamed"],
        copied=counts["copied"],
        removed=counts["removed"],
        failed=counts["failed"],
        embedded=embedded,
        seconds=time.perf_counter() - start,
        embed_seconds=embed_seconds,
        model_loaded=bool(to_embed),
        missing=counts["missing"],
        restored=len(back),
        warnings=_warnings(found, counts["missing"], job.prune),
    )


def _drop_vanished_twins(store: Store, digest: str, scan: dict[str, tuple[int, int]]) -> bool:
    """Rows of this content whose files are gone, wherever they were: the file was moved here (a
    folder moved out of one root and indexed at its new place). Their entries go; True if any did."""
    twins = [row for row in store.rows_with_hash(digest) if row.path not in scan and not os.path.lexists(row.path)]
    store.delete(row.id for row in twins)
    return bool(twins)


def _warnings(found: Changes, missing: int, prune: bool) -> tuple[str, ...]:
    notes = [
        f"found no images under {root}" + (f", which held {held} indexed images: is it mounted?" if held else "")
        for root, held in found.empty_roots
    ]
    notes += [f"cannot read the folder {d}: its entries are kept as they are" for d in found.unreadable]
    if missing and not prune:
        notes.append(
            f"{missing} indexed file{'s' if missing != 1 else ''} not found: kept as missing (out of searches, "
            "vectors kept for when they come back); `mmcli index --prune` drops them"
        )
    return tuple(notes)


def _load_for_index(store: Store, spec: ModelSpec, job: IndexJob, encoder: Encoder | None) -> Encoder:
    if encoder is None:
        from mmcli.models import load_encoder

        encoder = load_encoder(spec, device=job.device, precision=job.precision)
    if not store.meta().get("dim"):
        store.init_meta(spec.name, spec.canonical, str(spec.weights or ""), encoder.dim, asdict(encoder.preprocess))
    return encoder


def _embed_into(
    store: Store,
    encoder: Encoder,
    paths: list[str],
    scan: dict[str, tuple[int, int]],
    hashes: dict[str, str | OSError],
    existing: dict[str, FileRow],
    job: IndexJob,
) -> dict[str, int]:
    from mmcli.embed import embed_stream

    stream = embed_stream(encoder, paths, job.batch_size, job.workers, job.max_pixels, on_progress=job.on_progress)
    return _commit_stream(store, stream, scan, hashes, existing, job)


def _embed_on_ray(
    store: Store,
    spec: ModelSpec,
    paths: list[str],
    scan: dict[str, tuple[int, int]],
    hashes: dict[str, str | OSError],
    existing: dict[str, FileRow],
    job: IndexJob,
) -> dict[str, int]:
    """The files that need the model, embedded on a Ray cluster; results committed here as they arrive
    (in whatever order the actors finish: each is keyed by its path)."""
    from mmcli.models import describe_encoder
    from mmcli.ray_embed import embed_on_ray, ray_session

    assert job.ray is not None
    shape = describe_encoder(spec)
    if not store.meta().get("dim"):
        store.init_meta(spec.name, spec.canonical, str(spec.weights or ""), shape.dim, asdict(shape.preprocess))
    with ray_session(job.ray):
        stream = embed_on_ray(
            spec, shape.preprocess, paths, job.ray, device=job.device, precision=job.precision,
            batch_size=job.batch_size, max_pixels=job.max_pixels, ordered=False, on_progress=job.on_progress,
        )  # fmt: skip
        return _commit_stream(store, stream, scan, hashes, existing, job)


def _commit_stream(
    store: Store,
    stream: Iterable[ImageVector | FileFailure],
    scan: dict[str, tuple[int, int]],
    hashes: dict[str, str | OSError],
    existing: dict[str, FileRow],
    job: IndexJob,
) -> dict[str, int]:
    """Commit embedding results to the store, one transaction per ``job.batch_size`` results."""
    counts = {"added": 0, "updated": 0, "failed": 0}
    pending: list[ImageVector | FileFailure] = []

    def commit() -> None:
        with store.transaction():
            for item in pending:
                size, mtime = scan[item.path]
                digest = hashes[item.path]
                assert isinstance(digest, str)
                if isinstance(item, ImageVector):
                    store.put_ok(item.path, size, mtime, digest, item.vector.astype("float32").tobytes())
                    counts["updated" if item.path in existing else "added"] += 1
                else:
                    store.put_failed(item.path, size, mtime, digest, item.reason)
                    counts["failed"] += 1
        pending.clear()
        fault_point("index.commit")

    for item in stream:
        if isinstance(item, FileFailure) and job.on_failure:
            job.on_failure(item)
        pending.append(item)
        if len(pending) >= job.batch_size:  # one transaction per model batch: all a SIGKILL can cost
            commit()
    if pending:
        commit()
    return counts
