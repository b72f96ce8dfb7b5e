"""`mmcli ocr` and its reader, with the real OCR engine (the ``ocr`` extra) on pictures drawn here: known words
found, text-free pictures without text, a broken file reported while the others are read, turned text
read, and an FTS5 trigram table over what was read finding each picture by its word."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import run_mmcli

from mmcli.media.ocr.text import fold_lines, fts_query, matches
from mmcli.results import FileFailure, PictureText

if importlib.util.find_spec("rapidocr") is None:
    if os.environ.get("CI"):  # .ci/run installs .[dev], which holds the engine: there this never skips
        pytest.fail('the OCR engine is not installed: pip install -e ".[dev]"', pytrace=False)
    pytest.skip("the OCR engine (the ocr extra) is not installed", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_ocr_set.py"
WORDS = {  # picture -> the words printed in it
    "sign.png": ("WIFI PASSWORD", "sunflower-2024"),
    "aileron.png": ("Welcome", "Hotel Garden"),
    "turned90.png": ("KATORMI54", "Platform"),
    "turned180.jpg": ("Revenue", "Monday"),
    "sideways-exif.jpg": ("Parking", "Station"),
    "big.jpg": ("MOUNTAIN", "Trail"),
}
NO_TEXT = ("star.jpg", "texture.png", "tiny.png", "strip.png")
BROKEN = "broken.jpg"


def _sets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_ocr_set", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_ocr_set"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12 pictures (6 with text, 4 without, a receipt, a broken file), drawn with the bundled fonts."""
    from PIL import Image

    from mmcli.demo.shapes import ShapeSpec, draw_shape, photo_like

    sets = _sets()
    folder = tmp_path_factory.mktemp("ocr")
    dejavu, pillow = sets.available_fonts("bundled")
    rng = random.Random(29)

    def sign(lines: tuple[str, ...], font: str, size: int, w: int = 640, h: int = 480, seed: int = 0) -> Image.Image:
        img = photo_like(w, h, seed=seed)
        sets.put_text(img, list(lines), sets.load_font(font, size), rng, tilt=3.0)
        return img

    sign(WORDS["sign.png"], dejavu, 44, seed=1).save(folder / "sign.png")
    sign(WORDS["aileron.png"], pillow, 48, seed=2).save(folder / "aileron.png")
    sign(WORDS["turned90.png"], dejavu, 40, seed=3).rotate(90, expand=True).save(folder / "turned90.png")
    sign(WORDS["turned180.jpg"], dejavu, 44, seed=4).rotate(180).save(folder / "turned180.jpg", quality=90)
    sideways = sign(WORDS["sideways-exif.jpg"], dejavu, 44, seed=5).rotate(90, expand=True)  # as the camera held it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to show": the viewer (and the reader) turn it upright
    sideways.save(folder / "sideways-exif.jpg", quality=90, exif=exif)
    sign(WORDS["big.jpg"], dejavu, 260, w=4800, h=3200, seed=6).save(folder / "big.jpg", quality=85)
    receipt, label = sets.draw_receipt(random.Random(7), sets.Words(random.Random(8)), [dejavu])
    receipt.save(folder / "receipt.jpg", quality=75)
    (folder / "receipt.words").write_text("\n".join(label.words))
    draw_shape(ShapeSpec("yellow", "star"), size=256, seed=9).save(folder / "star.jpg", quality=92)
    photo_like(512, 384, seed=10).save(folder / "texture.png")
    photo_like(6, 6, seed=11).save(folder / "tiny.png")
    photo_like(3000, 12, seed=12).save(folder / "strip.png")
    Image.open(folder / "sign.png").convert("RGB").save(folder / BROKEN, quality=90)
    (folder / BROKEN).write_bytes((folder / BROKEN).read_bytes()[:3000])  # a JPEG cut short
    return folder


def _words(pictures: Path) -> dict[str, tuple[str, ...]]:
    return {**WORDS, "receipt.jpg": tuple((pictures / "receipt.words").read_text().split("\n"))}


@pytest.fixture(scope="module")
def readings(pictures: Path) -> dict[str, PictureText | FileFailure]:
    """Every picture read once, in one process, in the order given."""
    from mmcli.media.ocr.reader import read_all

    names = sorted(p.name for p in pictures.iterdir() if not p.name.endswith(".words"))
    results = list(read_all([str(pictures / n) for n in names]))
    assert [os.path.basename(r.path) for r in results] == names  # input order, failures in their place
    return {os.path.basename(r.path): r for r in results}


def test_words_printed_are_found(readings: dict[str, PictureText | FileFailure], pictures: Path) -> None:
    for name, words in _words(pictures).items():
        got = readings[name]
        assert isinstance(got, PictureText), got
        for word in words:
            assert matches(word, [line.text for line in got.lines]), (name, word, got.text)
        assert got.text == "\n".join(line.text for line in got.lines)
        assert all(0.5 <= line.score <= 1 for line in got.lines)


