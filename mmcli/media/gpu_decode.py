"""Decoding and preprocessing on the model's device, for CUDA runs where CPU decoding is the bottleneck.

JPEG bytes are read by threads, checked from their header (size limit, as on the CPU path), decoded
in batches by ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA, with EXIF
orientation), then resized (bicubic, antialiased), centre-cropped and normalised as tensors. Files
that are not JPEG, or that the device decoder rejects (CMYK, progressive oddities), go through the
CPU path of ``images.py``. The same code runs with ``device="cpu"``, which is how it is tested on
machines without a GPU.

The stages overlap: while the model runs on one batch, threads already read (and hash) the next
batch's files. JPEGs far larger than the model input (a 12 MP photo for a 256 px model) are not
given to the device decoder, which cannot decode at a reduced size: they go through the CPU path,
which decodes them at 1/4 or 1/8 scale (DCT scaling), in the same threads (Pillow releases the GIL
while decoding). Each file is read once; its SHA-256 (the index's content hash) comes from the same
bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.errors import ImageLoadError
from mmcli.media.files import read_facts, read_whole_stat
from mmcli.media.images import DEFAULT_MAX_PIXELS, load_pixels
from mmcli.media.limits import oversize, take_over_pixel_limit, too_many_scans

if TYPE_CHECKING:
    import torch

    from mmcli.media.preprocess import Preprocess
    from mmcli.results import Read

JPEG_MAGIC = b"\xff\xd8\xff"
CPU_SCALE = 4  # JPEGs whose shorter side is >= this x the model's input side go to the scaled CPU decode


@dataclass
class _Read:
    """One file after the reading stage: its bytes and hash, and whether the device decoder takes it."""

    path: str
    data: bytes | None = None
    read: Read | None = None  # content hash and capture time (asked for by the index)
    on_device: bool = False
    error: ImageLoadError | None = None


def _read(path: str, max_pixels: int, preprocess: Preprocess, facts: bool) -> _Read:
    """Read ``path`` once; decide who decodes it: the device (a JPEG within limits, not far larger than
    the model input), the CPU path (anything else, which gives the precise reason for a bad file)."""
    from PIL import Image

    try:
        data, st = read_whole_stat(path)
    except ImageLoadError as exc:
        return _Read(path, error=exc)
    out = _Read(path, data, read_facts(path, data, st.st_mtime) if facts else None)
    if data is None:
        return out  # a file above the whole-read limit: the CPU path streams it
    if not data.startswith(JPEG_MAGIC) or too_many_scans(path, data) is not None:
        return out
    take_over_pixel_limit()
    try:
        import io

        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            mode = img.mode
    except Exception:  # noqa: BLE001 - the CPU path gives the precise reason
        return out
    if oversize(path, w, h, max_pixels) is not None or mode not in ("RGB", "L"):
        return out
    out.on_device = min(w, h) < CPU_SCALE * preprocess.min_side
    return out


def _cpu_decode(item: _Read, preprocess: Preprocess, max_pixels: int) -> np.ndarray | ImageLoadError:
    if item.error is not None:
        return item.error
    try:
        return load_pixels(item.path, preprocess, max_pixels, True, item.data)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not kill the batch
        return ImageLoadError(item.path, f"unexpected decoder error: {type(exc).__name__}: {exc}")


def resize_crop_normalise(images: list[torch.Tensor], preprocess: Preprocess, dtype: Any) -> torch.Tensor:
    """uint8 CHW images (any sizes, on one device) -> (N, 3, H, W) normalised model input."""
    import torch
    import torch.nn.functional as F

    th, tw = preprocess.size
    mode = "bilinear" if preprocess.interpolation == "bilinear" else "bicubic"
    out = []
    for img in images:
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        g = preprocess.geometry(int(img.shape[2]), int(img.shape[1]))
        if g.precrop is not None:
            left, top, right, bottom = g.precrop
            img = img[:, top:bottom, left:right]
        nw, nh = g.resized
        x = img[None].float()
        if (nh, nw) != tuple(x.shape[2:]):
            x = F.interpolate(x, size=(nh, nw), mode=mode, antialias=True, align_corners=False)
        x = x.clamp_(0, 255)
        if g.paste is not None:
            left, top = g.paste
            canvas = torch.full((1, 3, th, tw), float(preprocess.fill_color), device=x.device)
            canvas[:, :, top : top + nh, left : left + nw] = x
            x = canvas
        elif g.crop is not None:
            left, top, right, bottom = g.crop
            x = x[:, :, top:bottom, left:right]
        out.append(x)
    batch = torch.cat(out) / 255.0
    mean = torch.tensor(preprocess.mean, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, device=batch.device).view(1, 3, 1, 1)
    return ((batch - mean) / std).to(dtype)


def decode_batch(
    paths: Sequence[str],
    preprocess: Preprocess,
    device: str,
    dtype: Any,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pool: ThreadPoolExecutor | None = None,
) -> tuple[Any, list[str], list[tuple[str, ImageLoadError]]]:
    """Decode ``paths`` on ``device``: (input batch or None, the paths in it, failures).

    Files the device decoder cannot take are decoded on the CPU and joined to the batch.
    """
    reads = [_read(p, max_pixels, preprocess, False) for p in paths]
    batch, order, failures = _decode_reads(reads, preprocess, device, dtype, max_pixels, pool)
    return batch, order, failures


def _decode_reads(
    reads: Sequence[_Read],
    preprocess: Preprocess,
    device: str,
    dtype: Any,
    max_pixels: int,
    pool: ThreadPoolExecutor | None,
) -> tuple[Any, list[str], list[tuple[str, ImageLoadError]]]:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to torchcodec
        from torchvision.io import ImageReadMode, decode_jpeg

    on_device = [r for r in reads if r.on_device]
    on_cpu = [r for r in reads if not r.on_device]
    # The CPU share starts first, in the threads, so it runs while the device decodes.
    cpu_jobs: list[tuple[_Read, Future[np.ndarray | ImageLoadError] | np.ndarray | ImageLoadError]] = [
        (r, pool.submit(_cpu_decode, r, preprocess, max_pixels) if pool else _cpu_decode(r, preprocess, max_pixels))
        for r in on_cpu
    ]
    tensors: dict[str, Any] = {}
    failures: list[tuple[str, ImageLoadError]] = []
    if on_device:
        blobs = [torch.frombuffer(bytearray(r.data or b""), dtype=torch.uint8) for r in on_device]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
            batch = resize_crop_normalise(list(decoded), preprocess, dtype)
            tensors.update({r.path: batch[i] for i, r in enumerate(on_device)})
        except RuntimeError:  # one bad file fails the batch call: decode these on the CPU instead
            cpu_jobs += [(r, _cpu_decode(r, preprocess, max_pixels)) for r in on_device]
    for r, job in cpu_jobs:
        arr = job.result() if isinstance(job, Future) else job
        if isinstance(arr, ImageLoadError):
            failures.append((r.path, arr))
        else:
            tensors[r.path] = torch.from_numpy(arr).to(device, dtype)
    order = [r.path for r in reads if r.path in tensors]
    if not order:
        return None, [], failures
    return torch.stack([tensors[p] for p in order]), order, failures


@dataclass
class DeviceBatch:
    """One batch from ``device_decode_stream``: the paths embedded (in order), their vectors, the
    failures, and the content hash and capture time of every file that could be read."""

    order: list[str]
    vectors: np.ndarray | None
    failures: list[tuple[str, ImageLoadError]]
    reads: dict[str, Read] = field(default_factory=dict)


def device_decode_stream(
    encoder: Any, paths: Sequence[str], batch_size: int, max_pixels: int, reads: bool = False
) -> Iterator[DeviceBatch]:
    """Batches of ``paths`` decoded on the encoder's device and embedded. While the model runs on one
    batch, the threads read the next one; each file is read once."""
    pre = encoder.preprocess
    chunks = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:

        def read_ahead(k: int) -> list[Future[_Read]]:
            return [pool.submit(_read, p, max_pixels, pre, reads) for p in chunks[k]] if k < len(chunks) else []

        ahead = read_ahead(0)
        for k in range(len(chunks)):
            done = [f.result() for f in ahead]
            ahead = read_ahead(k + 1)  # queued now: read while this batch is decoded and embedded
            batch, order, failures = _decode_reads(done, pre, encoder.device, encoder.dtype, max_pixels, pool)
            vectors = encoder.encode_tensor(batch) if batch is not None else None
            found = {r.path: r.read for r in done if r.read is not None}
            yield DeviceBatch(order, vectors, failures, found)
