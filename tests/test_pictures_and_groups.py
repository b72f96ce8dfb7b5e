"""HTML pages (in a real headless Chromium), contact sheets, near-duplicate groups and clusters."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

from mmcli.cli import app
from mmcli.demo.shapes import SHAPES, ShapeSpec, draw_shape, photo_like

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-output"


@pytest.fixture
def indexed(runner, tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        photo_like(400, 300, seed=i).save(folder / f"p{i}.jpg", quality=92)
    Image.open(folder / "p0.jpg").resize((300, 225)).save(folder / "p0_small.jpg", quality=60)  # near-duplicate
    shutil.copy(folder / "p2.jpg", folder / "p2_copy.jpg")  # exact copy
    for i, shape in enumerate(SHAPES):
        for j, colour in enumerate(("red", "blue", "green")):
            draw_shape(ShapeSpec(colour, shape), size=128, seed=50 * i + j).save(folder / f"{colour}_{shape}.png")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY])
    assert r.exit_code == 0, r.stderr
    return folder, index


def _browser(tmp_path: Path):
    missing = [tool for tool in ("chromium", "chromedriver") if not shutil.which(tool)]
    if missing:
        if os.environ.get("CI"):  # .ci/run sets CI=1: there the browser test never skips
            pytest.fail(f"{' and '.join(missing)} not found: CI must install chromium and chromium-driver")
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def test_search_html_renders_in_a_real_browser(runner, indexed, tmp_path: Path) -> None:
    folder, index = indexed
    page = tmp_path / "results.html"
    (folder / "red_circle.png").unlink()  # a hit whose file is gone gets a placeholder, not a broken image
    r = runner.invoke(
        app, ["search", "a red circle", "--index", str(index), "-k", "8", "--html", str(page), "-f", "paths"]
    )
    assert r.exit_code == 0, r.stderr
    text = page.read_text()
    assert "a red circle" in text and "data:image/jpeg;base64," in text and "<script" not in text
    hits = r.stdout.splitlines()
    assert all(f'href="{Path(h).as_uri()}"' in text for h in hits)
    assert str(folder / "red_circle.png") in hits and text.count("cannot read this file") == 1
    driver = _browser(tmp_path)
    try:
        SCREENSHOTS.mkdir(exist_ok=True)
        for name, (w, h) in {"desktop": (1280, 900), "phone": (390, 844)}.items():
            driver.set_window_size(w, h)
            driver.get(page.as_uri())
            widths = driver.execute_script(
                "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
            )
            assert len(widths) == len(hits) - 1 and all(x > 0 for x in widths), widths
            lefts = driver.execute_script(
                "return Array.from(document.querySelectorAll('li')).slice(0, 2)"
                ".map(e => e.getBoundingClientRect().left)"
            )
            if name == "phone":
                assert lefts[0] == lefts[1]  # one column on a phone
            else:
                assert lefts[0] < lefts[1]  # several columns on a desktop
            shot = SCREENSHOTS / f"search-{name}.png"
            driver.save_screenshot(str(shot))
            print(f"screenshot: {shot}")
            assert Image.open(shot).size[0] > 0
    finally:
        driver.quit()


def test_classify_html_and_grid(runner, indexed, tmp_path: Path) -> None:
    folder, _ = indexed
    page, grid = tmp_path / "c.html", tmp_path / "c.png"
    r = runner.invoke(
        app,
        [
            "classify",
            str(folder / "red_star.png"),
            str(folder / "blue_circle.png"),
            "--model",
            TINY,
            "--labels",
            "red star",
            "blue circle",
            "--html",
            str(page),
            "--grid",
            str(grid),
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert page.read_text().count("<li>") == 2 and "red star" in page.read_text()
    sheet = Image.open(grid)
    assert sheet.size == (2 * 204, 192 + 12 + 3 * 14) and sheet.mode == "RGB"  # two cells: 2 labels + the name
    assert all(_dark_pixels(strip) >= 20 for strip in _caption_strips(sheet, lines=3))  # text under each
    from mmcli.cli.pictures import Tile, write_grid

    blank = tmp_path / "blank.png"  # the same sheet with empty captions: the check above sees no text
    write_grid(blank, [Tile(str(folder / n), ("", "", "")) for n in ("red_star.png", "blue_circle.png")])
    assert Image.open(blank).size == sheet.size
    assert all(_dark_pixels(strip) == 0 for strip in _caption_strips(Image.open(blank), lines=3))


def _caption_strips(sheet: Image.Image, lines: int) -> list[np.ndarray]:
    """Each cell's band under its thumbnail, where the caption lines go: cells are 192 px thumbnails
    with a 6 px margin all round and 14 px per caption line."""
    arr = np.asarray(sheet.convert("RGB"))
    cell_w, cell_h = 192 + 12, 192 + 12 + 14 * lines
    return [
        arr[top + 6 + 192 + 1 : top + cell_h, left : left + cell_w]
        for top in range(0, arr.shape[0], cell_h)
        for left in range(0, arr.shape[1], cell_w)
    ]


def _dark_pixels(strip: np.ndarray) -> int:
    return int((strip.max(axis=-1) < 100).sum())  # black text; thumbnails and placeholders never reach here


def test_search_grid_has_one_cell_per_hit(runner, indexed, tmp_path: Path) -> None:
    _, index = indexed
    grid = tmp_path / "g.png"
    r = runner.invoke(app, ["search", "a blue square", "--index", str(index), "-k", "7", "--grid", str(grid)])
    assert r.exit_code == 0, r.stderr
    w, h = Image.open(grid).size
    assert w == 5 * (192 + 12) and h == 2 * (192 + 12 + 2 * 14)  # rank and score, then the file name


def test_dupes_groups_near_and_exact_copies(runner, indexed) -> None:
    folder, index = indexed
    r = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "0.99", "-f", "jsonl"])
    assert r.exit_code == 0, r.stderr
    groups = [json.loads(line) for line in r.stdout.splitlines()]
    as_sets = [set(g["paths"]) for g in groups]
    assert {str(folder / "p0.jpg"), str(folder / "p0_small.jpg")} in as_sets
    assert {str(folder / "p2.jpg"), str(folder / "p2_copy.jpg")} in as_sets
    assert [g["group"] for g in groups] == list(range(1, len(groups) + 1))
    assert all(len(a["paths"]) >= len(b["paths"]) for a, b in zip(groups, groups[1:]))
    assert all(g["min_score"] >= 0.99 for g in groups)
    # exact copies group whatever the threshold; the re-saved one does not at 1.0
    r = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "1.0", "-f", "json"])
    assert [set(g["paths"]) for g in json.loads(r.stdout)] == [{str(folder / "p2.jpg"), str(folder / "p2_copy.jpg")}]
    from conftest import run_mmcli

    p = run_mmcli("dupes", "--index", str(index), "--threshold", "1.0", "-f", "paths", "-0")
    assert p.stdout == (os.fsencode(folder / "p2.jpg") + b"\0" + os.fsencode(folder / "p2_copy.jpg") + b"\0\0")


def test_dupes_html(runner, indexed, tmp_path: Path) -> None:
    _, index = indexed
    page = tmp_path / "d.html"
    r = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "0.99", "--html", str(page)])
    assert r.exit_code == 0 and "group 1" in page.read_text()


def test_cluster_auto_tags_by_shape(runner, tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    folder.mkdir()
    for i, shape in enumerate(SHAPES):
        for j, colour in enumerate(("red", "blue", "green", "yellow", "purple")):
            draw_shape(ShapeSpec(colour, shape), size=128, seed=70 * i + j).save(folder / f"{shape}_{colour}.png")
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY]).exit_code == 0
    r = runner.invoke(
        app,
        [
            "cluster",
            "-k",
            "4",
            "--index",
            str(index),
            "--labels",
            *SHAPES,
            "--template",
            "a photo of a {}.",
            "--samples",
            "3",
            "-f",
            "jsonl",
        ],
    )
    assert r.exit_code == 0, r.stderr
    clusters = [json.loads(line) for line in r.stdout.splitlines()]
    assert sum(c["size"] for c in clusters) == 20
    agree = 0
    for c in clusters:
        shapes_in = [Path(p).name.split("_")[0] for p in c["samples"]]
        majority = max(set(shapes_in), key=shapes_in.count)
        agree += c["labels"][0]["label"] == majority
    assert agree >= 3
    bad = runner.invoke(app, ["cluster", "-k", "999", "--index", str(index)])
    assert bad.exit_code == 2 and "between 1 and" in bad.stderr


def test_cluster_and_dupes_of_an_index_whose_files_were_all_removed(runner, tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    folder.mkdir()
    for i, shape in enumerate(SHAPES):
        draw_shape(ShapeSpec("red", shape), size=96, seed=i).save(folder / f"{shape}.png")
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY]).exit_code == 0
    for p in folder.iterdir():
        p.unlink()
    assert runner.invoke(app, ["index", str(folder), "--index", str(index)]).exit_code == 0
    r = runner.invoke(app, ["cluster", "-k", "2", "--index", str(index)])
    assert r.exit_code == 1 and r.stderr.startswith("mmcli: error: ") and "holds no images" in r.stderr, r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)
    r = runner.invoke(app, ["dupes", "--index", str(index), "-f", "jsonl"])
    assert r.exit_code == 0 and r.stdout == ""


def test_cluster_has_the_same_outputs_as_the_other_listing_commands(runner, indexed, tmp_path: Path) -> None:
    _, index = indexed
    grid, page = tmp_path / "clusters.png", tmp_path / "clusters.html"
    args = [
        "cluster",
        "-k",
        "2",
        "--samples",
        "3",
        "--index",
        str(index),
        "-0",
        "--grid",
        str(grid),
        "--html",
        str(page),
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.stderr
    groups = r.stdout_bytes.split(b"\0\0")
    assert [len([p for p in g.split(b"\0") if p]) for g in groups if g.strip(b"\0")] == [3, 3]
    assert Image.open(grid).size == (5 * 204, 2 * (192 + 12 + 3 * 14))  # 6 cells: cluster, labels, name
    assert page.read_text().count("<li>") == 6
