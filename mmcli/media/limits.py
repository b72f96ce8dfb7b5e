"""Pillow set up for mmcli, and the limits of what it decodes: HEIF/AVIF openers, the pixel limit
owned by mmcli (``take_over_pixel_limit``), images too large, JPEG scan bombs."""

from __future__ import annotations

import functools

from mmcli.errors import ImageLoadError


def heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


@functools.cache
def take_over_pixel_limit() -> None:
    """Switch Pillow's own decompression-bomb check off, once per process; ``oversize`` replaces it.

    Pillow's limit is one process-wide setting, ``Image.MAX_IMAGE_PIXELS``: above it a warning,
    above twice it ``DecompressionBombError`` inside ``Image.open``, before the caller sees the size
    (89 MP and 179 MP by default, below our default of 256 MP). It cannot be given per call, and
    setting it around each call races between threads (one restores it while another is inside
    ``Image.open``). So mmcli owns the limit: Pillow's is set to None here, the first time mmcli
    decodes an image (not at import), and never touched again, which is safe from any thread; every
    ``Image.open`` in mmcli then checks ``max_pixels`` against the header's size before any pixel is
    decoded, with one message for every format. Should other code set Pillow's limit again, its
    error is still caught below and the image refused.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None


def oversize(name: str, w: int, h: int, max_pixels: int) -> ImageLoadError | None:
    """The error for a ``w`` x ``h`` image above ``max_pixels`` (width x height), or None."""
    if w * h <= max_pixels:
        return None
    return ImageLoadError(
        name, f"too large: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} (--max-pixels)"
    )


MAX_JPEG_SCANS = 256  # a progressive JPEG has about 10; thousands make a "scan bomb" (seconds per scan)


def too_many_scans(name: str, data: bytes) -> ImageLoadError | None:
    """The error for a JPEG with an absurd number of scans, or None. Each scan of a progressive JPEG is
    a pass over the whole image, so a small file of thousands of scans costs minutes to decode.
    Start-of-scan markers (FF DA) cannot occur inside entropy-coded data (FF is stuffed there)."""
    scans = data.count(b"\xff\xda")
    if scans <= MAX_JPEG_SCANS:
        return None
    return ImageLoadError(
        name, f"a JPEG with {scans} scans (the limit is {MAX_JPEG_SCANS}): decoding it would take minutes"
    )
