"""Pictures with real EXIF camera and GPS tags, for the readers' tests (and the index's and search's).

``write_shots(folder)`` writes one JPEG per ``SHOTS`` entry: a shape the tiny model knows (``mmcli.demo``),
its EXIF written by piexif (cameras: a phone, DSLRs with lenses, a drone; positions on every continent,
near the antimeridian and the poles), or, for the malformed ones piexif refuses to write, by
``raw_exif`` here (a TIFF structure with any tag type, count and offset). Each entry says what a
reader must find: the camera, the position (None: none), and the gazetteer's nearest place.

    python tests/exif_fixtures.py DIR     # writes them into DIR (for trying exiftool on them)
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmcli.demo.shapes import ShapeSpec, draw_shape
from mmcli.results import Camera, Position

# TIFF types: BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SRATIONAL -> bytes per value
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 10: 8}
ASCII, SHORT, LONG, RATIONAL = 2, 3, 4, 5
GPS_POINTER = 0x8825


@dataclass(frozen=True)
class Entry:
    """One raw IFD entry: ``data`` is the value's bytes (little-endian), written as they are."""

    tag: int
    type: int
    count: int
    data: bytes


def ascii_entry(tag: int, value: str) -> Entry:
    raw = value.encode() + b"\0"
    return Entry(tag, ASCII, len(raw), raw)


def rational_entry(tag: int, pairs: Sequence[tuple[int, int]]) -> Entry:
    return Entry(tag, RATIONAL, len(pairs), b"".join(struct.pack("<II", n, d) for n, d in pairs))


def _ifd(entries: Sequence[Entry], at: int) -> tuple[bytes, bytes]:
    """(the IFD's bytes, its data area) for an IFD starting at offset ``at``; data right after it."""
    entries = sorted(entries, key=lambda e: e.tag)
    data_at = at + 2 + 12 * len(entries) + 4
    table, data = struct.pack("<H", len(entries)), b""
    for e in entries:
        if len(e.data) <= 4:
            table += struct.pack("<HHI", e.tag, e.type, e.count) + e.data.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", e.tag, e.type, e.count, data_at + len(data))
            data += e.data + (b"\0" if len(e.data) % 2 else b"")
    return table + struct.pack("<I", 0), data


def raw_exif(image: Sequence[Entry] = (), gps: Sequence[Entry] | None = None, gps_offset: int | None = None) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + TIFF) with IFD0 ``image`` and a GPS IFD ``gps``; ``gps_offset``
    points IFD0's GPS pointer anywhere (past the end, say) instead of at the GPS IFD."""
    header = b"II*\0" + struct.pack("<I", 8)
    pointer = Entry(GPS_POINTER, LONG, 1, b"\0\0\0\0") if gps is not None or gps_offset is not None else None
    first = [*image, *([pointer] if pointer else [])]
    table, data = _ifd(first, 8)
    gps_at = 8 + len(table) + len(data)
    if pointer is not None:
        first = [*image, Entry(GPS_POINTER, LONG, 1, struct.pack("<I", gps_at if gps_offset is None else gps_offset))]
        table, data = _ifd(first, 8)
    tiff = header + table + data
    if gps is not None:
        gps_table, gps_data = _ifd(gps, gps_at)
        tiff += gps_table + gps_data
    return b"Exif\0\0" + tiff


def dms(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """|value| degrees as EXIF rationals: degrees, minutes, seconds (hundredths)."""
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60 * 100)
    return (d, 1), (m, 1), (s, 100)


def gps_tags(lat: float, lon: float) -> dict[int, object]:
    """piexif's GPS IFD for a position."""
    return {1: b"N" if lat >= 0 else b"S", 2: dms(lat), 3: b"E" if lon >= 0 else b"W", 4: dms(lon)}


@dataclass(frozen=True)
class Shot:
    """A picture to write: ``exif`` is piexif's dict (or raw bytes: ``raw_exif``), ``camera`` and
    ``position`` what a reader must find, ``place`` the nearest place's label (None: none within reach),
    ``shape`` what it shows."""

    name: str
    exif: dict[str, dict[int, object]] | bytes | None
    camera: Camera | None
    position: Position | None
    place: str | None
    shape: ShapeSpec = ShapeSpec("red", "circle")


def _camera_tags(make: str, model: str, lens: str | None = None, lens_make: str | None = None) -> dict:
    exif: dict[int, object] = {0x9003: b"2024:05:01 10:00:00"}  # DateTimeOriginal: one read gives both
    if lens is not None:
        exif[0xA434] = lens.encode()
    if lens_make is not None:
        exif[0xA433] = lens_make.encode()
    return {"0th": {0x010F: make.encode(), 0x0110: model.encode()}, "Exif": exif}


def _shot(name: str, camera: Camera, lat: float, lon: float, place: str | None, shape: ShapeSpec) -> Shot:
    tags = _camera_tags(camera.make or "", camera.model or "", camera.lens, camera.lens_make)
    tags["GPS"] = gps_tags(lat, lon)
    # what the rationals hold: seconds to 1/100 (a reader's result is compared with a tolerance)
    return Shot(name, tags, camera, Position(lat, lon), place, shape)


