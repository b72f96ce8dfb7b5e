"""Pictures for the search page of `mmcli serve`: cached thumbnails, full images a browser can show,
and uploaded query images.

Everything is decoded by ``mmcli.media.images.load_image`` (decompression-bomb limit, EXIF orientation,
typed errors). Thumbnails are cached under the cache folder, keyed by the file's real path, the
size, its mtime and its byte size (a changed file gets a new key), and written atomically. An
uploaded image lives in a private temporary file under the cache folder for one search, never in
the photo folders.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.atomic import atomic_write_bytes
from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.files import media_stat
from mmcli.media.images import load_image
from mmcli.media.limits import oversize, take_over_pixel_limit
from mmcli.media.thumbnail import render_thumbnail

if TYPE_CHECKING:
    from PIL import Image

THUMB_FORMAT = "mmcli-thumb/1"  # part of every cache key: a new format never reads an old file
THUMB_SIZES = (128, 256, 512, 1024)
BROWSER_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}
STALE_UPLOAD_S = 3600  # uploads left behind by a killed server are removed after this long


@dataclass(frozen=True)
class Picture:
    """An image to send: ``data`` in memory, or the file at ``path`` as it is."""

    media_type: str
    etag: str
    data: bytes | None = None
    path: str | None = None


def thumb_size(asked: int) -> int:
    """The cached size that serves ``asked`` pixels: the smallest at least as large, else the largest."""
    return next((s for s in THUMB_SIZES if s >= asked), THUMB_SIZES[-1])


def _key(*parts: object) -> str:
    text = "\0".join(str(p) for p in (THUMB_FORMAT, *parts))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def cached_thumbnail(path: str, size: int, cache: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """A JPEG thumbnail of ``path`` at most ``thumb_size(size)`` pixels on its longer side, from the
    cache when the file is unchanged; raises ImageLoadError for a file that is not a readable image."""
    real = os.path.realpath(path)
    side = thumb_size(size)
    st = media_stat(real)
    key = _key(real, side, st.st_mtime_ns, st.st_size)
    file = cache / "thumbs" / key[:2] / f"{key}.jpg"
    try:
        return Picture("image/jpeg", key, data=file.read_bytes())
    except OSError:
        pass
    data = _jpeg(render_thumbnail(real, side, max_pixels), 85)
    try:
        atomic_write_bytes(file, data)
    except OSError:  # a read-only or full cache: the thumbnail is still served
        pass
    return Picture("image/jpeg", key, data=data)


def browser_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """``path`` as a browser can show it: the file itself for JPEG, PNG, GIF, WebP and BMP (checked
    by its content, not its name), else (TIFF, HEIC, ...) decoded safely and sent as a JPEG."""
    from PIL import Image

    real = os.path.realpath(path)
    st = media_stat(real)
    key = _key("full", real, st.st_mtime_ns, st.st_size)
    take_over_pixel_limit()
    try:
        with Image.open(real) as img:  # the header only
            kind, (w, h) = img.format, img.size
    except Exception:  # whatever Pillow raises: load_image below gives the reason
        kind, w, h = None, 0, 0
    too_large = oversize(path, w, h, max_pixels)
    if too_large is not None:
        raise too_large
    if kind in BROWSER_TYPES:
        return Picture(BROWSER_TYPES[kind], key, path=real)
    return Picture("image/jpeg", key, data=_jpeg(load_image(real, max_pixels), 90))


@contextmanager
def uploaded_image(data: bytes, cache: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[str]:
    """The uploaded bytes as a private temporary file under ``cache/uploads`` while the block runs,
    after checking they decode as an image (ImageLoadError naming "the uploaded file" if not)."""
    folder = cache / "uploads"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_stale(folder)
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".img", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            load_image(tmp, max_pixels, min_side=112)
        except ImageLoadError as exc:
            raise ImageLoadError("the uploaded file", exc.reason) from None
        yield tmp
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_UPLOAD_S
    for entry in folder.glob("upload-*.img"):
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
        except OSError:
            pass
