"""Hostile inputs through index / classify / embed / search --image: no traceback, each bad file
reported once with its reason, every good file processed, documented exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_mmcli
from hostile import MAX_PIXELS, Corpus, exif_jpeg, make_corpus

from mmcli.demo.shapes import ShapeSpec, draw_shape


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


def _skipped(stderr: bytes) -> dict[str, str]:
    """stderr lines 'mmcli: warning: skipped PATH: REASON' -> {PATH: REASON}."""
    found: dict[str, str] = {}
    text = os.fsdecode(stderr)
    for block in text.split("mmcli: warning: skipped ")[1:]:
        block = block.split("\nmmcli:")[0].rstrip("\n")
        path, _, reason = block.rpartition(": ")
        while path and not os.path.lexists(path) and ": " in path:  # reasons can hold ': '
            path, _, rest = path.rpartition(": ")
            reason = rest + ": " + reason
        assert path not in found, f"reported twice: {path}"
        found[path] = reason
    return found


def test_classify_every_kind_named_explicitly(corpus: Corpus) -> None:
    import re

    inputs = corpus.good + list(corpus.bad) + list(corpus.unlisted) + corpus.folders
    data = b"\0".join(os.fsencode(p) for p in inputs) + b"\0"
    proc = run_mmcli(
        "classify",
        "-",
        "-z",
        "--labels",
        "red star",
        "blue circle",
        "--model",
        TINY,
        "--max-pixels",
        str(MAX_PIXELS),
        stdin=data,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    shown = sorted(os.fsencode(p).decode(errors="replace") for p in corpus.good)  # non-UTF-8 bytes: U+FFFD
    assert sorted(row["path"] for row in rows) == shown  # each good file classified, once
    skipped = _skipped(proc.stderr)
    expected = {**corpus.bad, **corpus.unlisted}
    assert set(skipped) == set(expected), set(skipped) ^ set(expected)
    for path, pattern in expected.items():
        assert re.search(pattern, skipped[path]), (path, skipped[path])


def test_directory_named_like_an_image_is_walked(corpus: Corpus) -> None:
    proc = run_mmcli("classify", corpus.folders[0], "--labels", "a", "b", "--model", TINY)
    assert proc.returncode == 1 and b"no image files found" in proc.stderr


def test_embed_output_rows_match_good_files(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "e.npy"
    inputs = corpus.good + list(corpus.bad)
    data = b"\0".join(os.fsencode(p) for p in inputs) + b"\0"
    proc = run_mmcli("embed", "-", "-z", "--model", TINY, "--max-pixels", str(MAX_PIXELS), "-o", str(out), stdin=data)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    vecs = np.load(out)
    meta = json.loads((tmp_path / "e.paths.json").read_text(encoding="utf-8", errors="surrogateescape"))
    assert vecs.shape[0] == len(corpus.good) == meta["rows"]
    assert np.isfinite(vecs).all()
    assert len(_skipped(proc.stderr)) == len(corpus.bad)


def test_index_and_search_image_over_the_folder(corpus: Corpus, tmp_path: Path) -> None:
    folder = Path(corpus.good[0]).parent
    index = tmp_path / "idx"
    proc = run_mmcli("index", str(folder), "--index", str(index), "--model", TINY, "--max-pixels", str(MAX_PIXELS))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    assert set(_skipped(proc.stderr)) == set(corpus.bad)
    db = sqlite3.connect(index / "index.sqlite")
    rows = {os.fsdecode(p): s for p, s in db.execute("SELECT path, status FROM files")}
    db.close()
    assert {p for p, s in rows.items() if s == "ok"} == set(corpus.good)
    assert {p for p, s in rows.items() if s == "failed"} == set(corpus.bad)
    again = run_mmcli("index", str(folder), "--index", str(index), "--max-pixels", str(MAX_PIXELS))
    assert again.returncode == 0 and b"skipped" not in again.stderr  # failures are not retried
    hit = run_mmcli("search", "--image", corpus.good[0], "--index", str(index), "-k", "3", "-f", "paths")
    assert hit.returncode == 0 and len(hit.stdout.splitlines()) == 3
    for path in list(corpus.bad)[:3] + list(corpus.unlisted)[:2]:
        r = run_mmcli("search", "--image", path, "--index", str(index))
        assert r.returncode == 2, r.stderr  # a query image that cannot be read is a bad --image value
        assert r.stderr.startswith(b"mmcli: error:") and b"Traceback" not in r.stderr
        assert os.fsencode(path) in r.stderr and r.stdout == b""


def test_exif_rotated_photos_embed_like_their_upright_twin(tmp_path: Path) -> None:
    from mmcli.embedding.batch import embed_stream
    from mmcli.models import load_encoder, parse_model_spec

    upright = draw_shape(ShapeSpec("green", "triangle"), size=160, seed=3)
    paths = []
    for o in range(1, 9):
        exif_jpeg(tmp_path / f"o{o}.jpg", upright, o)
        paths.append(str(tmp_path / f"o{o}.jpg"))
    enc = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    vecs = [v.vector for v in embed_stream(enc, paths, workers=1)]
    assert all(float(vecs[0] @ v) >= 0.99 for v in vecs[1:])


def test_file_deleted_between_scan_and_decode_and_rewritten_while_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmcli.index.sync as sync
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    folder = tmp_path / "p"
    folder.mkdir()
    for i, col in enumerate(("red", "blue", "green")):
        draw_shape(ShapeSpec(col, "square"), size=96, seed=i).save(folder / f"{col}.jpg")
    real_find = sync.find_changes

    def racing_scan(*args, **kwargs):
        found = real_find(*args, **kwargs)
        os.unlink(folder / "red.jpg")  # gone before the decoder reaches it
        draw_shape(ShapeSpec("yellow", "star"), size=96, seed=9).save(folder / "blue.jpg")  # rewritten after the scan
        return found

    monkeypatch.setattr(sync, "find_changes", racing_scan)
    failures = []
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], model=TINY, workers=1, on_failure=failures.append))
    assert [f.path for f in failures] == [str(folder / "red.jpg")] and "no such file" in failures[0].reason
    assert s.added == 2 and s.failed == 1
    with sqlite3.connect(tmp_path / "idx" / "index.sqlite") as db:
        (stored,) = db.execute("SELECT hash FROM files WHERE path = ?", (os.fsencode(folder / "blue.jpg"),)).fetchone()
    # the hash is of the bytes that were embedded (the rewrite), not of what was there at the scan
    assert stored == hashlib.sha256((folder / "blue.jpg").read_bytes()).hexdigest()
    monkeypatch.undo()
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], workers=1))
    assert s.missing == 1  # the deleted file's row is kept as missing (out of searches)
    assert s.updated == 1  # the rewritten file changed mtime/size: embedded again
