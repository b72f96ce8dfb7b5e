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
  least twice the model's input side, then resized as usual. JPEG pixels come from libjpeg-turbo
  through simplejpeg where it gives Pillow's pixels (``mmcli.media.jpeg``), else from Pillow.
"""

from __future__ import annotations

import fnmatch
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media import jpeg
from mmcli.media.files import file_error, open_file, read_whole
from mmcli.media.limits import heif_available, oversize, register_heif, take_over_pixel_limit, too_many_scans

if TYPE_CHECKING:
    from PIL import Image

    from mmcli.media.preprocess import Preprocess

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})  # see mmcli.media.video
DRAFT_MARGIN = 2  # JPEG DCT scaling keeps the shorter side >= this x the model side
SKIP_DIRS = frozenset({"@eaDir", ".git", "node_modules", "__pycache__"})


def image_extensions() -> frozenset[str]:
    return IMAGE_EXTENSIONS | HEIF_EXTENSIONS if heif_available() else IMAGE_EXTENSIONS


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
    """Files as given (whatever their extension), directories walked for image (and ``videos``) files.

    Each file comes once, where it is first seen: named twice, found in a folder and named too, or
    spelled two ways (``a.jpg``, ``./a.jpg``, ``/abs/a.jpg``, a symbolic link to it) is one input."""
    seen: set[str] = set()
    for item in inputs:
        path = Path(item)
        try:
            is_dir = path.is_dir()
        except OSError:
            is_dir = False
        for found in walk_images(path, include_hidden, videos=videos) if is_dir else (path,):
            key = same_file_key(found)
            if key not in seen:
                seen.add(key)
                yield found


def same_file_key(path: str | os.PathLike[str]) -> str:
    """What two spellings of one file share: its path with symbolic links, ``.`` and ``..`` resolved."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.abspath(path)


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


def _draft_size(w: int, h: int, min_side: int | None) -> tuple[int, int] | None:
    """The size to ask of JPEG DCT scaling (Pillow's ``draft``) so that the shorter side stays at least
    ``DRAFT_MARGIN`` x ``min_side``, or None when the image is not large enough to scale by 2 or more."""
    if not min_side:
        return None
    scale = min(w, h) / (DRAFT_MARGIN * min_side)
    return (max(1, int(w / scale) + 1), max(1, int(h / scale) + 1)) if scale >= 2 else None


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
    data: bytes | None = None,
    *,
    turbo: bool = True,
) -> Image.Image:
    """Decode ``path`` into an upright RGB image, or raise ImageLoadError with the reason.

    ``min_side``: when given, a large JPEG may be decoded at a reduced scale (DCT scaling) whose
    shorter side is still at least twice ``min_side``. ``data``: the file's bytes when the caller
    has read them already (``read_whole``); the file is then not read again. ``turbo``: JPEGs in
    hand as bytes are decoded through ``mmcli.media.jpeg`` where it can (the same pixels, less CPU);
    False: Pillow alone (the benchmark's and the tests' reference).
    """
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    register_heif()
    name = os.fsdecode(path)
    if data is None:
        data = read_whole(path)
    take_over_pixel_limit()
    try:
        # a file too large to hold is decoded from a descriptor of the regular file read_whole checked
        source = io.BytesIO(data) if data is not None else open_file(path)
    except OSError as exc:
        raise file_error(name, exc, vanished=True) from None
    try:
        with source, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about odd files; real failures raise
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:  # parses the header only
                w, h = img.size
                too_large = oversize(name, w, h, max_pixels)
                if too_large is not None:
                    raise too_large
                if w == 0 or h == 0:
                    raise ImageLoadError(name, f"invalid size {w}x{h}")
                if img.format in jpeg.JPEG_FORMATS:
                    if data is None:
                        with open_file(path) as f:
                            data = f.read()
                    bomb = too_many_scans(name, data)
                    if bomb is not None:
                        raise bomb
                wanted = _draft_size(w, h, min_side) if img.format in jpeg.JPEG_FORMATS else None
                fast = None
                if turbo and data is not None:
                    fast = jpeg.decode(img, data, jpeg.draft_scale(w, h, wanted) if wanted else 1)
                if fast is not None:
                    upright = jpeg.orient(fast, img.getexif().get(0x0112, 1))
                else:
                    if wanted and img.mode in ("RGB", "L", "CMYK", "YCbCr"):
                        img.draft(img.mode, wanted)
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
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise file_error(name, exc, vanished=True) from None
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


def load_resized(
    path: str | os.PathLike[str],
    preprocess: Preprocess,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
) -> np.ndarray:
    """Decode one file and resize it to the model input: (H, W, 3) uint8, not yet normalised (what the
    Ray workers send on; ``load_pixels`` normalises)."""
    img = load_image(path, max_pixels, preprocess.min_side, data)
    return _resized(path, img, preprocess)


def _resized(path: str | os.PathLike[str], img: Image.Image, preprocess: Preprocess) -> np.ndarray:
    try:
        arr = np.asarray(preprocess.resize(img), dtype=np.uint8)
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageLoadError(os.fsdecode(path), f"cannot preprocess: {exc}") from None
    if arr.shape != (*preprocess.size, 3):
        raise ImageLoadError(os.fsdecode(path), f"cannot preprocess: got {arr.shape}")
    return arr


def load_pixels(
    path: str | os.PathLike[str],
    preprocess: Preprocess,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast_decode: bool = True,
    data: bytes | None = None,
) -> np.ndarray:
    """Decode and preprocess one file into model input: (3, H, W) float32 (``data``: its bytes, if read)."""
    img = load_image(path, max_pixels, preprocess.min_side if fast_decode else None, data)
    return preprocess.normalise(_resized(path, img, preprocess))


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text; undecodable bytes become surrogate escapes (round-trip to os.fsencode)."""
    return os.fsdecode(path)
