"""Decoding and preprocessing on the model's device, for CUDA runs where CPU decoding is the bottleneck.

JPEG bytes are read by threads, checked from their header (size limit, as on the CPU path), decoded
in batches by ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA, with EXIF
orientation), then resized (bicubic, antialiased), centre-cropped and normalised as tensors. Files
that are not JPEG, or that the device decoder rejects (CMYK, progressive oddities), go through the
CPU path of ``images.py``. The same code runs with ``device="cpu"``, which is how it is tested on
machines without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.errors import ImageLoadError
from mmcli.images import DEFAULT_MAX_PIXELS, load_pixels, oversize, take_over_pixel_limit, too_many_scans

if TYPE_CHECKING:
    import torch

    from mmcli.preprocess import Preprocess

JPEG_MAGIC = b"\xff\xd8\xff"


def _read(path: str, max_pixels: int) -> bytes | ImageLoadError:
    """The file's bytes if it is a JPEG within the pixel limit; an ImageLoadError otherwise."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ImageLoadError(path, "no such file")
    except IsADirectoryError:
        return ImageLoadError(path, "is a directory")
    except OSError as exc:
        return ImageLoadError(path, exc.strerror or str(exc))
    if not data.startswith(JPEG_MAGIC):
        return ImageLoadError(path, "not a JPEG")  # the caller decodes it on the CPU
    bomb = too_many_scans(path, data)
    if bomb is not None:
        return bomb  # (the CPU path refuses it in turn, with the same reason)
    take_over_pixel_limit()
    try:
        import io

        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if img.mode not in ("RGB", "L"):
                return ImageLoadError(path, f"mode {img.mode}")
    except Exception as exc:  # noqa: BLE001 - the CPU path gives the precise reason
        return ImageLoadError(path, f"header: {exc}")
    too_large = oversize(path, w, h, max_pixels)
    return data if too_large is None else too_large


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
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to torchcodec
        from torchvision.io import ImageReadMode, decode_jpeg

    reader = pool.map if pool is not None else map
    raw = list(reader(lambda p: _read(p, max_pixels), paths))
    gpu_paths = [p for p, r in zip(paths, raw) if isinstance(r, bytes)]
    blobs = [torch.frombuffer(bytearray(r), dtype=torch.uint8) for r in raw if isinstance(r, bytes)]
    cpu_paths = [p for p, r in zip(paths, raw) if not isinstance(r, bytes)]
    tensors: dict[str, Any] = {}
    failures: list[tuple[str, ImageLoadError]] = []
    if blobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
            batch = resize_crop_normalise(list(decoded), preprocess, dtype)
            tensors.update({p: batch[i] for i, p in enumerate(gpu_paths)})
        except RuntimeError:  # one bad file fails the batch call: decode these on the CPU instead
            cpu_paths += gpu_paths
    for p in cpu_paths:
        try:
            arr = load_pixels(p, preprocess, max_pixels)
        except ImageLoadError as exc:
            failures.append((p, exc))
            continue
        tensors[p] = torch.from_numpy(arr).to(device, dtype)
    order = [p for p in paths if p in tensors]
    if not order:
        return None, [], failures
    return torch.stack([tensors[p] for p in order]), order, failures


def device_decode_stream(
    encoder: Any, paths: Sequence[str], batch_size: int, max_pixels: int
) -> Iterator[tuple[list[str], np.ndarray | None, list[tuple[str, ImageLoadError]]]]:
    """Per batch of paths: (paths embedded, their vectors, failures), decoding on the encoder's device."""
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            batch, order, failures = decode_batch(
                chunk, encoder.preprocess, encoder.device, encoder.dtype, max_pixels, pool
            )
            vectors = encoder.encode_tensor(batch) if batch is not None else None
            yield order, vectors, failures
