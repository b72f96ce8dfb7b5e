"""Embedding for `mmcli index`: the files the plan (``sync``) could not serve from stored vectors go
through the model here (locally, on a Ray cluster, or as video moments) and are committed in batches,
one SQLite transaction per model batch (fault point ``index.commit``): all a SIGKILL can cost. Each
row's hash and date are those read with the bytes embedded (one read of the file), or, for a stream
that gives none (Ray), read here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from mmcli.faults import fault_point
from mmcli.index.job import IndexJob
from mmcli.index.store import FileRow, Store
from mmcli.media.files import hash_file
from mmcli.media.video import VideoVectors
from mmcli.results import NOT_A_NUMBER, FileFailure, ImageVector, Read

if TYPE_CHECKING:
    from mmcli.embedding.batch import Prefetch
    from mmcli.models import Encoder, ModelSpec
    from mmcli.models.onnx_towers import OnnxImageEncoder


@dataclass(frozen=True)
class Target:
    """Where embedding results go, and what the plan knows of each file: the store, what the walk found
    (path -> size, mtime_ns), the reads made while planning (hash and date), the rows before this run."""

    store: Store
    scan: dict[str, tuple[int, int]]
    reads: dict[str, Read | OSError]
    existing: dict[str, FileRow]
    job: IndexJob


def known_read(reads: dict[str, Read | OSError], path: str) -> Read | None:
    """The hash and capture time of a file embedded by a stream that gave none (one read here)."""
    read = reads.get(path)
    if read is None:
        read = hash_file(path)
    return read if isinstance(read, Read) else None


def load_for_index(store: Store, spec: ModelSpec, job: IndexJob, encoder: Encoder | None) -> Encoder:
    if encoder is None and job.keep is not None:
        encoder = job.keep.get(spec)  # loaded by an earlier run of `--watch`
    if encoder is None:
        from mmcli.models import load_encoder

        encoder = load_encoder(spec, device=job.device, precision=job.precision)
    if job.keep is not None:
        job.keep.put(spec, encoder)
    if not store.meta().get("dim"):
        store.init_meta(spec.name, spec.canonical, str(spec.weights or ""), encoder.dim, asdict(encoder.preprocess))
    return encoder


def small_job_encoder(store: Store, spec: ModelSpec, job: IndexJob, images: int) -> OnnxImageEncoder | None:
    """A few new images (``SMALL_JOB``) for an index that has vectors, on a CPU in fp32 or auto precision:
    the model's exported image tower when it is there and whole (no torch: most of a small update's
    time), as a small `classify` does. None: the torch model does it (and writes the towers after)."""
    from mmcli.models.onnx_towers import SMALL_JOB, OnnxImageEncoder, cpu_fp32_ok

    dim = store.meta().get("dim")
    if images > SMALL_JOB or job.ray is not None or not dim or not cpu_fp32_ok(job.device, job.precision):
        return None
    from mmcli.models.towers import open_tower

    tower = open_tower(spec, "image", export=False).encoder
    return tower if isinstance(tower, OnnxImageEncoder) and tower.dim == int(dim) else None


def towers_after(spec: ModelSpec, job: IndexJob, encoder: Encoder | None) -> tuple[str, ...]:
    """After a run that loaded the torch model: the ONNX towers searches (and small updates) need,
    exported if missing; notes for what failed (a run never fails for them; tried again next time)."""
    from mmcli.models.towers import ensure_towers, towers_used

    return ensure_towers(spec, encoder, towers_used(job.device, job.precision), job.on_note)


def prefetch_for(store: Store, spec: ModelSpec, job: IndexJob, paths: list[str]) -> Prefetch | None:
    """Before the torch model is loaded for ``paths``: their decoding, started now when the input
    transform is known without the model (the index's meta, else the model's exported image tower) and
    decoding runs in processes of its own; None otherwise."""
    from mmcli.embedding.batch import INLINE_BELOW, Prefetch, default_workers
    from mmcli.media.preprocess import Preprocess
    from mmcli.models.tower_files import tower_state

    if len(paths) < INLINE_BELOW or (job.workers if job.workers is not None else default_workers()) <= 1:
        return None
    try:
        known = store.meta().get("preprocess")
        fields = json.loads(known) if known else (tower_state(spec, "image").meta or {}).get("preprocess")
        preprocess = Preprocess.from_dict(fields) if isinstance(fields, dict) else None
    except (ValueError, TypeError, OSError):  # unreadable: the model's own transform, after it loads
        return None
    if preprocess is None:
        return None
    return Prefetch(paths, preprocess, job.workers, job.max_pixels, max(4 * (job.batch_size or 32), 16))


def load_decoding_meanwhile(
    store: Store, spec: ModelSpec, job: IndexJob, paths: list[str]
) -> tuple[Encoder, Prefetch | None]:
    """``load_for_index`` with ``paths``' decoding started first (``prefetch_for``): the two overlap."""
    prefetch = prefetch_for(store, spec, job, paths) if paths else None
    try:
        return load_for_index(store, spec, job, None), prefetch
    except BaseException:
        if prefetch is not None:
            prefetch.close()
        raise


