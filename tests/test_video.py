"""Videos: sampling (times, cuts, rotation, pixel aspect, variable frame rate), indexing and searching
moments with the real tiny model, classify timelines, pictures, dupes/cluster, hostile files, no PyAV.

The videos are written here with PyAV (``tests/videos.py``): a red circle 0-4 s, a blue square 4-8 s,
a green star 8-10 s, 160x120 at 10 fps.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_mmcli

pytest.importorskip("av")

from videos import lie_about_duration, rotate_mp4, write_audio_only, write_video  # noqa: E402

from mmcli.config import install_command  # noqa: E402
from mmcli.demo.shapes import ShapeSpec  # noqa: E402

VFR_TIMES = (0.0, 0.05, 0.3, 0.35, 1.2, 2.9, 3.0, 3.9, 4.1, 4.15, 5.5, 7.9, 8.05, 9.0, 9.7)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    out = {
        "mp4": write_video(folder / "shapes.mp4"),
        "webm": write_video(folder / "shapes.webm", codec="libvpx-vp9"),
        "vfr": write_video(folder / "vfr.mkv", times=VFR_TIMES),
        "sar": write_video(folder / "sar.mp4", seconds=1, sar=Fraction(2, 1)),
    }
    out["rot"] = rotate_mp4(out["mp4"], folder / "turned.mp4")
    return out


def _times(path: Path, **kw: object) -> list[float]:
    from mmcli.media.video import sample_video

    return [round(m.time, 3) for m in sample_video(path, **kw)]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- sampling
def test_samples_every_step_from_frame_timestamps(clips: dict[str, Path]) -> None:
    assert _times(clips["mp4"]) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert _times(clips["webm"]) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert _times(clips["mp4"], every=3.0) == [0.0, 3.0, 4.0, 6.0, 8.0, 9.0]  # + the cuts at 4 and 8
    assert _times(clips["mp4"], max_frames=2) == [0.0, 2.0]


@pytest.mark.parametrize(("gop", "most"), [(10, 80), (400, 301)])
def test_only_the_frames_needed_are_decoded(
    gop: int, most: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyframes every second: the first step is decoded through (which shows the keyframe spacing), then a
    seek per sample, a few frames each (50 + 5 x ~3 of 300). One keyframe: one sequential pass, never more."""
    import mmcli.media.video as video

    clip = write_video(tmp_path / "long.mp4", seconds=30, gop=gop, scenes=((0.0, ShapeSpec("red", "circle")),))
    decoded = []
    real = video._Reader.next

    def counted(self: video._Reader) -> object:
        frame = real(self)
        decoded.append(frame)
        return frame

    monkeypatch.setattr(video._Reader, "next", counted)
    assert _times(clip, every=5.0) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert len(decoded) <= most, len(decoded)


def test_variable_frame_rate_uses_each_frames_own_time(clips: dict[str, Path]) -> None:
    # the first frame at or after 0, 2, 4, 6, 8 s; the next target follows the frame actually found
    assert _times(clips["vfr"]) == [0.0, 2.9, 4.1, 7.9, 8.05]


@pytest.mark.parametrize("gop", [5, 12, 100])  # seeking to samples (frames between decoded again), decoding on
def test_a_sharp_change_between_samples_is_sampled_too(gop: int, tmp_path: Path) -> None:
    scenes = ((0.0, ShapeSpec("red", "circle")), (3.0, ShapeSpec("blue", "square")), (5.0, ShapeSpec("red", "circle")))
    clip = write_video(tmp_path / "cut.mp4", seconds=8, scenes=scenes, gop=gop)
    assert _times(clip, every=2.0) == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # 3.0 and 5.0: the cuts between samples


def test_rotation_metadata_is_applied(clips: dict[str, Path]) -> None:
    from PIL import Image

    from mmcli.media.video import sample_video

    upright = next(iter(sample_video(clips["mp4"]))).image
    turned = next(iter(sample_video(clips["rot"]))).image
    assert upright.size == (160, 120) and turned.size == (120, 160)
    expected = np.asarray(upright.transpose(Image.Transpose.ROTATE_270), dtype=np.float32)  # 90 degrees clockwise
    assert np.abs(np.asarray(turned, dtype=np.float32) - expected).mean() < 3


