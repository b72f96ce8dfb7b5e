"""What took a picture and where: EXIF Make, Model, LensModel, LensMake and the GPS position, from the
same one read of a file's header as its date (``mmcli.media.exif``); a video's from its metadata.

The rules (a tag that breaks them is absent, never an error):

- Text tags: str or bytes (ASCII, else UTF-8, else Latin-1), NULs and spaces at the ends stripped,
  at most ``MAX_TEXT`` characters kept; empty or another type: absent.
- A position needs all four GPS tags: GPSLatitudeRef ``N``/``S``, GPSLatitude, GPSLongitudeRef
  ``E``/``W``, GPSLongitude. A value is degrees, minutes and seconds (rationals; 1 to 3 of them, as
  cameras that write decimal degrees do), each finite and not negative, minutes and seconds below
  60.5. A missing or unknown ref gives no position (a hemisphere guessed is a place invented), nor a
  zero denominator, a string where a number belongs, or a result outside [-90, 90] x [-180, 180].
  Exactly (0, 0) is a receiver without a fix, not a place: no position.
- Videos (PyAV, ``mmcli[video]``): ``com.apple.quicktime.location.ISO6709`` or ``location`` (an ISO 6709
  string such as ``+47.2692+011.4041/``, as iPhones and Android phones write); ``com.apple.quicktime.make``
  / ``make`` / ``com.android.manufacturer``, and the matching model keys.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mmcli.media.exif import HEAD_BYTES, Tags, read_tags
from mmcli.media.regular import open_file, pinned
from mmcli.media.taken import taken_of
from mmcli.results import Camera, Header, Position

MAKE, MODEL = 0x010F, 0x0110  # IFD0
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434  # the Exif IFD
LAT_REF, LAT, LON_REF, LON = 1, 2, 3, 4  # the GPS IFD
MAX_TEXT = 256
MAX_MINUTES = 60.5  # minutes and seconds as rationals: 59.9999 rounds up, 60 happens; 61 is broken


def text(raw: object) -> str | None:
    """A text tag's value, or None (see the module's rules)."""
    if isinstance(raw, bytes):
        for encoding in ("ascii", "utf-8", "latin-1"):
            try:
                raw = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
    if not isinstance(raw, str):
        return None
    value = raw.strip("\x00 \t\r\n")
    return value[:MAX_TEXT] or None


def camera_from(tags: Tags | None) -> Camera | None:
    """The camera and lens a header names, or None when it names none."""
    if tags is None:
        return None
    camera = Camera(
        text(tags.image.get(MAKE)),
        text(tags.image.get(MODEL)),
        text(tags.exif.get(LENS_MODEL)),
        text(tags.exif.get(LENS_MAKE)),
    )
    return None if camera == Camera() else camera


def number(raw: object) -> float | None:
    """A finite number from an EXIF value: an int, a float, a rational (Pillow's IFDRational, or a
    (numerator, denominator) pair); None for anything else, a zero denominator included."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, tuple) and len(raw) == 2 and all(isinstance(v, int) for v in raw):
        num, den = raw
        value = num / den if den else math.nan
    elif isinstance(raw, (int, float)):
        value = float(raw)
    elif hasattr(raw, "numerator") and hasattr(raw, "denominator"):  # IFDRational, Fraction
        try:
            value = math.nan if not raw.denominator else float(raw.numerator) / float(raw.denominator)
        except (TypeError, ValueError, OverflowError):
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def degrees(raw: object) -> float | None:
    """Degrees, minutes and seconds (1 to 3 numbers) as degrees, or None."""
    if not isinstance(raw, (tuple, list)) or not 1 <= len(raw) <= 3:
        value = number(raw)  # a lone rational
        return value if value is not None and value >= 0 else None
    parts = [number(v) for v in raw]
    if any(p is None or p < 0 for p in parts):
        return None
    if any(p > MAX_MINUTES for p in parts[1:]):  # type: ignore[operator]
        return None
    return sum(p / 60**i for i, p in enumerate(parts))  # type: ignore[operator]


def _ref(raw: object, positive: str, negative: str) -> int | None:
    value = text(raw)
    if value is None:
        return None
    value = value.upper()
    return 1 if value == positive else -1 if value == negative else None


