"""Help that names values, not Python types, and offers only the formats each command takes; contact
sheets whose captions show any Latin, Greek or Cyrillic name as itself, groups on rows of their own,
thumbnails on their captions, and a video's matching moment in `dupes` (issue 21)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from PIL import Image, ImageDraw, ImageFont

from mmcli.cli import app
from mmcli.cli.app import COMMANDS
from mmcli.cli.pictures import CAPTION_SIZE, FONT_FILE, LINE_HEIGHT, Tile, contact_sheet
from mmcli.demo.shapes import ShapeSpec, draw_shape

NAMES = [fn.mmcli_command[0] or fn.__name__ for fn in COMMANDS]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------- help
def _help(runner, *args: str) -> str:
    r = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.mark.parametrize("command", NAMES)
def test_help_names_values_never_python_types(runner, command: str) -> None:
    text = _help(runner, command)
    assert not re.search(r"<[a-z][a-z\[\] ]*>", text), text  # <list[str]>, <float range>, <path>
    assert not re.search(r"\{[a-z_]+\}", text.splitlines()[0]), text  # {paths}
    for option in re.findall(r"^\s+(?:-\w, )?(--[\w-]+) ([^\s]+)", text, re.M):
        assert option[1].isupper() or option[1].endswith(("...", ".html", ".png")), option


def test_the_command_list_is_whole_at_80_columns(runner) -> None:
    text = _help(runner)
    listed = text.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in listed] == NAMES  # one line each
    assert all(len(line) <= 80 and not line.rstrip().endswith("...") for line in listed), listed


def test_format_help_lists_what_each_command_takes(runner, tmp_path: Path) -> None:
    from mmcli.cli import views

    offered = {
        "classify": views.CLASSIFICATIONS,
        "search": views.HITS,
        "info": views.INFO,
        "indexes": views.INDEXES,
        "dupes": views.DUPES,
        "cluster": views.CLUSTERS,
        "models": views.MODELS,
    }
    for command, view in offered.items():
        text = " ".join(_help(runner, command).split())
        listed = re.search(r"-f, --format FORMAT (.*?) \(default", text)
        assert listed is not None and listed.group(1).split(" | ") == list(view.formats), (command, text)
    assert {"csv", "tsv"} <= set(views.INFO.formats) and {"csv", "tsv"} <= set(views.DUPES.formats)


def test_commands_that_use_an_index_say_its_model_is_the_default(runner) -> None:
    for command in ("search", "cluster", "serve"):
        text = " ".join(_help(runner, command).split())
        assert "Default: the model the index was built with" in text and "ViT-B-32" not in text, command
    assert "Default: the index's own model" in " ".join(_help(runner, "index").split())
    assert "Default: $MMCLI_MODEL or ViT-B-32-256" in " ".join(_help(runner, "classify").split())


# ------------------------------------------------------------------------------------- captions
def test_a_caption_shows_accents_and_symbols_as_themselves(tmp_path: Path) -> None:
    text = "Été à la plage ☀ 2023.jpg"
    sheet = np.asarray(contact_sheet([Tile(str(tmp_path / "gone.jpg"), (text,))]), dtype=np.int16)
    top = 6 + 192 + 2
    band = sheet[top : top + LINE_HEIGHT, 6 : 6 + 192]  # the caption line of the only cell

    def drawn(words: str) -> np.ndarray:  # the same text, the same font, drawn directly
        img = Image.new("RGB", (192, LINE_HEIGHT), (255, 255, 255))
        font = ImageFont.truetype(str(FONT_FILE), CAPTION_SIZE)
        ImageDraw.Draw(img).text((0, LINE_HEIGHT - 3), words, fill=(0, 0, 0), font=font, anchor="ls")
        return np.asarray(img, dtype=np.int16)

    assert np.abs(band - drawn(text)).max() == 0
    tofu = "".join(c if c.isascii() else "\uffff" for c in text)  # what a font without these glyphs draws
    assert np.abs(drawn(tofu) - drawn(text)).sum() > 1000
    assert (band < 128).any(axis=-1).sum() > 50  # (and it is text, not nothing)


def test_accents_given_apart_are_composed_and_missing_glyphs_fall_back(tmp_path: Path) -> None:
    from mmcli.cli.pictures import caption_fonts, caption_runs

    fonts = caption_fonts()
    assert [run for _, run in caption_runs("E\u0301te\u0301", fonts)] == ["Été"]  # NFD names, as macOS writes
    runs = caption_runs("abc 漢字", fonts)
    assert "".join(run for _, run in runs) == "abc 漢字" and runs[0][0] is fonts[0]


def _cells(sheet: Image.Image, lines: int) -> tuple[int, int]:
    return sheet.size[0] // (192 + 12), sheet.size[1] // (192 + 12 + lines * LINE_HEIGHT)


def test_each_group_starts_a_row_and_wide_pictures_sit_on_their_caption(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    Image.new("RGB", (400, 100), (0, 128, 0)).save(wide)
    tiles = [Tile(str(wide), ("a",), None, 1), Tile(str(wide), ("b",), None, 1), Tile(str(wide), ("c",), None, 2)]
    sheet = contact_sheet(tiles)
    assert _cells(sheet, 1) == (3, 2)  # group 2 on a row of its own, though the first had room
    arr = np.asarray(sheet)
    assert arr[6 + 192 - 1, 6 + 96].tolist() == [0, 128, 0]  # the picture's bottom edge on the caption
    assert arr[6 + 192 - 48 - 1, 6 + 96].tolist() == [255, 255, 255]  # nothing floating above it
    assert _cells(contact_sheet([Tile(str(wide), ("a",))] * 3), 1) == (3, 1)


def test_dupes_name_and_show_the_moment_that_matched(runner, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from videos import write_video

    from mmcli.media.thumbnail import thumbnail
    from mmcli.media.video import sample_video

    folder = tmp_path / "m"
    folder.mkdir()
    clip = write_video(folder / "clip.mp4")  # red circle 0-4 s, blue square 4-8 s, green star 8-10 s
    moment = [m for m in sample_video(clip) if m.time == 6.0][0]
    moment.image.save(folder / "still.png")  # the blue square
    draw_shape(ShapeSpec("yellow", "triangle"), size=160, seed=3).save(folder / "other.jpg")
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY, "-q"]).exit_code == 0
    grid = tmp_path / "d.png"
    r = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "0.99", "-f", "json", "--grid", str(grid)])
    assert r.exit_code == 0, r.stderr
    (group,) = json.loads(r.stdout)
    assert group["paths"] == [str(clip), str(folder / "still.png")]
    assert group["times"][1] is None and 4.0 <= group["times"][0] < 8.0  # a moment of the blue square
    sheet = np.asarray(Image.open(grid), dtype=np.int16)
    shown = thumbnail(str(clip), 192, group["times"][0])
    first = np.asarray(thumbnail(str(clip), 192, 0.0), dtype=np.int16)
    x, y = 6 + (192 - shown.width) // 2, 6 + 192 - shown.height
    cell = sheet[y : y + shown.height, x : x + shown.width]
    assert np.abs(cell - np.asarray(shown, dtype=np.int16)).max() == 0  # the frame at the moment that matched
    assert np.abs(cell - first).mean() > 10  # not frame 0 (the red circle)
    table = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "0.99", "-f", "table"]).stdout
    assert f"clip.mp4 ({group['times'][0]:.1f} s)" in table


def test_without_any_font_file_captions_fall_back_to_pillows_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmcli.cli.pictures as pictures

    monkeypatch.setattr(pictures, "FONT_FILE", tmp_path / "gone.ttf")
    monkeypatch.setattr(pictures, "SYSTEM_FONTS", ())
    pictures.caption_fonts.cache_clear()
    try:
        (font,) = pictures.caption_fonts()
        assert font.getname()[0] != "DejaVu Sans mmcli"
        sheet = np.asarray(contact_sheet([Tile(str(tmp_path / "x.jpg"), ("Été ☀ 2023.jpg",))]))
        assert (sheet[6 + 192 + 2 : 6 + 192 + 2 + LINE_HEIGHT] < 128).any()  # still a caption
    finally:
        pictures.caption_fonts.cache_clear()