def test_non_square_pixels_are_shown_at_their_aspect(clips: dict[str, Path]) -> None:
    from mmcli.media.video import sample_video

    assert next(iter(sample_video(clips["sar"]))).image.size == (320, 120)


def test_formats() -> None:
    from mmcli.media.video import format_time, media_url

    assert [format_time(t) for t in (None, 0.0, 12.04, 62.0, 3723.9)] == ["", "0.0 s", "12.0 s", "1:02", "1:02:03"]
    assert media_url("/a b/talk.mp4", 12.0) == "file:///a%20b/talk.mp4#t=12.0"
    assert media_url("/x.jpg", None) == "file:///x.jpg"


# ------------------------------------------------------------------------------ index and search
@pytest.fixture(scope="module")
def indexed(clips: dict[str, Path], shapes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    folder = tmp_path_factory.mktemp("media")
    for key in ("mp4", "webm"):
        os.link(clips[key], folder / clips[key].name)
    (folder / "yellow_triangle.jpg").write_bytes((shapes_dir / "yellow_triangle.jpg").read_bytes())
    index = tmp_path_factory.mktemp("vidx")
    s = run_index(index, IndexJob([str(folder)], model=TINY, device="cpu", precision="fp32", workers=1))
    assert (s.added, s.failed, s.moments) == (3, 0, 10)
    return folder, index


def test_info_counts_videos_and_their_moments(indexed: tuple[Path, Path]) -> None:
    _, index = indexed
    proc = run_mmcli("info", "--index", str(index), "-f", "json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["ok"], info["videos"], info["moments"]) == (3, 2, 10)


def _search(index: Path, query: str, **kw: object):  # noqa: ANN202
    from mmcli.engine.local import LocalEngine
    from mmcli.queries import SearchRequest, build_terms

    engine = LocalEngine(index, None, None, "cpu", "fp32", workers=1)
    return engine.search(SearchRequest(build_terms(query, None), **kw)).hits  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "lo", "hi"), [("a red circle", 0, 4), ("a blue square", 4, 8), ("a green star", 8, 10)]
)
def test_search_finds_the_moment(indexed: tuple[Path, Path], query: str, lo: float, hi: float) -> None:
    _, index = indexed
    hits = _search(index, query, top_k=3)
    videos = [h for h in hits if h.time is not None]
    assert len(videos) == 2 and {Path(h.path).suffix for h in videos} == {".mp4", ".webm"}  # one hit per video
    assert all(lo <= h.time < hi for h in videos), hits
    assert hits[0].time is not None


def test_all_moments_lists_every_matching_moment(indexed: tuple[Path, Path]) -> None:
    _, index = indexed
    hits = _search(index, "a blue square", top_k=4, all_moments=True)
    assert sorted((Path(h.path).suffix, h.time) for h in hits) == [
        (".mp4", 4.0), (".mp4", 6.0), (".webm", 4.0), (".webm", 6.0)
    ]  # fmt: skip
    assert [h.rank for h in hits] == [1, 2, 3, 4]


def test_images_and_videos_rank_together(indexed: tuple[Path, Path]) -> None:
    _, index = indexed
    hits = _search(index, "a yellow triangle", top_k=3)
    assert hits[0].path.endswith("yellow_triangle.jpg") and hits[0].time is None
    assert len({h.path for h in hits}) == 3