def position_from(gps: Mapping[int, Any] | None) -> Position | None:
    """The position of a GPS IFD's tags, or None (see the module's rules)."""
    if not gps:
        return None
    lat_sign, lon_sign = _ref(gps.get(LAT_REF), "N", "S"), _ref(gps.get(LON_REF), "E", "W")
    lat, lon = degrees(gps.get(LAT)), degrees(gps.get(LON))
    if lat_sign is None or lon_sign is None or lat is None or lon is None:
        return None
    return checked(lat_sign * lat, lon_sign * lon)


def checked(lat: float, lon: float) -> Position | None:
    """A position when (lat, lon) is one: finite, in range, not exactly (0, 0)."""
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    if lat == 0 and lon == 0:
        return None
    return Position(lat + 0.0, lon + 0.0)  # (-0.0 becomes 0.0)


# ISO 6709 (Annex H): latitude ±DD[.D], ±DDMM[.M] or ±DDMMSS[.S]; longitude one digit more each (fewer
# degree digits are read as degrees too); then an optional altitude, an optional CRS, and a closing "/".
_ISO6709 = re.compile(r"^\s*([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d*)?)?(?:CRS[^/]*)?/?\s*$")


def _iso_part(value: str, degree_digits: int) -> float:
    """One coordinate of ISO 6709: its form told by the count of digits before the point."""
    sign = -1.0 if value[0] == "-" else 1.0
    whole, _, fraction = value[1:].partition(".")
    frac = float("0." + fraction) if fraction else 0.0
    n = len(whole)
    if n <= degree_digits:
        return sign * (int(whole) + frac)
    d, m, s = int(whole[:degree_digits]), int(whole[degree_digits : degree_digits + 2]), whole[degree_digits + 2 :]
    if n == degree_digits + 2 and m < 60:
        return sign * (d + (m + frac) / 60)
    if n == degree_digits + 4 and m < 60 and int(s) < 60:
        return sign * (d + m / 60 + (int(s) + frac) / 3600)
    return math.nan


def position_from_iso6709(raw: object) -> Position | None:
    """``+47.2692+011.4041/`` (``+47.2692+011.4041+574.000/``, ``+4716.152+01124.246/``) -> a
    position, or None."""
    value = text(raw)
    m = _ISO6709.match(value) if value else None
    if m is None:
        return None
    return checked(_iso_part(m.group(1), 2), _iso_part(m.group(2), 3))


MAKE_KEYS = ("com.apple.quicktime.make", "make", "com.android.manufacturer")
MODEL_KEYS = ("com.apple.quicktime.model", "model", "com.android.model")
LOCATION_KEYS = ("com.apple.quicktime.location.iso6709", "location", "location-eng")


def _first(metadata: Mapping[str, str], keys: Sequence[str]) -> str | None:
    folded = {k.lower(): v for k, v in metadata.items()}
    for key in keys:
        value = text(folded.get(key))
        if value is not None:
            return value
    return None


def video_header(metadata: Mapping[str, str]) -> tuple[Camera | None, Position | None]:
    """The camera and position of a video's container metadata (PyAV's ``container.metadata``)."""
    camera = Camera(_first(metadata, MAKE_KEYS), _first(metadata, MODEL_KEYS))
    location = _first(metadata, LOCATION_KEYS)
    return (None if camera == Camera() else camera), position_from_iso6709(location)


def read_video_header(path: str) -> tuple[Camera | None, Position | None]:
    """A video file's camera and position (PyAV opens its container; nothing is decoded). (None, None)
    when PyAV is missing or cannot open the file."""
    try:
        import av
    except ImportError:
        return None, None
    try:
        with pinned(path) as safe, av.open(safe, metadata_errors="ignore") as container:
            metadata = dict(container.metadata)
    except Exception:  # noqa: BLE001  FFmpeg's errors on a foreign file: nothing to read
        return None, None
    return video_header(metadata)


def read_header(head: bytes, mtime: float, path: str | None = None, size: int | None = None) -> Header:
    """One parse of an image file's first bytes: when (``mmcli.media.taken``'s rules), by what, where."""
    tags = read_tags(head, path, size)
    return Header(taken_of(tags, mtime), camera_from(tags), position_from(tags.gps if tags else None))


def read_file_header(path: str) -> Header:
    """``read_header`` of the file at ``path`` (a regular file), its mtime the fallback date."""
    with open_file(path) as f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
    return read_header(head, st.st_mtime, path, st.st_size)