def test_exact_words_come_back(readings: dict[str, PictureText | FileFailure]) -> None:
    sign = readings["sign.png"]
    assert isinstance(sign, PictureText)
    assert "sunflower-2024" in sign.text  # as printed: a hyphen, digits
    assert "PASSWORD" in sign.text.replace(" ", "")


def test_turned_pictures_are_read(readings: dict[str, PictureText | FileFailure]) -> None:
    for name in ("turned90.png", "turned180.jpg", "sideways-exif.jpg"):
        got = readings[name]
        assert isinstance(got, PictureText) and got.lines, name
    upside_down = readings["turned180.jpg"]
    assert isinstance(upside_down, PictureText)
    text = upside_down.text.casefold()
    assert "revenue" in text and text.index("revenue") < text.index("monday")  # read the right way up, in order
    for line in upside_down.lines:  # the box starts at the text's top left: bottom right in the picture
        (x0, y0), _, (x2, y2), _ = line.box
        assert x0 > x2 and y0 > y2, line


def test_boxes_are_in_the_upright_pictures_pixels(readings: dict[str, PictureText | FileFailure]) -> None:
    sideways = readings["sideways-exif.jpg"]  # stored 480 x 640, shown (EXIF 6) 640 x 480
    big = readings["big.jpg"]  # 4800 x 3200, read at 2000 on its longer side
    assert isinstance(sideways, PictureText) and isinstance(big, PictureText)
    for got, (w, h) in ((sideways, (640, 480)), (big, (4800, 3200))):
        for line in got.lines:
            assert len(line.box) == 4
            assert all(0 <= x < w and 0 <= y < h for x, y in line.box), line
    widest = max(max(x for x, _ in ln.box) - min(x for x, _ in ln.box) for ln in big.lines)
    assert widest > 600  # a word 260 px high in the full picture, not in the reduced one


def test_pictures_without_text_give_none(readings: dict[str, PictureText | FileFailure]) -> None:
    for name in NO_TEXT:
        got = readings[name]
        assert isinstance(got, PictureText), got  # tiny and thin pictures are read, not refused
        assert got.lines == () and got.text == "", (name, got.text)


def test_a_broken_file_gives_a_reason_and_the_others_are_read(
    readings: dict[str, PictureText | FileFailure],
) -> None:
    failed = [r for r in readings.values() if isinstance(r, FileFailure)]
    assert [os.path.basename(f.path) for f in failed] == [BROKEN]
    assert "truncated" in failed[0].reason or "corrupt" in failed[0].reason