PHONE = Camera("Apple", "iPhone 15 Pro", "iPhone 15 Pro back triple camera 6.765mm f/1.78", "Apple")
DSLR = Camera("Canon", "Canon EOS 5D Mark IV", "EF24-70mm f/2.8L II USM", "Canon")
NIKON = Camera("NIKON CORPORATION", "NIKON D850", "AF-S NIKKOR 24-70mm f/2.8E ED VR")
SONY = Camera("SONY", "ILCE-7M3", "FE 24-105mm F4 G OSS")
DRONE = Camera("DJI", "FC3411")
PIXEL = Camera("Google", "Pixel 8")

SHOTS: tuple[Shot, ...] = (
    _shot("innsbruck_phone", PHONE, 47.2692, 11.4041, "Innsbruck, AT", ShapeSpec("red", "circle")),
    _shot("sydney_dslr", DSLR, -33.8688, 151.2093, "Sydney, AU", ShapeSpec("blue", "square")),
    _shot("capetown_drone", DRONE, -33.9249, 18.4241, "Cape Town, ZA", ShapeSpec("green", "star")),
    _shot("buenosaires_nikon", NIKON, -34.6037, -58.3816, "Buenos Aires, AR", ShapeSpec("yellow", "triangle")),
    _shot("tokyo_sony", SONY, 35.6895, 139.6917, "Tokyo, JP", ShapeSpec("red", "square")),
    _shot("suva_antimeridian", PIXEL, -18.1416, 178.4415, "Suva, FJ", ShapeSpec("blue", "circle")),
    _shot("dateline_east", PIXEL, -16.80, -179.95, "Labasa, FJ", ShapeSpec("green", "circle")),
    _shot("arctic_drone", DRONE, 89.90, 30.0, None, ShapeSpec("blue", "star")),
    _shot("antarctic_phone", PHONE, -89.95, -120.0, None, ShapeSpec("yellow", "circle")),
    Shot("no_exif", None, None, None, None, ShapeSpec("green", "square")),
    Shot("camera_only", _camera_tags("FUJIFILM", "X-T5", "XF16-55mmF2.8 R LM WR", "FUJIFILM"),
         Camera("FUJIFILM", "X-T5", "XF16-55mmF2.8 R LM WR", "FUJIFILM"), None, None),
    Shot("gps_no_refs", {"0th": {0x010F: b"DJI", 0x0110: b"FC3411"}, "GPS": {2: dms(47.2692), 4: dms(11.4041)}},
         DRONE, None, None),
    Shot("gps_zero_denominator", {"GPS": {1: b"N", 2: ((47, 1), (15, 0), (0, 1)), 3: b"E", 4: dms(11.4041)}},
         None, None, None),
    Shot("gps_lat_95", {"GPS": {1: b"N", 2: ((95, 1), (0, 1), (0, 1)), 3: b"E", 4: dms(11.4041)}}, None, None, None),
    Shot("gps_minutes_75", {"GPS": {1: b"S", 2: ((33, 1), (75, 1), (0, 1)), 3: b"E", 4: dms(151.2)}}, None, None, None),
    Shot("gps_bad_ref", {"GPS": {1: b"X", 2: dms(47.2692), 3: b"E", 4: dms(11.4041)}}, None, None, None),
    Shot("gps_null_island", {"GPS": {1: b"N", 2: dms(0), 3: b"E", 4: dms(0)}}, None, None, None),
    Shot("gps_text_latitude", raw_exif(
        [ascii_entry(0x010F, "Canon"), ascii_entry(0x0110, "Canon EOS R5")],
        [ascii_entry(1, "N"), ascii_entry(2, "47.2692 deg N"), ascii_entry(3, "E"),
         rational_entry(4, dms(11.4041))],
    ), Camera("Canon", "Canon EOS R5"), None, None),
    Shot("gps_ifd_past_the_end", raw_exif([ascii_entry(0x010F, "DJI"), ascii_entry(0x0110, "FC3411")], None, 1 << 30),
         DRONE, None, None),
    Shot("gps_ifd_garbage", raw_exif(
        [ascii_entry(0x010F, "DJI"), ascii_entry(0x0110, "FC3411")],
        [Entry(1, 9, 1, b"\xff\xff\xff\xff"), Entry(2, RATIONAL, 200000, b"\x00\x10\x00\x00"),
         Entry(3, SHORT, 2, b"EW"), Entry(4, 77, 3, b"zzzz")],
    ), DRONE, None, None),
)  # fmt: skip


def jpeg_bytes(shot: Shot, size: int = 96) -> bytes:
    """The JPEG of ``shot``: its shape, its EXIF."""
    import piexif

    picture = draw_shape(shot.shape, size=size, seed=len(shot.name))
    out = io.BytesIO()
    if shot.exif is None:
        picture.save(out, "JPEG", quality=90)
    else:
        exif = shot.exif if isinstance(shot.exif, bytes) else piexif.dump(shot.exif)
        picture.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def write_shots(folder: Path, shots: Sequence[Shot] = SHOTS) -> dict[str, Path]:
    """Each shot as ``folder/<name>.jpg``; their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for shot in shots:
        path = folder / f"{shot.name}.jpg"
        path.write_bytes(jpeg_bytes(shot))
        paths[shot.name] = path
    return paths


if __name__ == "__main__":
    for path in write_shots(Path(sys.argv[1])).values():
        print(path)