def test_image_query_and_add_sub_reach_video_moments(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    from mmcli.engine.local import LocalEngine
    from mmcli.media.video import sample_video
    from mmcli.queries import SearchRequest, build_terms

    folder, index = indexed
    still = tmp_path / "still.png"
    [m for m in sample_video(folder / "shapes.mp4") if m.time == 8.0][0].image.save(still)
    engine = LocalEngine(index, None, None, "cpu", "fp32", workers=1)
    hits = engine.search(SearchRequest(build_terms(None, str(still)), top_k=2)).hits
    assert all(h.time is not None and 8 <= h.time < 10 for h in hits), hits
    hits = engine.search(SearchRequest(build_terms("a red circle", None, add=["a blue square"], sub=[]), top_k=2)).hits
    assert all(h.time is not None and h.time < 8 for h in hits), hits


def test_cli_json_fields_urls_paths_and_table(indexed: tuple[Path, Path]) -> None:
    folder, index = indexed
    proc = run_mmcli("search", "a red circle", "--index", str(index), "-k", "2")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [list(r) for r in rows] == [["rank", "path", "time", "score", "taken", "taken_source"]] * 2
    assert all(0 <= r["time"] < 4 for r in rows)
    urls = run_mmcli("search", "a red circle", "--index", str(index), "-k", "2", "-f", "urls").stdout.decode()
    assert all(u.startswith("file://") and "#t=" in u for u in urls.splitlines())
    paths = run_mmcli("search", "a red circle", "--index", str(index), "-k", "2", "-f", "paths").stdout.decode()
    assert sorted(paths.splitlines()) == sorted(str(p) for p in folder.glob("shapes.*"))
    table = run_mmcli("search", "a green star", "--index", str(index), "-k", "1", "-f", "table").stdout.decode()
    assert "8.0 s" in table
    csv = run_mmcli("search", "a yellow triangle", "--index", str(index), "-k", "1", "-f", "csv").stdout.decode()
    header, row = csv.splitlines()[:2]
    assert header == "rank,path,time,score,taken,taken_source" and ",," in row  # no time for an image


def test_server_reply_carries_time() -> None:
    import json

    from mmcli import wire
    from mmcli.queries import SearchRequest, build_terms, search_request
    from mmcli.results import Hit, SearchResult

    result = SearchResult((Hit(1, "/v.mp4", 12.0, 0.5), Hit(2, "/i.jpg", None, 0.4)))
    assert wire.read(SearchResult, json.loads(json.dumps(wire.value(result)))) == result
    request = SearchRequest(build_terms("a red circle", None), all_moments=True)
    assert search_request(**json.loads(json.dumps(wire.search_values(request)))) == request


def test_reindex_is_a_noop_rename_reuses_moments_delete_hides_them(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmcli.models
    from mmcli.index.job import IndexJob
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index

    folder = tmp_path / "v"
    folder.mkdir()
    os.link(clips["mp4"], folder / "talk.mp4")
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(folder)], model=TINY, workers=1))

    def no_model(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(mmcli.models, "load_encoder", no_model)
    s = run_index(index, IndexJob([str(folder)], workers=1))
    assert not s.model_loaded and s.unchanged == 1
    (folder / "talk.mp4").rename(folder / "renamed.mp4")
    s = run_index(index, IndexJob([str(folder)], workers=1))
    assert (s.renamed, s.added, s.model_loaded) == (1, 0, False)
    store = Store(index)
    assert store.vector_count() == store.frame_count() == 5
    store.close()
    assert {h.path for h in _search(index, "a red circle", top_k=3)} == {str(folder / "renamed.mp4")}
    (folder / "renamed.mp4").unlink()
    s = run_index(index, IndexJob([str(folder)], workers=1))
    assert s.missing == 1 and _search(index, "a red circle", top_k=3) == ()
    run_index(index, IndexJob([str(folder)], workers=1, prune=True))
    db = sqlite3.connect(index / "index.sqlite")
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 0
    db.close()


def test_format_2_index_migrates_in_place(clips: dict[str, Path], shapes_dir: Path, tmp_path: Path) -> None:
    """An index of format 2 (no frames table) is read as it is where read-only, migrated in place where writable."""
    from mmcli.index.job import IndexJob
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "red_circle.jpg").write_bytes((shapes_dir / "red_circle.jpg").read_bytes())
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(folder)], model=TINY, workers=1))
    db = sqlite3.connect(index / "index.sqlite")  # what mmcli of format 2 wrote: no frames table
    db.execute("DROP TABLE frames")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'format_version'")
    db.commit()
    db.close()
    with pytest.MonkeyPatch.context() as mp:  # read-only media: read as it is, nothing written
        mp.setattr("mmcli.index.store.read_only", lambda folder, path: True)
        ro = Store(index)
        assert ro.readonly and ro.vector_count() == 1 and ro.meta()["format_version"] == "2"
        assert _search(index, "a red circle", top_k=1)[0].path.endswith("red_circle.jpg")
        ro.close()
    os.link(clips["mp4"], folder / "talk.mp4")
    s = run_index(index, IndexJob([str(folder)], workers=1))
    assert (s.unchanged, s.added, s.moments) == (1, 1, 5)  # the image is not embedded again
    store = Store(index)
    assert store.meta()["format_version"] == "4" and store.vector_count() == 6
    store.close()


