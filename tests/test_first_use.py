"""What a new user trips on (issue 21): inputs counted once, videos in `embed` and as search queries,
CSV rows for unlabelled images, counts that keep videos apart, one index size, hints that fit the
situation, tables that keep file names whole. Real files, the real mmcli-tiny model."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from mmcli.cli import app
from mmcli.demo.shapes import ShapeSpec, draw_shape

pytest.importorskip("av")

from videos import write_video  # noqa: E402

SHAPES = (("red", "circle"), ("blue", "square"), ("green", "star"), ("yellow", "triangle"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four shape pictures and a video (a red circle 0-4 s, a blue square 4-8 s, a green star 8-10 s)."""
    folder = tmp_path_factory.mktemp("media")
    for i, (colour, shape) in enumerate(SHAPES):
        draw_shape(ShapeSpec(colour, shape), size=160, seed=300 + i).save(folder / f"{colour}_{shape}.jpg")
    write_video(folder / "clip.mp4")
    return folder


@pytest.fixture(scope="module")
def index(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    folder = tmp_path_factory.mktemp("idx")
    s = run_index(folder, IndexJob([str(media)], model=TINY, device="cpu", precision="fp32", workers=1))
    assert (s.added, s.failed, s.moments) == (5, 0, 5)
    return folder


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ------------------------------------------------------------------------------- 1. inputs once
def test_a_file_named_several_ways_is_one_input_in_first_seen_order(
    runner, media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for f in media.iterdir():
        os.link(f, tmp_path / f.name)
    os.symlink(tmp_path / "red_circle.jpg", tmp_path / "link.jpg")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    listed = b"\0".join([b".", b"./blue_square.jpg", b"./red_circle.jpg", b"./link.jpg"]) + b"\0"  # find -print0
    r = runner.invoke(app, ["classify", "-", "-z", "--labels", "cat", "dog", "--model", TINY], input=listed)
    assert r.exit_code == 0, r.stderr
    files = list(dict.fromkeys(row["path"] for row in _jsonl(r.stdout)))  # (a video gives a line per segment)
    # '.' is walked first (by name: the link before its target), then the files named again are left out
    assert files == ["blue_square.jpg", "clip.mp4", "green_star.jpg", "link.jpg", "yellow_triangle.jpg"]
    assert len([row for row in _jsonl(r.stdout) if "labels" in row]) == 4
    args = ["embed", "red_circle.jpg", "./red_circle.jpg", str(tmp_path / "red_circle.jpg"), "sub/../red_circle.jpg"]
    r = runner.invoke(app, [*args, "green_star.jpg", "red_circle.jpg", "--model", TINY])
    assert r.exit_code == 0, r.stderr
    assert [row["path"] for row in _jsonl(r.stdout)] == ["red_circle.jpg", "green_star.jpg"]


# ------------------------------------------------------------------------------- 2. videos
def test_embed_gives_a_video_its_moments_as_the_index_does(runner, media: Path, index: Path, tmp_path: Path) -> None:
    from mmcli.index.store import Store

    r = runner.invoke(app, ["embed", str(media), "--model", TINY, "--workers", "1"])
    assert r.exit_code == 0, r.stderr
    rows = _jsonl(r.stdout)
    moments = [row for row in rows if row["path"].endswith("clip.mp4")]
    assert [m["time"] for m in moments] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert all("time" not in row for row in rows if row not in moments) and len(rows) == 4 + 5
    store = Store(index)
    try:
        stored = store.moments_if_unchanged(str(media / "clip.mp4"), *_size_mtime(media / "clip.mp4"))
    finally:
        store.close()
    for (t, raw), row in zip(stored, moments):
        assert t == row["time"] and float(np.frombuffer(raw, np.float32) @ np.array(row["embedding"])) >= 0.9999
    out = tmp_path / "v.npy"
    r = runner.invoke(
        app, ["embed", str(media / "clip.mp4"), str(media / "red_circle.jpg"), "--model", TINY, "-o", str(out)]
    )
    assert r.exit_code == 0, r.stderr
    meta = json.loads((tmp_path / "v.paths.json").read_text())
    assert meta["times"] == [0.0, 2.0, 4.0, 6.0, 8.0, None] and len(meta["paths"]) == np.load(out).shape[0] == 6


def _size_mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _ranking(index: Path, q: np.ndarray, leave_out) -> list[tuple[str, float | None]]:
    """Every vector of the index by score against ``q``, brute force; a video once (its best moment)."""
    from mmcli.index.store import Store

    store = Store(index)
    try:
        ids, vecs = zip(*[(i, v) for chunk_ids, chunk in store.vectors() for i, v in zip(chunk_ids, chunk)])
        where = store.locate(int(i) for i in ids)
    finally:
        store.close()
    order = np.argsort(-(np.stack(vecs) @ q), kind="stable")
    seen, out = set(), []
    for n in order:
        found = where[int(ids[n])]
        if leave_out(found.path, found.time) or found.path in seen:
            continue
        seen.add(found.path)
        out.append((found.path, found.time))
    return out


def test_a_video_as_the_query_is_all_its_moments_or_one(runner, media: Path, index: Path, tmp_path: Path) -> None:
    from mmcli.index.store import Store

    video = str(media / "clip.mp4")
    store = Store(index)
    try:
        stored = store.moments_if_unchanged(video, *_size_mtime(media / "clip.mp4"))
    finally:
        store.close()
    vectors = {t: np.frombuffer(v, np.float32) for t, v in stored}
    r = runner.invoke(app, ["search", "--image", video, "--index", str(index), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    hits = json.loads(r.stdout)
    expected = _ranking(index, _unit(np.mean(list(vectors.values()), axis=0)), lambda p, t: p == video)
    assert [h["path"] for h in hits] == [p for p, _ in expected]  # the mean of its moments; itself left out
    r = runner.invoke(
        app, ["search", "--image", video + "#t=4.2", "--index", str(index), "-f", "json", "--all-moments"]
    )
    assert r.exit_code == 0, r.stderr
    hits = json.loads(r.stdout)
    assert (video, 4.0) not in [(h["path"], h["time"]) for h in hits]  # the moment itself is left out
    assert {h["time"] for h in hits if h["path"] == video} == {0.0, 2.0, 6.0, 8.0}  # its other moments are not
    assert hits[0]["path"] == video and hits[0]["time"] == 6.0  # the same blue square, two seconds on
    # a copy that is not indexed: sampled, or its frame decoded, the same vectors to within the decoder
    copy = tmp_path / "copy.mp4"
    copy.write_bytes((media / "clip.mp4").read_bytes())
    for query, time in ((str(copy), None), (f"{copy}#t=4", 4.0)):
        r = runner.invoke(app, ["search", "--image", query, "--index", str(index), "-f", "json", "-k", "3"])
        assert r.exit_code == 0, r.stderr
        mine = json.loads(r.stdout)
        wanted = _unit(np.mean(list(vectors.values()), axis=0)) if time is None else vectors[time]
        best = _ranking(index, wanted, lambda p, t: False)[:3]
        assert [h["path"] for h in mine] == [p for p, _ in best], (query, mine)
    r = runner.invoke(app, ["search", "--image", f"{copy}#t=99", "--index", str(index)])
    assert r.exit_code == 2 and "no frame at 99 s" in r.stderr
    r = runner.invoke(app, ["search", "--add", str(tmp_path / "nope.mp4#t=3"), "--index", str(index)])
    assert r.exit_code == 2 and "no such image file" in r.stderr


def test_indexes_and_info_agree_on_size_and_count_videos_apart(
    runner, index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = index.parent / "home-sizes"
    (home / "indexes").mkdir(parents=True)
    os.symlink(index, home / "indexes" / "mine")
    monkeypatch.setenv("MMCLI_HOME", str(home))
    info = json.loads(runner.invoke(app, ["info", "--index", "mine", "-f", "json"]).stdout)
    (entry,) = json.loads(runner.invoke(app, ["indexes", "-f", "json"]).stdout)
    assert (entry["images"], entry["videos"], entry["moments"]) == (4, 1, 5)
    assert entry["size_bytes"] == info["size_bytes"] > 0  # one definition, whoever opened it first
    table = (
        runner.invoke(app, ["indexes", "-f", "table"]).stdout
        + runner.invoke(app, ["info", "--index", "mine", "-f", "table"]).stdout
    )
    size = re.findall(r"\d+\.\d (?:kB|MB)", table)
    assert len(size) == 2 and size[0] == size[1], table  # one unit style


def test_a_failed_first_index_says_when_it_was_made(runner, media: Path, tmp_path: Path) -> None:
    folder = tmp_path / "failed"
    r = runner.invoke(app, ["index", str(media), "--index", str(folder), "--model", "ViT-B-32:laion2b_s34b_b79k"])
    assert r.exit_code == 1, r.stderr
    info = json.loads(runner.invoke(app, ["info", "--index", str(folder), "-f", "json"]).stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", info["created"]), info


# ------------------------------------------------------------------------------- 3. CSV rows
def test_multi_label_csv_has_a_row_for_every_image(runner, media: Path) -> None:
    import csv
    import io

    args = ["classify", str(media), "--labels", "cat", "dog", "--multi-label", "--threshold", "0.99", "--model", TINY]
    jsonl = _jsonl(runner.invoke(app, [*args, "-f", "jsonl"]).stdout)
    r = runner.invoke(app, [*args, "-f", "csv"])
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert all(row.get("labels", []) == [] for row in jsonl)  # nothing is a cat at 0.99
    assert sorted(row["path"] for row in rows) == sorted(str(row["path"]) for row in jsonl)
    assert all(row["label"] == "" and row["score"] == "" for row in rows)


# ------------------------------------------------------------------------------- 8. messages and counts
def test_summaries_count_videos_apart_and_show_no_rate_for_a_few_images(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from mmcli.cli.console import summary

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    summary("classified", 6, 0, 2.0, False, videos=1)
    summary("embedded", 1, 0, 3.0, False)
    summary("embedded", 640, 2, 8.0, False)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "classified 6 images, 1 video in 2.0 s",
        "embedded 1 image in 3.0 s",
        "embedded 640 images, 2 failed in 8.0 s (80.0 images/s)",
    ]


def test_adding_one_file_reports_no_rate(runner, media: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["index", str(media / "red_circle.jpg"), "--index", str(tmp_path / "one"), "--model", TINY])
    assert r.exit_code == 0, r.stderr
    assert "1 added" in r.stderr and "images/s" not in r.stderr


def test_clusters_and_dupes_count_images_and_videos_apart(runner, index: Path) -> None:
    r = runner.invoke(app, ["cluster", "-k", "2", "--index", str(index), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    clusters = json.loads(r.stdout)
    assert sum(c["images"] for c in clusters) == 4 and sum(c["moments"] for c in clusters) == 5
    assert all(c["size"] == c["images"] + c["moments"] for c in clusters)
    assert all(c["videos"] == (1 if c["moments"] else 0) for c in clusters)
    r = runner.invoke(app, ["dupes", "--index", str(index), "--threshold", "0.0", "-f", "json"])
    assert "(4 images, 1 video)" in r.stderr


def test_errors_name_a_bundled_model_by_its_name(runner, index: Path) -> None:
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "--model", "vit-b-16"])
    assert r.exit_code != 0
    assert "built with mmcli-tiny, not vit-b-16" in r.stderr and "local-dir:" not in r.stderr


# ------------------------------------------------------------------------------- 7. hints
def test_the_offline_hint_does_not_ask_for_what_is_set(runner, media: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["classify", str(media / "red_circle.jpg"), "--labels", "a", "--model", "ViT-B-32:laion2b_s34b_b79k"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "HF_HUB_OFFLINE is set" in r.stderr
    assert "set HF_HUB_OFFLINE=1" not in r.stderr
    r = runner.invoke(app, [*args[:-1], "ViT-B-32:laion2b_s34b_b79kk"])
    assert r.exit_code == 2 and "did you mean ViT-B-32:laion2b_s34b_b79k?" in r.stderr
    assert "commonpool" not in r.stderr  # the closest, not all 22


def test_a_proxy_is_a_way_out_even_where_names_do_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcli.models import weights

    for name in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.mmcli-test.invalid")  # .invalid never resolves (RFC 2606)
    assert "cannot resolve hub.mmcli-test.invalid" in (weights._offline_reason() or "")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert weights._offline_reason() is None  # the proxy resolves the name
    monkeypatch.setenv("NO_PROXY", "hub.mmcli-test.invalid")
    assert "cannot resolve" in (weights._offline_reason() or "")  # not through the proxy after all


# ------------------------------------------------------------------------------- 9. tables
def test_tables_at_80_columns_keep_file_names_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from mmcli.cli.output import render
    from mmcli.cli.views import HITS
    from mmcli.results import Hit

    monkeypatch.setenv("COLUMNS", "80")
    deep = "/home/someone/Pictures/2024/holidays/the seaside in july/day three"
    names = ["blue_square.jpg", "a_rather_long_but_ordinary_file_name.jpg", "Été à la plage ☀ 2023.jpg"]
    hits = [Hit(i, f"{deep}/{n}", None, 0.5 - i / 10, "2024-07-03T10:00:00Z", "mtime") for i, n in enumerate(names, 1)]
    out = io.StringIO()
    render(hits, HITS, "table", out)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert all(any(n in line for line in lines) for n in names), lines  # each name whole, on one line
    assert "time" not in lines[0]  # no video among the hits: no empty time column
    out = io.StringIO()
    render([*hits, Hit(4, f"{deep}/clip.mp4", 12.0, 0.1)], HITS, "table", out)
    assert "time" in out.getvalue().splitlines()[0] and "12.0 s" in out.getvalue()


def test_shorten_path_keeps_the_name_and_the_nearest_folders() -> None:
    from mmcli.cli.output import shorten_path

    assert shorten_path("/a/b/c/name.jpg", 40) == "/a/b/c/name.jpg"
    assert shorten_path("/photos/2024/july/name.jpg", 17) == "…/july/name.jpg"
    assert shorten_path("/photos/2024/july/a_long_name.jpg", 10) == "…/a_long_name.jpg"  # never cut: wraps
