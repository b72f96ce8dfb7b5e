"""Finding image files and decoding them safely into RGB.

Decoding rules (documented in the README):
- EXIF orientation is applied; animations give their first frame.
- Alpha (RGBA, LA, PA, palette with transparency) is composited onto white, as a browser shows a
  transparent image on a white page.
- 16-bit and 32-bit integer images (I;16, I) are scaled to 8 bits (value / 257); float images (F)
  are scaled from their own range; CMYK, YCbCr, LAB, HSV and 1-bit are converted to RGB.
- Images above ``max_pixels`` (width x height) are refused before their pixels are decoded
  (decompression bombs); truncated or corrupt data is reported, never half-used.
- JPEGs much larger than the model input are decoded with DCT scaling (Pillow ``draft``) to at
  least twice the model's input side, then resized as usual.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError

if TYPE_CHECKING:
    from PIL import Image

    from mmcli.preprocess import Preprocess

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})  # see mmcli.video
DRAFT_MARGIN = 2  # JPEG DCT scaling keeps the shorter side >= this x the model side
SKIP_DIRS = frozenset({"@eaDir", ".git", "node_modules", "__pycache__"})


def _heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def image_extensions() -> frozenset[str]:
    return IMAGE_EXTENSIONS | HEIF_EXTENSIONS if _heif_available() else IMAGE_EXTENSIONS


def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def _excluded(name: str, path: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat) for pat in exclude)


def walk_images(
    root: Path,
    include_hidden: bool = False,
    exclude: Sequence[str] = (),
    unreadable: list[str] | None = None,
    videos: bool = False,
) -> Iterator[Path]:
    """Image files under ``root``, depth first, sorted by name; symlinked dirs are not followed.

    Hidden entries and @eaDir / .git / node_modules are skipped unless ``include_hidden``;
    ``exclude`` globs are matched against each entry's name and its full path. Folders that exist but
    cannot be listed are appended to ``unreadable``. ``videos``: video files too.
    """
    exts = image_extensions() | (VIDEO_EXTENSIONS if videos else frozenset())
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return
    except OSError:
        if unreadable is not None:
            unreadable.append(os.fsdecode(root))
        return
    for entry in entries:
        if not include_hidden and entry.name.startswith("."):
            continue
        if exclude and _excluded(entry.name, entry.path, exclude):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                if include_hidden or entry.name not in SKIP_DIRS:
                    yield from walk_images(Path(entry.path), include_hidden, exclude, unreadable, videos)
            elif os.path.splitext(entry.name)[1].lower() in exts and entry.is_file():
                yield Path(entry.path)
        except OSError:
            continue


def expand_inputs(inputs: Iterable[str], include_hidden: bool = False, videos: bool = False) -> Iterator[Path]:
    """Files as given (whatever their extension), directories walked for image (and ``videos``) files."""
    for item in inputs:
        path = Path(item)
        try:
            is_dir = path.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            yield from walk_images(path, include_hidden, videos=videos)
        else:
            yield path


# ------------------------------------------------------------------------------------- decoding
def _to_rgb(img: Image.Image) -> Image.Image:
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img)
        arr = arr.astype(np.float64) / 257.0 if arr.max(initial=0) > 255 or mode != "I" else arr
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


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


WHOLE_READ_LIMIT = 256 << 20  # files up to this size are read once into memory (hash + decode)


def read_whole(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of an image file, read once, or None for a file above ``WHOLE_READ_LIMIT`` (then
    decoded from the file). Raises ImageLoadError for what cannot be an image file."""
    return read_whole_stat(path)[0]


def media_stat(path: str | os.PathLike[str]) -> os.stat_result:
    """The stat of a non-empty regular file (images and videos), or ImageLoadError saying what it is.
    Called before open(): opening a FIFO would wait for a writer."""
    name = os.fsdecode(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageLoadError(name, "no such file") from None
    except OSError as exc:
        raise ImageLoadError(name, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(name, "is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(name, "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(name, "empty file")
    return st


def read_whole_stat(path: str | os.PathLike[str]) -> tuple[bytes | None, os.stat_result]:
    """``read_whole``, and the file's stat (its mtime dates a picture without EXIF)."""
    name = os.fsdecode(path)
    st = media_stat(path)
    try:
        if st.st_size > WHOLE_READ_LIMIT:
            return None, st
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageLoadError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageLoadError(name, "is a directory") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except OSError as exc:
        raise ImageLoadError(name, exc.strerror or str(exc)) from None
    if not data:
        raise ImageLoadError(name, "empty file")
    return data, st


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
    data: bytes | None = None,
) -> Image.Image:
    """Decode ``path`` into an upright RGB image, or raise ImageLoadError with the reason.

    ``min_side``: when given, a large JPEG may be decoded at a reduced scale (DCT scaling) whose
    shorter side is still at least twice ``min_side``. ``data``: the file's bytes when the caller
    has read them already (``read_whole``); the file is then not read again.
    """
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    _register_heif()
    name = os.fsdecode(path)
    if data is None:
        data = read_whole(path)
    source = io.BytesIO(data) if data is not None else path
    take_over_pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about odd files; real failures raise
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:  # parses the header only
                w, h = img.size
                too_large = oversize(name, w, h, max_pixels)
                if too_large is not None:
                    raise too_large
                if w == 0 or h == 0:
                    raise ImageLoadError(name, f"invalid size {w}x{h}")
                if img.format == "JPEG":
                    if data is None:
                        with open(path, "rb") as f:
                            data = f.read()
                    bomb = too_many_scans(name, data)
                    if bomb is not None:
                        raise bomb
                if min_side and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK", "YCbCr"):
                    target = DRAFT_MARGIN * min_side
                    scale = min(w, h) / target
                    if scale >= 2:
                        img.draft(img.mode, (max(1, int(w / scale) + 1), max(1, int(h / scale) + 1)))
                img.load()
                upright = ImageOps.exif_transpose(img)
                rgb = _to_rgb(upright if upright is not None else img)
                rgb.load()
                return rgb
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(name, f"too large (decompression bomb): {exc}") from None
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image, or a format Pillow cannot read") from None
    except FileNotFoundError:
        raise ImageLoadError(name, "vanished while being read") from None
    except IsADirectoryError:
        raise ImageLoadError(name, "is a directory") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except MemoryError:
        raise ImageLoadError(name, "out of memory while decoding") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        TypeError,
        IndexError,
        KeyError,
        ZeroDivisionError,
        struct.error,
    ) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower():
            reason = f"truncated image data ({text})"
        else:
            reason = f"corrupt or unreadable image ({text})"
        raise ImageLoadError(name, reason[:300]) from None


def load_pixels(
    path: str | os.PathLike[str],
    preprocess: Preprocess,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast_decode: bool = True,
    data: bytes | None = None,
) -> np.ndarray:
    """Decode and preprocess one file into model input: (3, H, W) float32 (``data``: its bytes, if read)."""
    img = load_image(path, max_pixels, preprocess.min_side if fast_decode else None, data)
    try:
        return preprocess.to_array(img)
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageLoadError(os.fsdecode(path), f"cannot preprocess: {exc}") from None


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text; undecodable bytes become surrogate escapes (round-trip to os.fsencode)."""
    return os.fsdecode(path)