# ------------------------------------------------------------------------------------- hostile
@pytest.fixture(scope="module")
def hostile(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("badvideo")
    os.link(clips["mp4"], folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "truncated.mp4").write_bytes(clips["mp4"].read_bytes()[:3000])
    write_audio_only(folder / "audio.m4v")
    header = b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\n"
    (folder / "huge.mkv").write_bytes(header % (100_000, 100_000) + b"FRAME\n" + os.urandom(4096))
    (folder / "big.avi").write_bytes(header % (8000, 8000) + b"FRAME\n" + os.urandom(4096))
    (folder / "noframes.mov").write_bytes(header % (64, 48))
    lie_about_duration(clips["webm"], folder / "liar.webm")
    bad = {
        "empty.mp4": "empty file",
        "truncated.mp4": "truncated or corrupt",
        "audio.m4v": r"no video stream \(audio only\)",
        "huge.mkv": "corrupt",
        "big.avi": "too large: 8000x8000",
        "noframes.mov": "no decodable video frames",
    }
    return folder, {str(folder / k): v for k, v in bad.items()}


def test_hostile_videos_each_reported_once_rest_indexed(hostile: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    import re

    from test_hostile import _skipped

    folder, bad = hostile
    index = tmp_path / "idx"
    proc = run_mmcli("index", str(folder), "--index", str(index), "--model", TINY, "--max-pixels", "10000000")
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    skipped = _skipped(proc.stderr)
    assert set(skipped) == set(bad), skipped
    for path, pattern in bad.items():
        assert re.search(pattern, skipped[path]), (path, skipped[path])
    db = sqlite3.connect(index / "index.sqlite")
    times = dict(
        db.execute(
            "SELECT path, max(time) FROM frames JOIN files ON files.id = frames.file_id GROUP BY path"
        ).fetchall()
    )
    db.close()
    assert {os.fsdecode(p): t for p, t in times.items()} == {
        str(folder / "good.mp4"): 8.0,
        str(folder / "liar.webm"): 8.0,  # it claims 100,000 s: sampling stops where the frames stop
    }
    again = run_mmcli("index", str(folder), "--index", str(index), "--max-pixels", "10000000")
    assert again.returncode == 0 and b"skipped" not in again.stderr and b"no model loaded" in again.stderr
    labels = ("--labels", "red circle", "blue square")
    named = run_mmcli(
        "classify", *sorted(bad), str(folder / "good.mp4"), "--model", TINY, "--max-pixels", "10000000", *labels
    )
    assert named.returncode == 0 and b"Traceback" not in named.stderr, named.stderr
    assert set(_skipped(named.stderr)) == set(bad)  # each once, with its reason; the good video classified
    assert {json.loads(line)["path"] for line in named.stdout.splitlines()} == {str(folder / "good.mp4")}


def test_without_pyav_one_clear_line(clips: dict[str, Path], shapes_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from mmcli.errors import ImageLoadError
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.media.video import sample_video

    folder = tmp_path / "m"
    folder.mkdir()
    os.link(clips["mp4"], folder / "talk.mp4")
    (folder / "red_circle.jpg").write_bytes((shapes_dir / "red_circle.jpg").read_bytes())
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(ImageLoadError, match=re.escape(install_command("video"))):
        next(iter(sample_video(folder / "talk.mp4")))
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], model=TINY, workers=1))
    assert s.added == 1 and s.failed == 0
    assert [w for w in s.warnings if "video" in w] == ['1 video file not indexed: PyAV is not installed, which video '
                                                       f'needs: {install_command("video")}']  # fmt: skip
    monkeypatch.undo()
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], workers=1))  # not recorded as failed: indexed now
    assert s.added == 1 and s.moments == 5


