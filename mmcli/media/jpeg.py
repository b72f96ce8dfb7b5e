"""JPEG pixels through libjpeg-turbo's own API (simplejpeg), where it gives what Pillow gives.

Pillow decodes JPEGs with libjpeg-turbo as well (each wheel bundles its own copy), but feeds it
64 KB at a time and unpacks each line into its own image store; simplejpeg hands the whole buffer
to ``tjDecompress`` and gets packed RGB back: about 7 % less CPU per phone photo here
(``scripts/bench_decode.py``). Same library, same DCT scaling, same colour conversion and
upsampling, so the pixels are Pillow's to the bit (a test decodes both ways, at every scale). This
module only decodes: the caller has already opened the file with Pillow (header only) and checked
its size and scans, and it orients the result. Anything this path does not take (CMYK and YCCK, a
header libjpeg reads otherwise than Pillow, and any error or warning of libjpeg: truncated or
corrupt data) returns None, and the caller decodes the file with Pillow as before, which then gives
the same image or the same error as ever.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a phone's JPEG with more images after the first (Pillow decodes the first)
_COLOURSPACE = {"RGB": ("YCbCr", "RGB"), "L": ("Gray",)}  # Pillow's mode -> libjpeg's source colourspaces taken


@functools.cache
def _simplejpeg() -> ModuleType | None:
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def available() -> bool:
    return _simplejpeg() is not None


def draft_scale(w: int, h: int, wanted: tuple[int, int]) -> int:
    """The DCT scale denominator (1, 2, 4 or 8) Pillow's ``draft(mode, wanted)`` picks for a ``w`` x ``h`` JPEG:
    the largest that keeps both sides at least ``wanted``."""
    ratio = min(w // wanted[0], h // wanted[1])
    return next(s for s in (8, 4, 2, 1) if ratio >= s)


def decode(img: Image.Image, data: bytes, scale: int) -> Image.Image | None:
    """The pixels of the JPEG ``img`` (opened by Pillow, not loaded; ``data`` its file's bytes) at 1/``scale``
    of its size, as Pillow's ``draft`` + ``load`` would give them (mode RGB or L, not oriented), or None:
    then Pillow decodes it."""
    sj = _simplejpeg()
    if sj is None or img.format not in JPEG_FORMATS or img.mode not in _COLOURSPACE:
        return None
    from PIL import Image

    w, h = img.size
    want_w, want_h = math.ceil(w / scale), math.ceil(h / scale)
    try:
        full_h, full_w, space, _ = sj.decode_jpeg_header(data)
        if (full_w, full_h) != (w, h) or space not in _COLOURSPACE[img.mode]:
            return None  # libjpeg reads the header otherwise than Pillow: Pillow decides
        if sj.decode_jpeg_header(data, min_height=want_h, min_width=want_w)[:2] != (want_h, want_w):
            return None
        arr = sj.decode_jpeg(
            data, colorspace="RGB" if img.mode == "RGB" else "GRAY", min_height=want_h, min_width=want_w
        )
    except (ValueError, OSError, RuntimeError):
        return None  # truncated, corrupt, or a libjpeg warning (strict): Pillow reports or tolerates it as before
    if arr.shape[:2] != (want_h, want_w):
        return None
    return Image.fromarray(arr if img.mode == "RGB" else arr[:, :, 0], img.mode)


def orient(img: Image.Image, orientation: object) -> Image.Image:
    """``img`` turned upright for an EXIF ``orientation`` (1-8), as ``ImageOps.exif_transpose`` does."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)  # type: ignore[call-overload]
    return img.transpose(method) if method is not None else img