def test_an_engine_failure_is_that_files_reason(pictures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcli.media.ocr import engine, reader

    real = engine.Engine.read

    def fussy(self: engine.Engine, rgb: object) -> object:
        if getattr(rgb, "shape", (0,))[0] == 640:  # turned90.png, 480 x 640 standing
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")
        return real(self, rgb)

    monkeypatch.setattr(engine.Engine, "read", fussy)
    got = list(reader.read_all([str(pictures / n) for n in ("sign.png", "turned90.png", "star.jpg")]))
    assert isinstance(got[0], PictureText) and got[0].lines
    assert isinstance(got[1], FileFailure) and "OCR engine failed" in got[1].reason and "ONNXRuntime" in got[1].reason
    assert isinstance(got[2], PictureText)


def test_processes_read_what_one_process_reads(pictures: Path, readings: dict[str, PictureText | FileFailure]) -> None:
    from mmcli.media.ocr.reader import read_all

    names = ("sign.png", BROKEN, "star.jpg")
    got = list(read_all([str(pictures / n) for n in names], workers=2))
    assert [os.path.basename(g.path) for g in got] == list(names)
    assert got == [readings[n] for n in names]


def test_fts5_trigram_finds_each_picture_by_its_words(
    readings: dict[str, PictureText | FileFailure], pictures: Path
) -> None:
    """Phase 2's table in small: folded text under FTS5's trigram tokenizer; every printed word of three or
    more characters finds its picture, ranked first by bm25 where only that picture has it."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE ocr USING fts5(folded, tokenize='trigram')")
    names = sorted(readings)
    for rowid, name in enumerate(names):
        got = readings[name]
        if isinstance(got, PictureText):
            db.execute("INSERT INTO ocr(rowid, folded) VALUES (?, ?)", (rowid, fold_lines(got.text.split("\n"))))
    for name, words in _words(pictures).items():
        for word in words:
            query = fts_query(word)
            if query is None:  # a price's "1.12" folds to 3 digits; a shorter word has no trigram
                continue
            rows = [r for (r,) in db.execute("SELECT rowid FROM ocr WHERE ocr MATCH ? ORDER BY bm25(ocr)", (query,))]
            assert names.index(name) in rows, (name, word)
    for query, name in (("password", "sign.png"), ("wifipassword", "sign.png"), ("katorm154", "turned90.png")):
        rows = [r for (r,) in db.execute("SELECT rowid FROM ocr WHERE ocr MATCH ?", (fts_query(query),))]
        assert rows == [names.index(name)], query
    assert db.execute("SELECT count(*) FROM ocr WHERE ocr MATCH '\"wi\"'").fetchone() == (0,)  # < 3: no match


def test_cli_jsonl_and_a_reason_on_stderr(pictures: Path) -> None:
    proc = run_mmcli("ocr", str(pictures / "sign.png"), str(pictures / BROKEN), str(pictures / "star.jpg"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [os.path.basename(r["path"]) for r in records] == ["sign.png", "star.jpg"]
    assert set(records[0]) == {"path", "text", "lines"} and records[1]["lines"] == []
    assert set(records[0]["lines"][0]) == {"text", "score", "box"}
    assert "sunflower-2024" in records[0]["text"]
    errors = [line for line in proc.stderr.decode().splitlines() if line]
    assert len(errors) == 1 and errors[0].startswith("mmcli: warning: skipped ") and BROKEN in errors[0]


def test_cli_paths_lists_pictures_with_text_and_nothing_read_is_an_error(pictures: Path, tmp_path: Path) -> None:
    proc = run_mmcli("ocr", "-", "-z", "-f", "paths", stdin=b"\0".join(
        str(pictures / n).encode() for n in ("star.jpg", "aileron.png", "texture.png")
    ))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [str(pictures / "aileron.png")]
    (tmp_path / "empty.png").write_bytes(b"")
    bad = run_mmcli("ocr", str(tmp_path / "empty.png"), str(pictures / BROKEN))
    assert bad.returncode == 1 and bad.stdout == b""
    assert "mmcli: error: no picture could be read (2 failed)" in bad.stderr.decode()


def test_table_shows_control_characters_as_escapes(pictures: Path, tmp_path: Path, runner: object) -> None:
    from mmcli.cli.app import app
    from mmcli.cli.ocr import visible

    assert visible("a\x1b[31mb\u202ec\n\x9b") == "a\\x1b[31mb\\u202ec\\n\\x9b"
    odd = tmp_path / "red\x1b[31m.png"
    odd.write_bytes((pictures / "aileron.png").read_bytes())
    result = runner.invoke(app, ["ocr", str(odd), "-f", "table"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "red\\x1b[31m.png" in result.stdout
    assert "Welcome" in result.stdout


def test_without_the_engine_a_clear_error(pictures: Path, monkeypatch: pytest.MonkeyPatch, runner: object) -> None:
    from mmcli.cli.app import app

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rapidocr" else found(name, *a))
    result = runner.invoke(app, ["ocr", str(pictures / "sign.png")])  # type: ignore[attr-defined]
    assert result.exit_code == 1
    assert "mmcli: error: reading text needs the OCR engine" in result.stderr
    assert "hint: install the OCR engine: pip install" in result.stderr and "[ocr]" in result.stderr


def test_python_api(pictures: Path) -> None:
    import mmcli

    got = mmcli.ocr([pictures / "aileron.png", pictures / "star.jpg"])
    assert [os.path.basename(g.path) for g in got] == ["aileron.png", "star.jpg"]
    assert "Welcome" in got[0].text and got[1].text == ""
    with pytest.raises(mmcli.ImageLoadError, match=BROKEN):
        mmcli.ocr([pictures / BROKEN, pictures / "star.jpg"])
    assert len(mmcli.ocr([pictures / BROKEN, pictures / "star.jpg"], errors="skip")) == 1


def test_too_many_pixels_is_a_reason(pictures: Path) -> None:
    proc = run_mmcli("ocr", "--max-pixels", "500000", str(pictures / "big.jpg"), str(pictures / "aileron.png"))
    assert proc.returncode == 0, proc.stderr
    assert [os.path.basename(json.loads(line)["path"]) for line in proc.stdout.decode().splitlines()] == ["aileron.png"]
    assert "big.jpg: too large: 4800x3200" in proc.stderr.decode()


def test_a_reading_process_that_dies_is_reported_not_a_traceback(pictures: Path, tmp_path: Path) -> None:
    """MMCLI_FAULT kills the first reading process at its first picture: the pool is broken; every picture not
    read is one warning, the run ends as usual."""
    names = ("sign.png", "aileron.png", "star.jpg")
    proc = run_mmcli(
        "ocr", "--workers", "2", *(str(pictures / n) for n in names),
        env={"MMCLI_FAULT": "ocr.read", "MMCLI_FAULT_MARKS": str(tmp_path)},
    )  # fmt: skip
    err = proc.stderr.decode()
    assert "Traceback" not in err
    died = [line for line in err.splitlines() if "the reading process died" in line]
    read = proc.stdout.decode().splitlines()
    assert died and len(died) + len(read) == len(names)
    assert proc.returncode == (0 if read else 1)


def test_bytes_in_hand_read_as_the_file(pictures: Path, readings: dict[str, PictureText | FileFailure]) -> None:
    from mmcli.media.ocr.reader import read_picture

    path = pictures / "sideways-exif.jpg"
    assert read_picture(path, data=path.read_bytes()) == readings["sideways-exif.jpg"]
