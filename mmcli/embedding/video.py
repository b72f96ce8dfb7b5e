"""Video moments through the model: each video's sampled frames (``video.sample_video``) embedded in
batches, one result per video (its moments, or why it could not be used: nothing half-used); and
``embed_media``, images and videos of one list in input order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.video import DEFAULT_EVERY, DEFAULT_MAX_FRAMES, VideoVectors, sample_video
from mmcli.results import FileFailure, ImageVector, ProgressFn

if TYPE_CHECKING:
    from pathlib import Path

    from mmcli.models import Encoder


def embed_video(
    encoder: Encoder,
    path: str,
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int | None = None,
) -> VideoVectors | FileFailure:
    """Sample and embed one video; a FileFailure with the reason if it cannot be used (nothing half-used).

    Decoding and the model take turns in this thread. Decoding in a helper thread while the model runs
    was measured slower on 2 CPU cores (both already busy: FFmpeg's threads and torch's); FFmpeg decodes
    with its own frame threads either way."""
    from mmcli.embedding.batch import default_batch_size

    batch_size = batch_size or default_batch_size(str(encoder.device))
    times: list[float] = []
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    pre = encoder.preprocess
    try:
        for moment in sample_video(path, every, max_frames, max_pixels, pre.min_side):
            times.append(moment.time)
            batch.append(pre.to_array(moment.image))
            if len(batch) >= batch_size:
                chunks.append(encoder.encode_images(np.stack(batch)))
                batch.clear()
        if batch:
            chunks.append(encoder.encode_images(np.stack(batch)))
    except ImageLoadError as exc:
        return FileFailure(exc.path, exc.reason)
    vectors = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
    return VideoVectors(path, tuple(times), vectors)


def embed_videos(
    encoder: Encoder,
    paths: Sequence[str],
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[VideoVectors | FileFailure]:
    """Each video's moments (or its failure), in input order."""
    for n, path in enumerate(paths, start=1):
        yield embed_video(encoder, path, every, max_frames, max_pixels, batch_size)
        if on_progress:
            on_progress(n, len(paths))


def embed_media(
    encoder: Encoder,
    paths: Sequence[str | Path],
    *,
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: ProgressFn | None = None,
) -> Iterator[ImageVector | VideoVectors | FileFailure]:
    """Images (an ImageVector each) and videos (their moments: a VideoVectors each) in input order, a
    FileFailure for each file that could not be used. Consecutive images go through
    ``embed_stream`` together (decoding processes beside the model); progress counts files."""
    from mmcli.embedding.batch import embed_stream
    from mmcli.media.video import is_video

    total, before = len(paths), 0
    run: list[str | Path] = []

    def images() -> Iterator[ImageVector | FileFailure]:
        nonlocal before, run
        todo, run = run, []

        def progress(done: int, _: int) -> None:
            if on_progress:
                on_progress(before + done, total)

        yield from embed_stream(encoder, todo, batch_size, workers, max_pixels, on_progress=progress)
        before += len(todo)

    for path in paths:
        if not is_video(path):
            run.append(path)
            continue
        if run:
            yield from images()
        yield embed_video(encoder, str(path), every, max_frames, max_pixels, batch_size)
        before += 1
        if on_progress:
            on_progress(before, total)
    if run:
        yield from images()
