"""The dates users give (``--after``/``--before``, ``after``/``before`` of ``POST /search``) and the
instants an index stores (unix seconds, UTC).

``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` (a period), or an ISO 8601 date and time (an instant, ``Z`` or an
offset allowed). Without an offset they are read as UTC, like camera times without one, so a search
means the same on every machine. ``--after X`` keeps what was taken at or after the start of X;
``--before X`` what was taken before the end of X: ``--after 2024 --before 2024`` is the whole year.
(Capture times read from files: ``mmcli.media.taken``.)
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from mmcli.errors import UsageError

_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
UTC = dt.timezone.utc
DAY = 86400
EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
# the instants every offset can show as a date of years 1-9999 (a day's margin either side)
MIN_STAMP = (dt.date.min.toordinal() + 1 - EPOCH_DAY) * DAY
MAX_STAMP = (dt.date.max.toordinal() - EPOCH_DAY) * DAY
FAR_OFFSET = 24 * 3600 - 60  # the largest UTC offset an ISO date and time can carry (23:59)


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
