"""Pictures for the search page of `mmcli serve`: cached thumbnails, full images a browser can show,
a video's frame at a moment, and uploaded query images.

Everything is decoded by ``mmcli.media.images.load_image`` (decompression-bomb limit, EXIF orientation,
typed errors) or, for a video, ``mmcli.media.video.frame_picture``. Thumbnails are cached under the
cache folder, keyed by the file's real path, the size, its mtime and its byte size (and a video's
moment), and written atomically. The cache is private (folders 0700, files 0600: a thumbnail shows
what its photo shows; looser folders an older mmcli left are tightened when used) and disposable:
one that cannot be written (read-only, full, not a folder) is done without, with one warning.
An uploaded image lives in a private temporary file for one search, never in the photo folders.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.atomic import atomic_write_bytes
from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.files import media_stat, open_file
from mmcli.media.images import load_image
from mmcli.media.limits import oversize, take_over_pixel_limit
from mmcli.media.thumbnail import render_thumbnail
from mmcli.media.video import frame_picture, is_video

if TYPE_CHECKING:
    from PIL import Image

THUMB_FORMAT = "mmcli-thumb/1"  # part of every cache key: a new format never reads an old file
THUMB_SIZES = (128, 256, 512, 1024)
FRAME_SIDE = 4096  # a video's frame for /image: as the player shows it, up to this on its shorter side
BROWSER_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}
STALE_UPLOAD_S = 3600  # uploads left behind by a killed server are removed after this long


class NotStored(Exception):
    """An upload that no folder could hold for its search (503)."""


class PictureCache:
    """The server's disposable cache folder (thumbnails, uploads): private, and done without, with one
    warning (``warn``), where it cannot be written."""

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.warn = warn or logging.getLogger("uvicorn.error").warning
        self._warned = False
        self._lock = threading.Lock()

    def private_folder(self, *parts: str) -> Path | None:
        """``folder/parts...``, each made 0700 (or tightened to it); None (warned once) if it cannot be."""
        try:
            here = _private(self.folder, root=True)
            for part in parts:
                here = _private(here / part)
        except OSError as exc:
            self.unusable(exc)
            return None
        return here

    def unusable(self, exc: OSError) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        self.warn(
            f"the cache folder {self.folder} cannot be written ({exc.strerror or exc}): thumbnails are made "
            "afresh each time and uploads go to a private temporary folder"
        )


def _private(folder: Path, root: bool = False) -> Path:
    """Make ``folder`` (mode 0700) or tighten an existing one of ours to 0700. The cache root itself is
    left as it is where it is shared (sticky, like /tmp) or someone else's."""
    if root:
        folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.stat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(20, "not a folder", str(folder))
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose and st.st_uid == os.getuid() and not (root and st.st_mode & stat.S_ISVTX):
        os.chmod(folder, stat.S_IMODE(st.st_mode) & 0o700)
    return folder


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


def cached_thumbnail(
    path: str, size: int, cache: PictureCache, moment: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """A JPEG thumbnail of ``path`` (a video: its frame at ``moment`` seconds, else its first) at most
    ``thumb_size(size)`` pixels on its longer side, from the cache when the file is unchanged; raises
    ImageLoadError for a file that is not a readable image or video."""
    real = os.path.realpath(path)
    side = thumb_size(size)
    st = media_stat(real)
    video = is_video(real)
    key = _key(real, side, st.st_mtime_ns, st.st_size, *((moment or 0.0,) if video else ()))
    folder = cache.private_folder("thumbs", key[:2])
    if folder is not None:
        cached = _read_private(folder / f"{key}.jpg")
        if cached is not None:
            return Picture("image/jpeg", key, data=cached)
    img = _frame(real, moment, side) if video else render_thumbnail(real, side, max_pixels)
    img.thumbnail((side, side))
    data = _jpeg(img, 85)
    if folder is not None:
        try:
            atomic_write_bytes(folder / f"{key}.jpg", data, private=True)  # mode 0600
        except OSError as exc:  # a full or read-only cache: the thumbnail is still served
            cache.unusable(exc)
    return Picture("image/jpeg", key, data=data)


def _read_private(file: Path) -> bytes | None:
    """A cached file's bytes (tightened to 0600 if an older mmcli left it looser), or None."""
    try:
        with open_file(file) as f:
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
                os.fchmod(f.fileno(), 0o600)
            return f.read()
    except OSError:
        return None


def _frame(real: str, moment: float | None, side: int) -> Image.Image:
    when = moment or 0.0
    img = frame_picture(real, when, side)
    if img is None:
        raise ImageLoadError(real, f"no picture at {when:g} s (not a video, or a corrupt one)")
    return img


def browser_image(path: str, moment: float | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """``path`` as a browser can show it: the file itself for JPEG, PNG, GIF, WebP and BMP (checked
    by its content, not its name), else (TIFF, HEIC, ...) decoded safely and sent as a JPEG; a video's
    frame at ``moment`` seconds as a JPEG."""
    from PIL import Image

    real = os.path.realpath(path)
    st = media_stat(real)
    if is_video(real):
        key = _key("frame", real, st.st_mtime_ns, st.st_size, moment or 0.0)
        return Picture("image/jpeg", key, data=_jpeg(_frame(real, moment, FRAME_SIDE), 90))
    key = _key("full", real, st.st_mtime_ns, st.st_size)
    take_over_pixel_limit()
    try:
        with open_file(real) as f, Image.open(f) as img:  # the header only
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
def uploaded_image(data: bytes, cache: PictureCache, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[str]:
    """The uploaded bytes as a private temporary file (under ``cache/uploads``, else, where the cache
    cannot be written, in a private folder of the system's temporary folder) while the block runs,
    after checking they decode as an image (ImageLoadError naming "the uploaded file" if not)."""
    tmp, elsewhere = _store_upload(data, cache)
    try:
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
        if elsewhere is not None:
            shutil.rmtree(elsewhere, ignore_errors=True)


def _store_upload(data: bytes, cache: PictureCache) -> tuple[str, Path | None]:
    """(the file holding ``data``, the private folder made for it outside the cache or None)."""
    folder = cache.private_folder("uploads")
    if folder is not None:
        _remove_stale(folder)
        try:
            return _write_private(folder, data), None
        except OSError as exc:  # a cache that fills up
            cache.unusable(exc)
    try:
        elsewhere = Path(tempfile.mkdtemp(prefix="mmcli-upload-"))  # mode 0700
    except OSError as exc:
        raise NotStored(f"the uploaded image cannot be stored for the search ({exc.strerror or exc})") from None
    try:
        return _write_private(elsewhere, data), elsewhere
    except OSError as exc:
        shutil.rmtree(elsewhere, ignore_errors=True)
        raise NotStored(f"the uploaded image cannot be stored for the search ({exc.strerror or exc})") from None


def _write_private(folder: Path, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".img", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_UPLOAD_S
    for entry in folder.glob("upload-*.img"):
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
        except OSError:
            pass