# ------------------------------------------------------------------------------------ classify
def test_classify_gives_a_timeline_images_and_videos_mixed(clips: dict[str, Path], shapes_dir: Path) -> None:
    labels = ("red circle", "blue square", "green star", "yellow triangle")
    image = shapes_dir / "yellow_triangle.jpg"
    args = ("classify", str(clips["webm"]), str(image), str(clips["vfr"]), "--model", TINY, "--labels", *labels)
    proc = run_mmcli(*args)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(clips["webm"])] * 3 + [str(image)] + [str(clips["vfr"])] * 3  # input order
    webm = rows[:3]
    assert [list(r) for r in webm] == [["path", "start", "end", "label", "score"]] * 3
    assert [r["label"] for r in webm] == ["red circle", "blue square", "green star"]
    step = 2.0
    assert webm[0]["start"] == 0.0 and abs(webm[0]["end"] - 4) <= step and abs(webm[1]["start"] - 4) <= step
    assert abs(webm[1]["end"] - 8) <= step and abs(webm[2]["start"] - 8) <= step and webm[2]["end"] <= 10 + step
    assert rows[3]["labels"][0]["label"] == "yellow triangle"
    assert [r["label"] for r in rows[4:]] == ["red circle", "blue square", "green star"]
    fine = run_mmcli("classify", str(clips["mp4"]), "--model", TINY, "--every", "1", "-f", "csv", "--labels", *labels)
    lines = fine.stdout.decode().splitlines()
    assert lines[0] == "path,start,end,label,score" and len(lines) == 4
    assert [line.split(",")[1:3] for line in lines[1:]] == [["0.000", "4.000"], ["4.000", "8.000"], ["8.000", "10.000"]]


def test_timeline_merging_and_multi_label_segments() -> None:
    from mmcli.engine.classify import timeline

    times = [0.0, 2.0, 4.0, 6.0, 8.0]
    scores = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.55, 0.6]])
    single = timeline("v.mp4", times, scores, ("a", "b"), 2.0)
    assert [(s.start, s.end, s.label, round(s.score, 3)) for s in single] == [
        (0.0, 4.0, "a", 0.8), (4.0, 6.0, "b", 0.8), (6.0, 8.0, "a", 0.6), (8.0, 10.0, "b", 0.6)
    ]  # fmt: skip
    multi = timeline("v.mp4", times, scores, ("a", "b"), 2.0, multi_label=True, threshold=0.5)
    assert [(s.start, s.end, s.label) for s in multi] == [
        (0.0, 4.0, "a"),
        (4.0, 6.0, "b"),
        (6.0, 10.0, "a"),
        (8.0, 10.0, "b"),
    ]


# ---------------------------------------------------------------------------- pictures, dupes, cluster
def test_pictures_show_the_moment_and_link_to_it(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    _, index = indexed
    page, sheet = tmp_path / "r.html", tmp_path / "r.png"
    proc = run_mmcli(
        "search", "a green star", "--index", str(index), "-k", "2", "--html", str(page), "--grid", str(sheet)
    )
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.count("#t=8.0") == 4 and "cannot read" not in text  # picture and name link to the moment
    assert "at 8.0 s" in text
    assert Image.open(sheet).size[0] > 0


def test_dupes_and_cluster_over_moments(clips: dict[str, Path], shapes_dir: Path, tmp_path: Path) -> None:
    from mmcli.engine.local import LocalEngine
    from mmcli.explore.cluster import cluster_index
    from mmcli.explore.dupes import find_dupes
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.media.video import sample_video

    folder = tmp_path / "d"
    folder.mkdir()
    for name, src in (("shapes.mp4", clips["mp4"]), ("copy.mp4", clips["mp4"]), ("shapes.webm", clips["webm"])):
        os.link(src, folder / name)
    next(iter(sample_video(clips["mp4"]))).image.save(folder / "still.png")  # the red circle at 0 s
    (folder / "purple_star.jpg").write_bytes((shapes_dir / "purple_star.jpg").read_bytes())
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(folder)], model=TINY, workers=1))
    groups = find_dupes(index, threshold=0.97)
    # one group: the copy (same hash), the re-encoded video and the still, each once; moments of one
    # video (0 s and 2 s show the same picture) never make a video a duplicate of itself
    assert [g.paths for g in groups] == [
        tuple(str(folder / n) for n in ("copy.mp4", "shapes.mp4", "shapes.webm", "still.png"))
    ]
    clusters = cluster_index(LocalEngine(index, None, None, "cpu", "fp32", workers=1), k=3, samples=5)
    assert sum(c.size for c in clusters) == 3 * 5 + 2  # moments and images
    assert all(len(set(c.samples)) == len(c.samples) for c in clusters)


