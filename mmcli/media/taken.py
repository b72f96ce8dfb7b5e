"""When a picture was taken: its EXIF header, else the file's mtime; and the dates users give.

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

Dates users give (``--after``/``--before``, ``after``/``before`` of ``POST /search``): ``YYYY``,
``YYYY-MM``, ``YYYY-MM-DD`` (a period), or an ISO 8601 date and time (an instant, ``Z`` or an
offset allowed). Without an offset they are read as UTC, like camera times without one, so a search
means the same on every machine. ``--after X`` keeps what was taken at or after the start of X;
``--before X`` what was taken before the end of X: ``--after 2024 --before 2024`` is the whole year.

No heavy imports at module level (PIL is imported where a header is read: ``mmcli.media.exif``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re

from mmcli.errors import UsageError
from mmcli.media.exif import HEAD_BYTES, Tags, read_tags  # noqa: F401 (HEAD_BYTES: read by media.files)
from mmcli.results import Taken, iso  # noqa: F401 (the dates' types live with the results)

SOURCES = ("exif", "exif-local", "mtime")
NO_DATE = Taken(math.nan, "none")  # read, and no date to be had: stored as NULL with source "none"
DATE_TIME_ORIGINAL = 36867
OFFSET_TIME_ORIGINAL = 36881
MIN_YEAR, MAX_YEAR = 1800, 2200  # outside: a broken camera clock, not a date

_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")
_EXIF_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
UTC = dt.timezone.utc
DAY = 86400
EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
# the instants every offset can show as a date of years 1-9999 (a day's margin either side)
MIN_STAMP = (dt.date.min.toordinal() + 1 - EPOCH_DAY) * DAY
MAX_STAMP = (dt.date.max.toordinal() - EPOCH_DAY) * DAY


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


# ------------------------------------------------------------------------------ dates users give
def parse_date(value: str, end: bool = False, what: str = "date") -> float:
    """Unix seconds of the start (or with ``end``, the end) of ``value``: ``YYYY``, ``YYYY-MM``,
    ``YYYY-MM-DD``, or an ISO 8601 date and time (an instant: start and end are the same). Years
    0001-9999 (the end of 9999 is an instant no ``datetime`` holds: counted in days here)."""
    text = value.strip()
    m = _PERIOD.match(text)
    try:
        if m:
            year = int(m.group(1))
            month = int(m.group(2) or 1)
            day = int(m.group(3) or 1)
            first = dt.date(year, month, day).toordinal()
            if not end:
                length = 0
            elif m.group(3):
                length = 1
            elif m.group(2):
                length = calendar.monthrange(year, month)[1]
            else:
                length = 366 if calendar.isleap(year) else 365
            return float((first + length - EPOCH_DAY) * DAY)
        if len(text) < 11 or text[10] not in "Tt " or not _PERIOD.match(text[:10]):
            raise ValueError(text)
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise UsageError(
            f"{what} {value!r} is not a date",
            hint="give YYYY, YYYY-MM, YYYY-MM-DD or an ISO date and time (2024-05-01T10:00, 2024-05-01T10:00+02:00)",
        ) from None


def period(after: str | None, before: str | None) -> tuple[float | None, float | None]:
    """``--after`` / ``--before`` as unix seconds: taken >= start of ``after``, < end of ``before``."""
    start = parse_date(after, what="--after") if after is not None else None  # "" is not a date: an error
    stop = parse_date(before, end=True, what="--before") if before is not None else None
    if start is not None and stop is not None and start >= stop:
        raise UsageError(f"--after {after} --before {before} leaves no time between them")
    return start, stop


def as_text(seconds: float) -> str:
    """An instant as an ISO 8601 string that ``parse_date`` reads back to the same seconds. Instants
    just past the years ``datetime`` holds (the end of 9999, what a date with an offset gives) are
    written with the offset that brings them inside."""
    try:
        return dt.datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        pass
    for offset in (-FAR_OFFSET, FAR_OFFSET):
        try:
            wall = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds + offset)
        except OverflowError:
            continue
        return wall.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset))).isoformat()
    raise UsageError(f"{seconds} is beyond the dates mmcli can name")


FAR_OFFSET = 24 * 3600 - 60  # the largest UTC offset an ISO date and time can carry (23:59)
