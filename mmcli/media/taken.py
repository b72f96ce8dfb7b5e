"""When a picture was taken: its EXIF header, else the file's mtime. (The dates users give:
``mmcli.queries.dates``.)

What an index stores per file (format 3), and how it is written (``Taken.iso``):

=============  ==========================================================  ===========================
taken_source   taken (unix seconds, for filtering and ordering)            ISO 8601 form
=============  ==========================================================  ===========================
``exif``       DateTimeOriginal at OffsetTimeOriginal: the real moment      ``2024-05-01T10:00:00+02:00``
``exif-local`` DateTimeOriginal without an offset: the camera's wall clock  ``2024-05-01T10:00:00``
               read as if it were UTC
``mtime``      the file's modification time                                 ``2024-05-01T08:00:00Z`` (UTC)
=============  ==========================================================  ===========================

A file whose header has no usable date and whose mtime no calendar can show (years outside
1-9999) has none: ``taken`` NULL, ``taken_source`` ``none`` (read, not to be read again), left
out of ``--after``/``--before`` and last in ``--sort date``.

The rule: an offset is written when the moment is known (the camera's own offset, or UTC for an
mtime), none when the camera recorded only its wall clock. A date that cannot be used
(``0000:00:00 00:00:00``, out of range, not text) counts as absent: the mtime is used instead.

No heavy imports at module level (PIL is imported where a header is read: ``mmcli.media.exif``).
"""

from __future__ import annotations

import datetime as dt
import math
import re

from mmcli.media.exif import HEAD_BYTES, Tags, read_tags  # noqa: F401 (HEAD_BYTES: read by media.files)
from mmcli.queries.dates import MAX_STAMP, MIN_STAMP, UTC
from mmcli.results import Taken, iso  # noqa: F401 (the dates' types live with the results)

SOURCES = ("exif", "exif-local", "mtime")
NO_DATE = Taken(math.nan, "none")  # read, and no date to be had: stored as NULL with source "none"
DATE_TIME_ORIGINAL = 36867
OFFSET_TIME_ORIGINAL = 36881
MIN_YEAR, MAX_YEAR = 1800, 2200  # outside: a broken camera clock, not a date

_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")
_EXIF_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def short(value: str | None) -> str:
    """``2024-05-01T10:00:00+02:00`` -> ``2024-05-01 10:00`` (tables); None -> ``-``."""
    return value[:16].replace("T", " ") if value else "-"


# ------------------------------------------------------------------------------ reading headers
def exif_date(raw: object, offset: object = None) -> tuple[float, int | None] | None:
    """(unix seconds, offset or None) of an EXIF DateTimeOriginal (and OffsetTimeOriginal), or None
    when it is not a usable date."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    m = _EXIF_DATE.match(raw.strip("\x00 "))
    if not m:
        return None
    try:
        wall = dt.datetime(*(int(g) for g in m.groups()), tzinfo=UTC)
    except ValueError:
        return None
    if not MIN_YEAR <= wall.year <= MAX_YEAR:
        return None
    seconds = _offset_seconds(offset)
    if seconds is None:
        return wall.timestamp(), None
    return wall.timestamp() - seconds, seconds


def _offset_seconds(raw: object) -> int | None:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    m = _EXIF_OFFSET.match(raw.strip("\x00 "))
    if not m:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes > 59:
        return None
    return (1 if m.group(1) == "+" else -1) * (hours * 3600 + minutes * 60)


def taken_from(tags: Tags | None) -> tuple[float, int | None] | None:
    """(unix seconds, offset or None) of a header's DateTimeOriginal, or None."""
    if tags is None:
        return None
    return exif_date(tags.exif.get(DATE_TIME_ORIGINAL), tags.exif.get(OFFSET_TIME_ORIGINAL))


def mtime_taken(mtime: float) -> Taken:
    """A file's mtime as its date; ``NO_DATE`` for one no calendar date can show (a clock set
    centuries off: years outside 1-9999, as ``touch -d @99999999999999`` leaves on tmpfs)."""
    if not (math.isfinite(mtime) and MIN_STAMP <= mtime <= MAX_STAMP):
        return NO_DATE
    return Taken(mtime, "mtime")


def from_header(head: bytes, mtime: float, path: str | None = None, size: int | None = None) -> Taken:
    """The capture time from the first bytes of an image file (``head``), else ``mtime`` (``NO_DATE``
    when neither is a date). When the header does not fit in ``head`` and ``path`` is given, the
    file's header is opened itself (a regular file only)."""
    return taken_of(read_tags(head, path, size), mtime)


def taken_of(tags: Tags | None, mtime: float) -> Taken:
    """The capture time of a header's tags, else ``mtime`` (``NO_DATE`` when neither is a date)."""
    found = taken_from(tags)
    if found is None:
        return mtime_taken(mtime)
    when, offset = found
    return Taken(when, "exif" if offset is not None else "exif-local", offset)
