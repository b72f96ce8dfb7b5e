"""A video as a search query: ``clip.mp4`` stands for all its moments (the mean of their unit vectors,
renormalised), ``clip.mp4#t=12`` for one (the stored moment nearest 12 s). An indexed, unchanged video
gives its stored moments without the model; any other is sampled as ``mmcli index`` samples it (or,
for one moment, its frame at that time is decoded) and embedded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmcli.errors import UsageError
from mmcli.index.store import Store
from mmcli.queries import Term, split_moment

if TYPE_CHECKING:
    from mmcli.engine.encoders import Encoders


def stored_moments(store: Store, path: str) -> list[tuple[float, np.ndarray]] | None:
    """The indexed moments (time, unit vector) of the video at ``path`` if it is unchanged since."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    rows = store.moments_if_unchanged(os.path.realpath(path), st.st_size, st.st_mtime_ns)
    return [(t, np.frombuffer(v, dtype=np.float32)) for t, v in rows] if rows else None


def nearest(moments: Sequence[tuple[float, np.ndarray]], time: float) -> tuple[float, np.ndarray]:
    """The moment nearest ``time`` (the earlier of two as near)."""
    return min(moments, key=lambda m: (abs(m[0] - time), m[0]))


def video_query_vector(
    store: Store | None, path: str, moment: float | None, engine: Encoders, max_pixels: int
) -> np.ndarray:
    """The unit vector a video term stands for (see the module's docstring); without ``store`` (another
    model than the index's: a re-ranking) the video is always decoded."""
    stored = stored_moments(store, path) if store is not None else None
    if stored is not None:
        vectors = np.stack([v for _, v in stored]) if moment is None else nearest(stored, moment)[1][None]
    elif moment is None:
        vectors = _sampled(path, engine, max_pixels)
    else:
        vectors = _frame(path, moment, engine)
    total = vectors.astype(np.float64).sum(axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError(f"query video {path}: its moments cancel out")
    return (total / norm).astype(np.float32)


def _sampled(path: str, engine: Encoders, max_pixels: int) -> np.ndarray:
    from mmcli.embedding.video import embed_video
    from mmcli.media.video import VideoVectors

    shot = embed_video(engine.image_encoder(1), path, max_pixels=max_pixels)
    if not isinstance(shot, VideoVectors):
        raise UsageError(f"query video {shot.path}: {shot.reason}")
    return shot.vectors


def _frame(path: str, moment: float, engine: Encoders) -> np.ndarray:
    from mmcli.media.video import frame_picture

    encoder = engine.image_encoder(1)
    picture = frame_picture(path, moment, 2 * encoder.preprocess.min_side)  # as sampling decodes it
    if picture is None:
        raise UsageError(f"query video {path}: no frame at {moment:g} s (not a readable video, or it ends before)")
    return encoder.encode_images(encoder.preprocess.to_array(picture)[None])


def query_files(store: Store, terms: Sequence[Term], all_moments: bool = False) -> set[tuple[str, float | None]]:
    """What a search leaves out of its results: the query's own files ((path, None)); for a moment of a
    video (``#t=``) the whole video too, unless ``all_moments`` (the video's other moments are then what
    is looked for): that moment alone ((path, time))."""
    out: set[tuple[str, float | None]] = set()
    for term in terms:
        if not term.is_image:
            continue
        path, moment = split_moment(term.value)
        moment = term.time if term.time is not None else moment  # (the server's moments)
        real = os.path.realpath(path)
        if moment is None or not all_moments:
            out.add((real, None))
            continue
        stored = stored_moments(store, path)
        if stored is not None:
            out.add((real, nearest(stored, moment)[0]))
    return out
