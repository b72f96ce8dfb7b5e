"""What runs on Ray's workers for ``--ray`` (``ray_driver`` plans and sends it): decoding tasks and the
model actors, and the model spec as a worker resolves it.

Decoding tasks run the same safe decoder as a local run up to the resize (``images.load_resized``;
``video.sample_video`` for a video's moments) and send uint8 pixels (a quarter of float32's bytes
through the object store); the actors normalise them with ``Preprocess.normalise``, the arithmetic
of a local run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mmcli.errors import ImageLoadError
from mmcli.faults import fault_point
from mmcli.media.images import load_resized
from mmcli.media.video import DEFAULT_EVERY, DEFAULT_MAX_FRAMES, is_video, sample_video

if TYPE_CHECKING:
    from mmcli.media.preprocess import Preprocess
    from mmcli.models import ModelSpec


def check_model(spec: ModelSpec, device: str, precision: str) -> None:
    """On a worker with an actor's resources: the device, the precision and the weights resolve there
    (else the mmcli error, before any actor starts)."""
    from mmcli.models import resolve_device, resolve_precision
    from mmcli.models.weights import resolve

    resolve_precision(precision, resolve_device(device))
    resolve(worker_spec(spec))


def worker_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` as this machine resolves it: an alias (``mmcli-tiny``) names a folder inside mmcli's
    installation, which need not be where the driver's is; every other spec is absolute already."""
    from mmcli.models import aliases, parse_model_spec

    if spec.name in aliases():
        return parse_model_spec(spec.name, str(spec.weights) if spec.weights else None)
    return spec


def decode_task(
    batch: dict[str, np.ndarray],
    preprocess: Preprocess,
    max_pixels: int,
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> dict[str, np.ndarray]:
    """A Ray Data task: paths (absolute, bytes) -> model-sized uint8 pixels (zeros for a bad file) and
    reasons (b"" if ok); ``i``, the position in the driver's list, goes along. A video gives a row per
    sampled moment (``time``; NaN for an image) and says how many (``n``), so the driver can put its
    moments back together; a video that cannot be used gives one row with the reason."""
    h, w = preprocess.size
    rows: list[tuple[int, float, int, np.ndarray | None, bytes]] = []  # (i, time, n, pixels, error)
    for i, path in zip(batch["i"], batch["path"]):
        name = bytes(path)
        if is_video(name):
            rows += _video_rows(int(i), name, preprocess, max_pixels, every, max_frames)
            continue
        try:
            rows.append((int(i), math.nan, 1, load_resized(name, preprocess, max_pixels), b""))
        except Exception as exc:  # noqa: BLE001 - a bad file (or a decoder bug) must not kill the job
            rows.append((int(i), math.nan, 1, None, _reason(exc)))
    pixels = np.zeros((len(rows), h, w, 3), dtype=np.uint8)
    for k, row in enumerate(rows):
        if row[3] is not None:
            pixels[k] = row[3]
    return {
        "i": np.array([r[0] for r in rows], dtype=np.int64),
        "time": np.array([r[1] for r in rows], dtype=np.float64),
        "n": np.array([r[2] for r in rows], dtype=np.int64),
        "pixels": pixels,
        "error": np.array([r[4] for r in rows], dtype=object),
    }


def _video_rows(
    i: int, name: bytes, preprocess: Preprocess, max_pixels: int, every: float, max_frames: int
) -> list[tuple[int, float, int, np.ndarray | None, bytes]]:
    """A video's moments, resized (the arithmetic of ``embedding.video.embed_video`` up to the model)."""
    try:
        moments = [
            (m.time, np.asarray(preprocess.resize(m.image), dtype=np.uint8))
            for m in sample_video(name, every, max_frames, max_pixels, preprocess.min_side)
        ]
    except Exception as exc:  # noqa: BLE001 - as for images: reported, never the end of the job
        return [(i, math.nan, 1, None, _reason(exc))]
    return [(i, t, len(moments), pixels, b"") for t, pixels in moments]


def _reason(exc: Exception) -> bytes:
    if isinstance(exc, ImageLoadError):
        return exc.reason.encode("utf-8", "surrogateescape")
    return f"unexpected decoder error: {type(exc).__name__}: {exc}".encode("utf-8", "surrogateescape")


class Embedder:
    """A Ray Data actor: one model, loaded once; decoded batches in, unit vectors out."""

    def __init__(self, spec: ModelSpec, device: str, precision: str, threads: int) -> None:
        from mmcli.models import load_encoder

        if device in ("auto", "cpu"):
            import torch

            torch.set_num_threads(threads)
        self.encoder = load_encoder(worker_spec(spec), device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fault_point("ray.embed")  # inside the actor, before its batch is embedded
        errors = batch["error"]
        good = np.array([not e for e in errors], dtype=bool)
        dim = self.encoder.dim
        vectors = np.zeros((len(errors), dim), dtype=np.float32)
        if good.any():
            vectors[good] = self.encoder.encode_images(self.encoder.preprocess.normalise(batch["pixels"][good]))
        return {"i": batch["i"], "time": batch["time"], "n": batch["n"], "vector": vectors, "error": errors}
