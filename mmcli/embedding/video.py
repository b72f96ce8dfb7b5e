"""Video moments through the model: each video's sampled frames (``video.sample_video``) embedded in
batches, one result per video (its moments, or why it could not be used: nothing half-used)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.video import DEFAULT_EVERY, DEFAULT_MAX_FRAMES, VideoVectors, sample_video
from mmcli.results import FileFailure

if TYPE_CHECKING:
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
