"""`mmcli index`: bring an index up to date with folders of images, incrementally.

1. Walk the roots; stat every image file.
2. Unchanged files (same size and mtime_ns as stored, ok or failed) are skipped.
3. New and changed files of the same size as a stored file are hashed (SHA-256): a hash already in
   the index gives its vector back without running the model (a renamed, moved or copied file
   costs one read). Vanished files are kept as missing (or removed with ``prune``).
4. The rest is embedded: each file is read once, by the decoder, which hashes those bytes and reads
   the capture time (EXIF, else mtime) from them, in parallel with the model (or on a Ray cluster
   with ``ray``); rows are committed in batches, so a killed run loses at most one batch and the
   next run resumes.
5. The FAISS file is rebuilt from SQLite and written atomically.
Videos (``mmcli.media.video``) go through the same steps: their content hash gives their moments back,
and new ones are hashed, sampled (``every`` seconds, at most ``max_frames``) and embedded, one
transaction per video. Unchanged rows without a capture time (an index made before format 3) get
theirs from their file's header. When nothing needs embedding, no model is loaded. The model is
recorded before any work, so even a first run killed at once leaves an index that knows its model;
it binds later runs only once the index holds a vector (a run whose model never loaded binds nothing).
``--rebuild`` loads the model first, builds a complete new database beside the old one and swaps it
in in one transaction. Up to ``SMALL_JOB`` new images for an index that has vectors go through the
model's exported ONNX image tower when it is there (no torch); a run that loaded the torch model
writes the towers searches need, if missing, after the index is complete (never failing for them)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.errors import DiskFull, IndexCorrupt, IndexReadOnly, IndexStoreError, UsageError
from mmcli.faults import fault_point
from mmcli.index import schema
from mmcli.index.changes import Changes, find_changes
from mmcli.index.embedding import (
    Target,
    embed_into,
    embed_on_ray_into,
    embed_videos_into,
    load_decoding_meanwhile,
    load_for_index,
    small_job_encoder,
    towers_after,
)
from mmcli.index.job import IndexJob, LoadedModel
from mmcli.index.lock import IndexLock
from mmcli.index.open import model_spec_for
from mmcli.index.schema import REBUILD_DB, ensure_writable
from mmcli.index.store import FileRow, Store
from mmcli.media.files import hash_files
from mmcli.results import FileFailure

if TYPE_CHECKING:
    from mmcli.models import Encoder, ModelSpec


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
    dated: int = 0  # unchanged files whose capture time was read now (an index made before format 3)
    warnings: tuple[str, ...] = ()
    moments: int = 0  # video frames sampled and embedded this time

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


def run_index(folder: Path, job: IndexJob) -> IndexSummary:
    """Bring the index at ``folder`` up to date with ``job.roots``; with ``job.rebuild``, embed everything
    again into a new database beside it and swap that in only when it is complete. With ``job.ray``, the
    files that need the model are embedded on a Ray cluster; Ray is not started when none do. ``job.keep``:
    a model loaded by an earlier run is used, and one loaded now is kept there (`--watch`)."""
    start = time.perf_counter()
    for r in job.roots:
        if not Path(r).exists():
            raise UsageError(f"no such file or folder: {r}")
    ensure_writable(folder)
    loaded = LoadedModel()
    with IndexLock(folder):
        store = _open_for_writing(folder, job.rebuild)
        try:
            if job.rebuild:
                summary = _rebuild(store, job.model, job.weights, job, start, loaded)
            else:
                spec = model_spec_for(store.meta(), job.model, job.weights)
                store.record_model(model_meta(spec))  # before any work: a killed first run keeps it
                summary = _update(store, spec, job, start, loaded=loaded)
            from mmcli.index.vectors import load_or_rebuild

            if store.meta().get("dim"):
                load_or_rebuild(store, write=True, must_write=True)
            store.add_roots(os.fsdecode(r) for r in job.roots)
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
    if loaded.spec is not None:  # the model was loaded anyway: the towers searches need, written now
        notes = towers_after(loaded.spec, job, loaded.take())
        summary = replace(summary, warnings=summary.warnings + notes)
    return summary


def model_meta(spec: ModelSpec) -> dict[str, str]:
    return {"model_name": spec.name, "model_spec": spec.canonical, "model_weights": str(spec.weights or "")}


def _rebuild(
    store: Store, model: str | None, weights: str | None, job: IndexJob, start: float, loaded: LoadedModel
) -> IndexSummary:
    """Load the model first (one that cannot load changes nothing), embed everything into
    ``rebuild.sqlite``, then swap it in, in one transaction: readers see the old index until then."""
    from mmcli.models import load_encoder, parse_model_spec

    stored = store.meta()
    if model is None and weights is None and stored.get("model_name"):
        spec = parse_model_spec(stored["model_name"], stored.get("model_weights") or None)
    else:
        spec = parse_model_spec(model, weights)
    if job.ray is None:
        kept = job.keep.get(spec) if job.keep is not None else None
        encoder: Encoder | None = kept or load_encoder(spec, device=job.device, precision=job.precision)
        if job.keep is not None:
            job.keep.put(spec, encoder)
    else:
        from mmcli.models import describe_encoder

        describe_encoder(spec)  # the weights resolve and the model builds (on meta), or nothing changes
        encoder = None
    schema.remove(store.folder, REBUILD_DB)  # what a killed rebuild left
    side = Store(store.folder, create=True, name=REBUILD_DB, model=model_meta(spec))
    try:
        summary = _update(side, spec, job, start, encoder=encoder, loaded=loaded)
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


def _update(
    store: Store,
    spec: ModelSpec,
    job: IndexJob,
    start: float,
    encoder: Encoder | None = None,
    loaded: LoadedModel | None = None,
) -> IndexSummary:
    from mmcli.media.video import av_available, is_video

    found = find_changes(store, job.roots, job.include_hidden, job.exclude)
    fault_point("index.scanned")
    scan, existing = found.scan, found.existing
    candidates = found.candidates
    unplayable = [p for p in candidates if is_video(p)] if not av_available() else []
    if unplayable:  # not recorded: indexed once PyAV is there
        candidates = tuple(p for p in candidates if p not in set(unplayable))
    reads = hash_files(_may_reuse(store, candidates, scan))
    gone_hashes = {row.hash for row in found.gone if row.hash and row.status == "ok"}
    counts = {"added": 0, "updated": 0, "renamed": 0, "copied": 0, "failed": 0, "removed": 0, "missing": 0}
    renamed_from: set[str] = set()
    to_embed: list[str] = []
    videos: list[str] = []
    back = [existing[p].id for p in found.unchanged if existing[p].missing]
    with store.transaction() if candidates or found.gone or back else contextlib.nullcontext():
        store.mark_missing(back, missing=False)
        for path in candidates:
            read = reads.get(path)
            size, mtime = scan[path]
            if read is None:  # no stored file has its size: embedded, and hashed from the bytes decoded
                (videos if is_video(path) else to_embed).append(path)
                continue
            if isinstance(read, OSError):
                store.put_failed(path, size, mtime, None, f"cannot read: {read.strerror or read}")
                counts["failed"] += 1
                if job.on_failure:
                    job.on_failure(FileFailure(path, f"cannot read: {read.strerror or read}"))
                continue
            digest = read.digest
            if is_video(path):
                moments = store.frames_for_hash(digest)
                if moments is None:
                    videos.append(path)
                    continue
                store.put_video(path, size, mtime, digest, moments, read.taken)
            else:
                vector = store.vector_for_hash(digest)
                if vector is None:
                    to_embed.append(path)
                    continue
                store.put_ok(path, size, mtime, digest, vector, read.taken)
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
    dated = _date_old_rows(store, [existing[p] for p in found.unchanged])

    embed_seconds = 0.0
    embedded = 0
    if to_embed or videos:
        target = Target(store, scan, reads, existing, job)
        done, shot = {}, {}
        if job.ray is not None:  # images and videos on the cluster (Ray's start-up counts as its work)
            t0 = time.perf_counter()
            done = embed_on_ray_into(target, spec, to_embed, videos)
        else:
            kept = job.keep.get(spec) if job.keep is not None else None
            small = None
            if to_embed and not videos and encoder is None and kept is None:
                small = small_job_encoder(store, spec, job, len(to_embed))  # a few images: no torch
            prefetch = None
            if small is None and encoder is None and kept is None:  # decoding starts while torch loads
                encoder, prefetch = load_decoding_meanwhile(store, spec, job, to_embed)
            elif small is None:
                encoder = load_for_index(store, spec, job, encoder)
            t0 = time.perf_counter()  # the embedding alone: the model load is not work done per image
            done = embed_into(target, small or encoder, to_embed, prefetch) if to_embed else {}  # type: ignore[arg-type]
            shot = embed_videos_into(target, encoder, videos) if videos else {}  # type: ignore[arg-type]
        if encoder is not None and loaded is not None:
            loaded.spec, loaded.encoder = spec, encoder
        embed_seconds = time.perf_counter() - t0
        embedded = done.get("images", 0)
        for key, value in [*done.items(), *shot.items()]:
            counts[key] = counts.get(key, 0) + value
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
        model_loaded=bool(to_embed or videos),
        missing=counts["missing"],
        restored=len(back),
        dated=dated,
        warnings=_warnings(found, counts["missing"], job.prune) + _no_av(unplayable),
        moments=counts.get("moments", 0),
    )


def _no_av(videos: Sequence[str]) -> tuple[str, ...]:
    if not videos:
        return ()
    from mmcli.media.video import INSTALL_HINT

    n = len(videos)
    return (f"{n} video file{'s' if n != 1 else ''} not indexed: {INSTALL_HINT}",)


def _may_reuse(store: Store, candidates: list[str], scan: dict[str, tuple[int, int]]) -> list[str]:
    """The candidates that may share content with a stored vector (the same size as one): only these
    are hashed before embedding, to reuse that vector. The others are read once, by the decoder,
    which hashes the bytes it decodes."""
    if not candidates:
        return []  # (a no-op run reads no sizes)
    sizes = store.ok_sizes()
    return [p for p in candidates if scan[p][0] in sizes]


def _date_old_rows(store: Store, rows: list[FileRow]) -> int:
    """Read the capture time of unchanged rows that have none (made before format 3): a header read
    per file, no model, no new generation (the vectors are the same)."""
    from concurrent.futures import ThreadPoolExecutor

    from mmcli.media.files import read_taken

    todo = [row for row in rows if not row.dated and row.status == "ok"]
    if not todo:
        return 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        dates = list(zip(todo, pool.map(lambda row: read_taken(row.path), todo)))
    with store.transaction(bump=False):
        store.set_taken((row.id, taken) for row, taken in dates if taken is not None)
    return sum(taken is not None for _, taken in dates)


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
