"""Capture times: read from EXIF (else the mtime) when indexing, filtered with --after/--before,
ordered with --sort, shown by search and info, and added in place to an index of format 2."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

import mmcli.engine.search
import mmcli.models
from mmcli.cli import app
from mmcli.demo.shapes import ShapeSpec, draw_shape
from mmcli.engine.local import LocalEngine
from mmcli.index.job import IndexJob
from mmcli.index.open import index_info
from mmcli.index.schema import FORMAT_VERSION
from mmcli.index.sync import run_index
from mmcli.media.taken import exif_date
from mmcli.queries import SearchRequest, build_terms
from mmcli.queries.dates import parse_date, period

UTC = dt.timezone.utc


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# name -> (EXIF DateTimeOriginal or None, OffsetTimeOriginal or None, mtime (UTC), expected taken, source)
FILES = {
    "red_circle.jpg": ("2023:05:01 10:00:00", "+02:00", "2030-01-01", "2023-05-01T10:00:00+02:00", "exif"),
    "blue_square.jpg": ("2023:07:15 12:00:00", None, "2030-01-01", "2023-07-15T12:00:00", "exif-local"),
    "green_triangle.jpg": ("2024:01:10 09:30:00", "-05:00", "2030-01-01", "2024-01-10T09:30:00-05:00", "exif"),
    "yellow_star.jpg": (None, None, "2022-03-01T00:00:00", "2022-03-01T00:00:00Z", "mtime"),
    "red_square.jpg": ("0000:00:00 00:00:00", None, "2021-06-01T12:00:00", "2021-06-01T12:00:00Z", "mtime"),
    "blue_circle.jpg": ("1200:01:01 00:00:00", "+01:00", "2024-06-30T23:00:00", "2024-06-30T23:00:00Z", "mtime"),
    "green_circle.jpg": (12345, None, "2020-01-01T00:00:00", "2020-01-01T00:00:00Z", "mtime"),
    "orange_star.jpg": ("2023:02:30 25:61:00", "+99:00", "2018-08-08T08:08:08", "2018-08-08T08:08:08Z", "mtime"),
    "sub/purple_star.jpg": ("2024:03:03 03:03:03", "+00:00", "2030-01-01", "2024-03-03T03:03:03+00:00", "exif"),
    "sub/orange_square.jpg": (None, None, "2019-12-31T23:59:59", "2019-12-31T23:59:59Z", "mtime"),
}


def _write(folder: Path) -> None:
    from PIL import Image

    for i, (name, (date, offset, mtime, _, _)) in enumerate(FILES.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        colour, shape = Path(name).stem.split("_")
        img = draw_shape(ShapeSpec(colour, shape), size=96, seed=70 + i)
        exif = Image.Exif()
        if date is not None:
            ifd = exif.get_ifd(0x8769)
            ifd[36867] = date
            if offset is not None:
                ifd[36881] = offset
        img.save(path, quality=90, exif=exif)
        os.utime(path, (_ts(mtime), _ts(mtime)))


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("dated")
    _write(base / "photos")
    run_index(base / "idx", IndexJob([str(base / "photos")], model=TINY, workers=1))
    return base / "photos", base / "idx"


def _search(index: Path, *args: str, code: int = 0) -> list[dict]:
    r = run_mmcli("search", "a shape", "--index", str(index), "-k", "50", "-f", "jsonl", *args)
    assert r.returncode == code, r.stderr.decode()
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def _names(hits: list[dict], photos: Path) -> list[str]:
    return [os.path.relpath(h["path"], photos) for h in hits]


def test_exif_round_trips_through_pillow(tmp_path: Path) -> None:
    from PIL import Image

    _write(tmp_path)
    with Image.open(tmp_path / "red_circle.jpg") as im:
        ifd = im.getexif().get_ifd(0x8769)
    assert (ifd[36867], ifd[36881]) == ("2023:05:01 10:00:00", "+02:00")


@pytest.mark.parametrize(
    "raw, offset, expected",
    [
        ("2023:05:01 10:00:00", "+02:00", (_ts("2023-05-01T08:00:00"), 7200)),
        ("2023:05:01 10:00:00\x00", None, (_ts("2023-05-01T10:00:00"), None)),
        (b"2023:05:01 10:00:00", b"-05:30", (_ts("2023-05-01T15:30:00"), -19800)),
        ("2023:05:01 10:00:00", "garbage", (_ts("2023-05-01T10:00:00"), None)),
        ("0000:00:00 00:00:00", None, None),
        ("    :  :     :  :  ", None, None),
        ("1200:01:01 00:00:00", None, None),
        ("2023:02:30 10:00:00", None, None),
        (12345, None, None),
        (None, "+02:00", None),
        ((2023, 5, 1), None, None),
    ],
)
def test_exif_dates_good_and_garbage(raw: object, offset: object, expected: object) -> None:
    assert exif_date(raw, offset) == expected


def test_capture_times_are_read_and_stored(dated: tuple[Path, Path]) -> None:
    photos, index = dated
    hits = _search(index)
    got = {name: (h["taken"], h["taken_source"]) for name, h in zip(_names(hits, photos), hits)}
    assert got == {name: (want[3], want[4]) for name, want in FILES.items()}


@pytest.mark.parametrize(
    "value, end, expected",
    [
        ("2024", False, "2024-01-01T00:00:00"),
        ("2024", True, "2025-01-01T00:00:00"),
        ("2024-02", True, "2024-03-01T00:00:00"),
        ("2024-12", True, "2025-01-01T00:00:00"),
        ("2024-06-30", False, "2024-06-30T00:00:00"),
        ("2024-06-30", True, "2024-07-01T00:00:00"),
        ("2024-06-30T12:30", True, "2024-06-30T12:30:00"),
        ("2024-06-30 12:30:15", False, "2024-06-30T12:30:15"),
        ("2024-06-30T12:30+02:00", False, "2024-06-30T10:30:00"),
        ("2024-06-30T12:30:00Z", True, "2024-06-30T12:30:00"),
    ],
)
def test_date_forms(value: str, end: bool, expected: str) -> None:
    assert parse_date(value, end=end) == _ts(expected)


def _reference(index: Path, photos: Path, after: str | None, before: str | None) -> list[str]:
    """Every hit of an unfiltered search whose date lies in the period, in score order."""
    start, stop = period(after, before)
    kept = []
    hits = _search(index)
    for name, h in zip(_names(hits, photos), hits):
        when = parse_date(h["taken"])  # the instant (an offset-less exif time: as UTC, as stored)
        if (start is None or when >= start) and (stop is None or when < stop):
            kept.append(name)
    return kept


@pytest.mark.parametrize(
    "after, before, expected",
    [
        ("2023", "2023", {"red_circle.jpg", "blue_square.jpg"}),
        ("2024-06", "2024-06-30", {"blue_circle.jpg"}),  # --before a day includes that day
        (None, "2019", {"sub/orange_square.jpg", "orange_star.jpg"}),  # before the end of 2019
        (None, "2020", {"sub/orange_square.jpg", "orange_star.jpg", "green_circle.jpg"}),
        ("2020", "2020-01-01", {"green_circle.jpg"}),
        ("2023-05-01T09:00+02:00", "2023-06", {"red_circle.jpg"}),
        (None, "2023-05-01T10:00+02:00", {"sub/orange_square.jpg", "orange_star.jpg", "green_circle.jpg",
                                         "red_square.jpg", "yellow_star.jpg"}),  # an instant: exclusive
        ("2024", None, {"green_triangle.jpg", "sub/purple_star.jpg", "blue_circle.jpg"}),
    ],
)  # fmt: skip
def test_after_and_before_narrow_the_results(
    dated: tuple[Path, Path], after: str | None, before: str | None, expected: set[str]
) -> None:
    photos, index = dated
    args = [*(["--after", after] if after else []), *(["--before", before] if before else [])]
    got = _names(_search(index, *args), photos)
    assert set(got) == expected
    assert got == _reference(index, photos, after, before)  # the same order and scores as unfiltered


def test_dates_compose_with_in_k_and_threshold(dated: tuple[Path, Path]) -> None:
    photos, index = dated
    assert _names(_search(index, "--after", "2024", "--in", str(photos / "sub")), photos) == ["sub/purple_star.jpg"]
    assert _names(_search(index, "--before", "2019", "--in", str(photos / "sub")), photos) == ["sub/orange_square.jpg"]
    wide = _reference(index, photos, "2020", None)
    assert len(wide) == 8
    assert _names(_search(index, "--after", "2020", "-k", "3"), photos) == wide[:3]  # k after filtering
    scores = {os.path.relpath(h["path"], photos): h["score"] for h in _search(index)}
    ranked = sorted(scores[n] for n in wide)
    cut = (ranked[3] + ranked[4]) / 2  # keeps the best 4 of the 8
    hits = _search(index, "--after", "2020", "--threshold", str(cut))
    assert _names(hits, photos) == [n for n in wide if scores[n] >= cut] and len(hits) == 4


def test_the_faiss_path_of_a_wide_filter_gives_the_exact_answer(
    dated: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    photos, index = dated
    engine = LocalEngine(index)
    terms = build_terms("a red shape", None)
    for after, before, k in (("2020", None, 3), ("2023", "2023", 10), ("2024-06-30", None, 1), (None, "1999", 5)):
        start, stop = period(after, before)
        request = SearchRequest(terms, top_k=k, after=start, before=stop)
        exact = engine.search(request).hits
        monkeypatch.setattr(mmcli.engine.search, "BRUTE_MAX", 0)  # FAISS, asked for more until k pass the filter
        monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)  # (FAISS at all, on this small index)
        approx = engine.search(request).hits
        assert [(h.rank, h.path, h.taken) for h in approx] == [(h.rank, h.path, h.taken) for h in exact]
        assert [h.score for h in approx] == pytest.approx([h.score for h in exact], abs=1e-5)
        monkeypatch.undo()
        assert len(exact) == min(k, len(_reference(index, photos, after, before)))


@pytest.mark.parametrize("sort", ["date", "-date"])
def test_sort_by_date(dated: tuple[Path, Path], sort: str) -> None:
    photos, index = dated
    hits = _search(index, "--sort", sort, "-k", "6")
    best = _search(index, "-k", "6")
    assert {h["path"] for h in hits} == {h["path"] for h in best}  # the k best matches, reordered
    when = [parse_date(h["taken"]) for h in hits]
    assert when == sorted(when, reverse=sort == "-date") and len(set(when)) == 6
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5, 6]
    everything = _search(index, "--sort", sort, "--after", "2023", "--before", "2023")
    assert _names(everything, photos) == (
        ["red_circle.jpg", "blue_square.jpg"] if sort == "date" else ["blue_square.jpg", "red_circle.jpg"]
    )


@pytest.mark.parametrize(
    "args, named",
    [
        (["--after", "2024-13"], "2024-13"),
        (["--before", "yesterday"], "yesterday"),
        (["--after", "2024-02-30"], "2024-02-30"),
        (["--after", "24"], "24"),
        (["--before", "2024-06-30T25:00"], "2024-06-30T25:00"),
        (["--after", "2024", "--before", "2023"], "leaves no time"),
        (["--sort", "newest"], "newest"),
    ],
)
def test_bad_dates_and_sorts_are_usage_errors(runner, dated: tuple[Path, Path], args: list[str], named: str) -> None:
    _, index = dated
    r = runner.invoke(app, ["search", "x", "--index", str(index), *args])
    assert r.exit_code == 2 and named in r.stderr and "mmcli: error:" in r.stderr, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr


def test_every_format_carries_the_date(runner, dated: tuple[Path, Path]) -> None:
    photos, index = dated
    base = ["search", "a red circle", "--index", str(index), "-k", "3", "--after", "2023-05", "--before", "2023-05"]
    rows = json.loads(runner.invoke(app, [*base, "-f", "json"]).stdout)
    assert [(r["taken"], r["taken_source"]) for r in rows] == [("2023-05-01T10:00:00+02:00", "exif")]
    assert list(rows[0]) == ["rank", "path", "time", "score", "taken", "taken_source"]
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        out = runner.invoke(app, [*base, "-f", fmt]).stdout
        assert out.splitlines()[0] == sep.join(["rank", "path", "time", "score", "taken", "taken_source"])
        (row,) = csv.DictReader(io.StringIO(out), delimiter=sep)
        assert (row["taken"], row["taken_source"]) == ("2023-05-01T10:00:00+02:00", "exif")
    table = runner.invoke(app, [*base, "-f", "table"]).stdout
    assert "2023-05-01 10:00" in table and "taken" in table


def test_info_shows_the_date_range(runner, dated: tuple[Path, Path]) -> None:
    _, index = dated
    info = json.loads(runner.invoke(app, ["info", "--index", str(index), "-f", "json"]).stdout)
    assert info["taken_oldest"] == "2018-08-08T08:08:08Z"
    assert info["taken_newest"] == "2024-06-30T23:00:00Z"
    assert (info["taken_from_mtime"], info["taken_unknown"]) == (6, 0)
    table = runner.invoke(app, ["info", "--index", str(index), "-f", "table"]).stdout
    assert "taken_oldest" in table and "2018-08-08T08:08:08Z" in table


def _to_format_2(index: Path) -> None:
    """Rewrite an index to the schema format 2 had (what mmcli wrote before dates), in place."""
    db = sqlite3.connect(index / "index.sqlite")
    db.execute("DROP INDEX files_taken")
    for column in ("taken_offset", "taken_source", "taken"):
        db.execute(f"ALTER TABLE files DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'format_version'")
    db.commit()
    db.close()


FORMAT_2_FILES = """CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    vector BLOB,
    indexed_at REAL NOT NULL,
    missing_since REAL
)"""


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(mmcli.models, "load_encoder", refuse)


def _snapshot(index: Path) -> tuple[list[tuple], dict[str, str]]:
    db = sqlite3.connect(index / "index.sqlite")
    try:
        rows = db.execute("SELECT id, path, hash, vector, size, mtime_ns FROM files ORDER BY id").fetchall()
        return rows, dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def test_an_index_of_format_2_gets_its_dates_in_place_without_the_model(
    dated: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    photos, made = dated
    index = tmp_path / "old"
    shutil.copytree(made, index)
    _to_format_2(index)
    db, reference = sqlite3.connect(index / "index.sqlite"), sqlite3.connect(":memory:")
    reference.execute(FORMAT_2_FILES)
    columns = [
        db.execute("PRAGMA table_info(files)").fetchall(),
        reference.execute("PRAGMA table_info(files)").fetchall(),
    ]
    db.close()
    assert columns[0] == columns[1]  # the table format 2 wrote
    rows, meta = _snapshot(index)

    with monkeypatch.context() as m:  # read-only (a backup on read-only media): read as it is
        m.setattr("mmcli.index.store.read_only", lambda folder, path: True)
        request = SearchRequest(build_terms("a shape", None), top_k=50)
        hits = LocalEngine(index).search(request).hits
        assert len(hits) == len(FILES) and {(h.taken, h.taken_source) for h in hits} == {(None, None)}
        result = LocalEngine(index).search(SearchRequest(request.terms, after=0.0))
        assert result.hits == () and any(f"{len(FILES)} indexed images have no date yet" in w for w in result.warnings)
        info = index_info(index)
        assert (info.format_version, info.taken_oldest, info.taken_unknown) == (2, None, len(FILES))
    assert _snapshot(index) == (rows, meta)  # nothing written

    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.unchanged, s.dated, s.added, s.updated, s.model_loaded) == (len(FILES), len(FILES), 0, 0, False)
    after_rows, after_meta = _snapshot(index)
    assert after_rows == rows  # same ids, paths, hashes and vector bytes: not re-embedded
    assert after_meta["generation"] == meta["generation"] and after_meta["format_version"] == str(FORMAT_VERSION)
    r = run_mmcli("search", "x", "--index", str(index), "--after", "1990", "-f", "jsonl")
    assert r.returncode == 0 and b"no date yet" not in r.stderr and len(r.stdout.splitlines()) == len(FILES)
    hits = _search(index)
    assert {os.path.relpath(h["path"], photos): (h["taken"], h["taken_source"]) for h in hits} == {
        name: (want[3], want[4]) for name, want in FILES.items()
    }
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.unchanged, s.dated, s.model_loaded) == (len(FILES), 0, False)  # read once