def test_rebuild_and_a_damaged_faiss_file_keep_the_moments(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faiss

    import mmcli.engine.search

    monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)  # the search goes through FAISS

    from mmcli.index import vectors
    from mmcli.index.job import IndexJob
    from mmcli.index.schema import FRAME_ID_BASE
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index

    folder = tmp_path / "r"
    folder.mkdir()
    os.link(clips["mp4"], folder / "talk.mp4")
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(folder)], model=TINY, workers=1))
    s = run_index(index, IndexJob([str(folder)], workers=1, rebuild=True))
    assert (s.added, s.moments) == (1, 5)
    store = Store(index)
    ids, _ = vectors.load_all(store)
    assert len(ids) == 5 and (ids >= FRAME_ID_BASE).all()
    for old in index.glob("vectors.g*.faiss"):  # a FAISS file holding other vectors: found out, rebuilt
        bogus = vectors.build(
            ids[::-1].copy(), np.eye(5, int(store.meta()["dim"]), dtype=np.float32), int(store.meta()["dim"])
        )
        old.write_bytes(faiss.serialize_index(bogus).tobytes())
        assert not vectors.agrees(vectors.read(old), store)
    store.close()
    assert [h.time for h in _search(index, "a green star", top_k=1)] == [8.0]


def test_search_through_a_server_carries_time(clips: dict[str, Path], tmp_path: Path) -> None:
    import subprocess

    pytest.importorskip("fastapi")
    from test_serve import _free_port, _get, _wait_until_serving

    folder = tmp_path / "v"
    folder.mkdir()
    os.link(clips["mp4"], folder / "talk.mp4")
    env = {**os.environ, "MMCLI_HOME": str(tmp_path / "home"), "MMCLI_CACHE": str(tmp_path / "cache")}
    assert run_mmcli("index", str(folder), "--index", "v", "--model", TINY, "-q", env=env).returncode == 0
    port = _free_port()
    serve = [sys.executable, "-m", "mmcli", "serve", "--index", "v", "--port", str(port), "--allow-root", str(folder)]
    server_env = {k: v for k, v in env.items() if k != "MMCLI_SERVER"}
    proc = subprocess.Popen(serve, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, proc)
        args = ("search", "a blue square", "--index", "v", "--all-moments", "-k", "3")
        via = run_mmcli(*args, env={**env, "MMCLI_SERVER": url})
        assert _get(url + "/health")["served"]["search"] == 1  # it went through the server
        alone = run_mmcli(*args, env={**env, "MMCLI_SERVER": "off"})
        assert via.returncode == alone.returncode == 0 and via.stdout == alone.stdout, (via.stderr, alone.stderr)
        assert [json.loads(line)["time"] for line in via.stdout.splitlines()][:2] in ([4.0, 6.0], [6.0, 4.0])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_killed_while_indexing_videos_keeps_whole_videos_and_resumes(clips: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "k"
    folder.mkdir()
    for key in ("mp4", "webm", "vfr", "sar"):
        os.link(clips[key], folder / clips[key].name)
    index = tmp_path / "idx"
    killed = run_mmcli(
        "index", str(folder), "--index", str(index), "--model", TINY, env={"MMCLI_FAULT": "index.commit:2"}
    )
    assert killed.returncode == -9, killed.stderr
    db = sqlite3.connect(index / "index.sqlite")
    per_video = db.execute(
        "SELECT files.id, COUNT(frames.id) FROM files LEFT JOIN frames ON file_id = files.id GROUP BY files.id"
    )
    assert sorted(n for _, n in per_video.fetchall()) in ([1, 5], [5, 5])  # two whole videos, nothing half-stored
    db.close()
    again = run_mmcli("index", str(folder), "--index", str(index))
    assert again.returncode == 0 and b"2 added" in again.stderr, again.stderr
    db = sqlite3.connect(index / "index.sqlite")
    assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 4
    assert db.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 5 + 5 + 5 + 1
    db.close()
    assert {h.path for h in _search(index, "a red circle", top_k=4)} == {str(p) for p in folder.iterdir()}