def embed_into(
    target: Target, encoder: Encoder | OnnxImageEncoder, paths: list[str], prefetch: Prefetch | None = None
) -> dict[str, int]:
    """Embed ``paths`` here and commit them in batches (``prefetch``: their decoding, already started)."""
    job = target.job
    from mmcli.embedding.batch import default_batch_size, embed_stream

    stream = embed_stream(
        encoder,  # type: ignore[arg-type]  (the ONNX image tower embeds pixels the same way)
        paths,
        job.batch_size,
        job.workers,
        job.max_pixels,
        on_progress=job.on_progress,
        reads=True,
        prefetch=prefetch,
    )
    return commit_stream(target, stream, job.batch_size or default_batch_size(str(encoder.device)))


def embed_on_ray_into(target: Target, spec: ModelSpec, paths: list[str], videos: list[str]) -> dict[str, int]:
    """The files that need the model, embedded on a Ray cluster (videos sampled there too); results
    committed here as they arrive (in whatever order the actors finish: each is keyed by its path). The
    driver hashes them."""
    store, job = target.store, target.job
    from mmcli.embedding.ray_driver import embed_on_ray, ray_session
    from mmcli.models import describe_encoder

    assert job.ray is not None
    shape = describe_encoder(spec)
    if not store.meta().get("dim"):
        store.init_meta(spec.name, spec.canonical, str(spec.weights or ""), shape.dim, asdict(shape.preprocess))
    with ray_session(job.ray):
        stream = embed_on_ray(
            spec, shape.preprocess, [*paths, *videos], job.ray, device=job.device, precision=job.precision,
            batch_size=job.batch_size, max_pixels=job.max_pixels, ordered=False, on_progress=job.on_progress,
            every=job.every, max_frames=job.max_frames,
        )  # fmt: skip
        return commit_stream(target, stream, job.batch_size or 32)


def commit_stream(
    target: Target, stream: Iterable[ImageVector | VideoVectors | FileFailure], batch_size: int
) -> dict[str, int]:
    """Commit embedding results to the store, one transaction per ``batch_size`` results (a model batch,
    or a video): all a SIGKILL can cost. Each row's hash and date are those the stream read with the
    bytes it embedded, or, for a stream that gives none, from a read here."""
    store, scan, reads, existing, job = target.store, target.scan, target.reads, target.existing, target.job
    counts = {"added": 0, "updated": 0, "failed": 0, "moments": 0, "images": 0}  # images: embedded ok
    pending: list[ImageVector | VideoVectors | FileFailure] = []

    def commit() -> None:
        with store.transaction():
            for item in pending:
                size, mtime = scan[item.path]
                read = getattr(item, "read", None) or known_read(reads, item.path)
                digest, taken = (read.digest, read.taken) if read is not None else (None, None)
                if isinstance(item, ImageVector):
                    store.put_ok(item.path, size, mtime, digest, item.vector.astype("float32").tobytes(), taken)
                    counts["images"] += 1
                elif isinstance(item, VideoVectors):
                    moments = [(t, v.tobytes()) for t, v in zip(item.times, item.vectors)]
                    store.put_video(item.path, size, mtime, digest, moments, taken)
                    counts["moments"] += len(moments)
                else:
                    store.put_failed(item.path, size, mtime, digest, item.reason, taken)
                    counts["failed"] += 1
                    continue
                counts["updated" if item.path in existing else "added"] += 1
        pending.clear()
        fault_point("index.commit")

    for result in stream:
        item = _finite(result)
        if isinstance(item, FileFailure) and job.on_failure:
            job.on_failure(item)
        pending.append(item)
        if len(pending) >= batch_size:  # one transaction per model batch: all a SIGKILL can cost
            commit()
    if pending:
        commit()
    return counts


def _finite(item: ImageVector | VideoVectors | FileFailure) -> ImageVector | VideoVectors | FileFailure:
    """``item``, its moments that are not a number left out, or a failure where nothing is left: a vector
    of NaN or infinite values is never stored (whichever way it was embedded: here, on Ray, a video)."""
    import numpy as np

    if isinstance(item, ImageVector) and not np.isfinite(item.vector).all():
        return FileFailure(item.path, NOT_A_NUMBER, item.read)
    if isinstance(item, VideoVectors):
        good = [k for k, v in enumerate(item.vectors) if np.isfinite(v).all()]
        if not good:
            return FileFailure(item.path, NOT_A_NUMBER)
        if len(good) < len(item.vectors):
            return replace(item, times=tuple(item.times[k] for k in good), vectors=item.vectors[good])
    return item


def embed_videos_into(target: Target, encoder: Encoder, paths: list[str]) -> dict[str, int]:
    """Sample and embed each video here; one transaction per video (all a SIGKILL can cost). (A video is
    decoded from its file: hashed by a read of its own.)"""
    job = target.job
    from mmcli.embedding.video import embed_videos

    items = embed_videos(
        encoder, paths, job.every, job.max_frames, job.max_pixels, job.batch_size, on_progress=job.on_progress
    )
    return commit_stream(target, items, 1)
