"""A file's EXIF header, read once from its first bytes: the tags of IFD0, the Exif IFD and the GPS IFD.

One parse serves the capture time (``mmcli.media.taken``) and the camera and position
(``mmcli.media.camera``). Pillow reads the header only (no pixel is decoded) of JPEG, PNG (eXIf),
WebP, TIFF and, with pillow-heif, HEIC/AVIF. Any failure of the foreign parser on a foreign file
means: no tags. PIL is imported where a header is read.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mmcli.media.regular import open_file

HEAD_BYTES = 1 << 20  # the EXIF header of a JPEG, PNG, WebP or TIFF lies within its first MiB
EXIF_IFD = 0x8769
GPS_IFD = 0x8825


@dataclass(frozen=True)
class Tags:
    """The tags of one header by number: ``image`` (IFD0: Make, Model), ``exif`` (the Exif IFD: dates,
    lens), ``gps`` (the GPS IFD). Values as Pillow gives them (str, int, IFDRational, tuples, bytes)."""

    image: Mapping[int, Any] = field(default_factory=dict)
    exif: Mapping[int, Any] = field(default_factory=dict)
    gps: Mapping[int, Any] = field(default_factory=dict)


NO_TAGS = Tags()


@functools.cache
def quiet_pillow() -> None:
    """Pillow warns about odd EXIF data; a tag it cannot give is simply absent. Set once per
    process, never undone (``warnings.catch_warnings`` is not safe from the hashing threads)."""
    import warnings

    from mmcli.media.limits import register_heif, take_over_pixel_limit

    register_heif()  # HEIC/AVIF headers too, when pillow-heif is installed
    take_over_pixel_limit()  # no decompression-bomb warning or error from merely opening a header
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def _ifd(exif: Any, tag: int, lenient: bool) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:  # noqa: BLE001  a broken sub-IFD: only that part is absent
        if not lenient:
            raise
        return {}


def tags_of(source: BinaryIO, lenient: bool = False) -> Tags | None:
    """The header's tags (None: the file has no EXIF). Raises whatever Pillow raises on a file it
    cannot open, and (unless ``lenient``) on an Exif IFD it cannot read, which may lie past the bytes
    given; a GPS IFD that cannot be read is absent. Every IFD is copied before the file is closed."""
    from PIL import Image

    with Image.open(source) as im:  # the header only: no pixel is decoded
        raw = im.info.get("exif")
        if isinstance(raw, bytes):
            exif = Image.Exif()
            exif.load(raw)
        elif im.format == "TIFF":
            exif = im.getexif()
        else:
            return None
        return Tags(dict(exif), _ifd(exif, EXIF_IFD, lenient), _ifd(exif, GPS_IFD, True))


def read_tags(head: bytes, path: str | None = None, size: int | None = None) -> Tags | None:
    """The tags from the first bytes of a file (``head``). When the header does not fit in ``head``
    and ``path`` is given, the file's header is opened itself (a regular file only). None when there
    are none, or the header cannot be read."""
    quiet_pillow()
    whole = path is None or (size is not None and size <= len(head))  # nothing more to read
    try:
        return tags_of(io.BytesIO(head), lenient=whole)
    except Exception:  # noqa: BLE001  any failure of a foreign parser on a foreign file: no tags
        if whole:
            return None
    try:
        with open_file(path) as f:
            return tags_of(f, lenient=True)
    except Exception:  # noqa: BLE001
        return None


def read_file_tags(path: str) -> Tags | None:
    """The tags of the file at ``path`` (its first ``HEAD_BYTES``, more when its header is longer)."""
    try:
        with open_file(path) as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    return read_tags(head, path)
