"""`mmcli index` / `search` / `info` with the real tiny model on generated corpora."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_mmcli

import mmcli.models
from mmcli.cli import app
from mmcli.demo.shapes import ShapeSpec, all_specs, draw_shape, write_corpus
from mmcli.engine.local import LocalEngine
from mmcli.index.job import IndexJob
from mmcli.index.store import Store
from mmcli.index.sync import run_index
from mmcli.queries import SearchRequest, build_terms


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_corpus(folder, 12, seed=11)
    (folder / "sub").mkdir()
    draw_shape(ShapeSpec("blue", "star"), seed=5).save(folder / "sub" / "blue_star.png")
    return folder


def _rows(index: Path) -> dict[str, str]:
    db = sqlite3.connect(index / "index.sqlite")
    try:
        return {os.fsdecode(p): s for p, s in db.execute("SELECT path, status FROM files")}
    finally:
        db.close()


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(mmcli.models, "load_encoder", refuse)


def test_add_modify_delete_rename_copy(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "idx"
    s = run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    assert (s.scanned, s.added, s.failed, s.model_loaded) == (13, 13, 0, True)
    assert set(_rows(index)) == {str(p) for p in photos.rglob("*") if p.is_file()}

    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))  # nothing changed: no model
        assert (s.unchanged, s.added, s.model_loaded) == (13, 0, False)

        first = sorted(photos.glob("*.jpg"))[0]
        first.rename(photos / "sub" / "moved.jpg")  # rename/move: vector reused, no model
        shutil.copy(photos / "sub" / "blue_star.png", photos / "copy.png")  # copy: vector reused
        s = run_index(index, IndexJob([str(photos)], workers=1))
        assert (s.renamed, s.copied, s.removed, s.added, s.model_loaded) == (1, 1, 0, 0, False)

        victim = sorted(photos.glob("*.jpg"))[1]
        victim.unlink()
        s = run_index(index, IndexJob([str(photos)], workers=1))
        assert (s.missing, s.removed, s.unchanged) == (1, 0, 13)  # kept as missing, out of searches
        s = run_index(index, IndexJob([str(photos)], workers=1, prune=True))
        assert (s.missing, s.removed, s.unchanged) == (0, 1, 13)  # --prune drops it

    modified = sorted(photos.glob("*.jpg"))[2]
    draw_shape(ShapeSpec("green", "triangle"), size=160, seed=99).save(modified)
    s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.updated, s.added, s.model_loaded) == (1, 0, True)
    assert set(_rows(index)) == {str(p) for p in photos.rglob("*") if p.is_file()}


def test_failed_files_are_recorded_and_not_retried(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    index = tmp_path / "idx"
    s = run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    assert s.failed == 1 and _rows(index)[str(photos / "broken.jpg")] == "failed"
    db = sqlite3.connect(index / "index.sqlite")
    assert "not an image" in db.execute("SELECT error FROM files WHERE status = 'failed'").fetchone()[0]
    db.close()
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
        assert s.failed == 0 and s.unchanged == 14


def test_rows_outside_the_roots_are_kept(photos: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_corpus(other, 3, seed=2)
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(photos), str(other)], model=TINY, workers=1))
    s = run_index(index, IndexJob([str(other)], workers=1))
    assert s.removed == 0 and len(_rows(index)) == 16


@pytest.mark.parametrize("faiss", [True, False])
def test_faiss_equals_numpy_ranking(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faiss: bool) -> None:
    """FAISS (a large index, a server) and the brute force over SQLite's vectors (a small index, a search in
    a process of its own) give the reference ranking."""
    import mmcli.engine.search

    if faiss:
        monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    engine = LocalEngine(index)
    hits = engine.search(SearchRequest(build_terms("a blue star", None, (), ()), top_k=50)).hits
    q = engine.text_encoder().encode_texts(["a blue star"])[0]  # the query vector the search used
    store = Store(index)
    ((ids, vecs),) = list(store.vectors())
    paths = store.paths_for(ids.tolist())
    store.close()
    scores = vecs @ q
    order = np.argsort(-scores, kind="stable")
    assert [h.path for h in hits] == [paths[int(ids[i])] for i in order]
    assert np.allclose([h.score for h in hits], scores[order], atol=1e-5)
    assert hits[0].path.endswith("blue_star.png")


def test_red_circles_lead_the_results(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, spec in enumerate(all_specs()):
        draw_shape(spec, size=160, seed=7000 + i).save(folder / f"{i:03d}_{spec.colour}_{spec.shape}.jpg")
    for i in range(11):
        draw_shape(ShapeSpec("red", "circle"), size=160, seed=8000 + i).save(folder / f"x{i:02d}_red_circle.jpg")
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(folder)], model=TINY))
    hits = LocalEngine(index).search(SearchRequest(build_terms("a red circle", None, (), ()), top_k=10)).hits
    assert sum("red_circle" in h.path for h in hits) >= 8


def test_image_query_combined_terms_in_and_threshold(photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    star = photos / "sub" / "blue_star.png"
    hits = LocalEngine(index).search(SearchRequest(build_terms(None, str(star), (), ()), top_k=5)).hits
    assert str(star) not in [h.path for h in hits]  # the query image is left out
    hits = (
        LocalEngine(index)
        .search(SearchRequest(build_terms("a circle", None, ["2:blue"], ["red"]), top_k=20, within=str(photos / "sub")))
        .hits
    )
    assert [h.path for h in hits] == [str(star)]
    hits = (
        LocalEngine(index).search(SearchRequest(build_terms("a circle", None, (), ()), top_k=20, threshold=0.99)).hits
    )
    assert list(hits) == []


def _formats(runner, index: Path) -> dict[str, str]:
    out = {}
    for fmt in ("json", "jsonl", "csv", "tsv", "paths"):
        r = runner.invoke(app, ["search", "a", "blue", "star", "--index", str(index), "-k", "3", "-f", fmt])
        assert r.exit_code == 0, r.stderr
        out[fmt] = r.stdout
    return out


def test_every_search_format_parses_back(runner, photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(photos), "--index", str(index), "--model", TINY]).exit_code == 0
    out = _formats(runner, index)
    jsonl = [json.loads(line) for line in out["jsonl"].splitlines()]
    assert [r["rank"] for r in jsonl] == [1, 2, 3] and jsonl[0]["path"].endswith("blue_star.png")
    assert json.loads(out["json"]) == jsonl
    for fmt in ("csv", "tsv"):
        rows = list(csv.DictReader(io.StringIO(out[fmt]), delimiter="," if fmt == "csv" else "\t"))
        assert [r["path"] for r in rows] == [r["path"] for r in jsonl]
        assert all(abs(float(r["score"]) - j["score"]) < 1e-5 for r, j in zip(rows, jsonl))
    assert out["paths"].splitlines() == [r["path"] for r in jsonl]
    proc = run_mmcli("search", "a blue star", "--index", str(index), "-k", "3", "-0")
    assert proc.returncode == 0
    assert proc.stdout.split(b"\0")[:-1] == [os.fsencode(r["path"]) for r in jsonl]


def test_info(runner, photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    (photos / "bad.jpg").write_text("x")
    runner.invoke(app, ["index", str(photos), "--index", str(index), "--model", TINY])
    r = runner.invoke(app, ["info", "--index", str(index), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert (info["ok"], info["failed"], info["model"], info["dim"]) == (13, 1, TINY, 64)
    assert info["size_bytes"] > 0 and info["vectors"] == "flat (exact)"


def test_index_names_live_under_mmcli_home(runner, photos: Path) -> None:
    r = runner.invoke(app, ["index", str(photos), "--index", "holiday", "--model", TINY])
    assert r.exit_code == 0, r.stderr
    assert (Path(os.environ["MMCLI_HOME"]) / "indexes" / "holiday" / "index.sqlite").is_file()
    r = runner.invoke(app, ["search", "a blue star", "--index", "holiday", "-f", "paths", "-k", "1"])
    assert r.exit_code == 0 and r.stdout.strip().endswith("blue_star.png")


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["search", "x", "--index", "/nonexistent/idx"], "no index at", 1),  # README: 1, no or empty index
        (["search", "--index", "/tmp"], "nothing to search for", 2),  # 2: usage
        (["search", "x", "-f", "xml"], "unknown format", 2),
    ],
)
def test_search_errors(runner, args: list[str], message: str, code: int) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == code and message in r.stderr and r.stdout == ""


def test_empty_index_is_a_clear_error(runner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["index", str(tmp_path / "empty"), "--index", str(tmp_path / "idx"), "--model", TINY])
    assert r.exit_code == 0
    r = runner.invoke(app, ["search", "x", "--index", str(tmp_path / "idx")])
    assert r.exit_code == 1 and "is empty" in r.stderr


def test_model_mismatch_and_newer_format(runner, photos: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(photos), "--index", str(index), "--model", TINY]).exit_code == 0
    r = runner.invoke(app, ["index", str(photos), "--index", str(index), "--model", "vit-b-32-openai"])
    assert r.exit_code == 1 and "built with" in r.stderr and "--rebuild" in r.stderr
    r = runner.invoke(app, ["search", "x", "--index", str(index), "--model", "vit-b-32-openai"])
    assert r.exit_code == 1 and "built with" in r.stderr
    db = sqlite3.connect(index / "index.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    db.commit()
    db.close()
    for args in (["search", "x", "--index", str(index)], ["index", str(photos), "--index", str(index)]):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and "upgrade mmcli" in r.stderr


def test_garbage_faiss_file_is_rebuilt(runner, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmcli.engine.search

    monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)  # searches go through FAISS
    index = tmp_path / "idx"
    runner.invoke(app, ["index", str(photos), "--index", str(index), "--model", TINY])
    (faiss_file,) = index.glob("vectors.g*.faiss")
    before = runner.invoke(app, ["search", "a blue star", "--index", str(index), "-f", "paths"]).stdout
    faiss_file.write_bytes(b"garbage")
    after = runner.invoke(app, ["search", "a blue star", "--index", str(index), "-f", "paths"])
    assert after.exit_code == 0 and after.stdout == before
    faiss_file.unlink()
    assert runner.invoke(app, ["search", "a blue star", "--index", str(index), "-f", "paths"]).stdout == before


def test_second_indexer_exits_clearly_and_search_works_meanwhile(photos: Path, tmp_path: Path) -> None:
    from mmcli.index.lock import IndexLock

    index = tmp_path / "idx"
    run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    with IndexLock(index):  # this process is "the first indexer", for as long as the test needs
        second = run_mmcli("index", str(photos), "--index", str(index))
        search = run_mmcli("search", "a blue star", "--index", str(index), "-k", "3")
    assert second.returncode == 1
    assert f"another `mmcli index` (pid {os.getpid()})".encode() in second.stderr
    assert search.returncode == 0, search.stderr.decode()
    assert len(search.stdout.splitlines()) == 3
    assert run_mmcli("index", str(photos), "--index", str(index)).returncode == 0  # the lock went with it


def test_approximate_index_recall_on_200k_vectors() -> None:
    """IVF above the size threshold: recall@10 >= 0.95 against exact search.

    Synthetic vectors with a low intrinsic dimension (as CLIP embeddings have): 1000 clusters in
    a 64-d latent space, projected to 512-d, noise in both spaces.
    """
    from mmcli.index import vectors

    n, d, k = 200_000, 512, 64
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(k, d)).astype(np.float32)
    centers = rng.normal(size=(1000, k)).astype(np.float32)
    z = centers[rng.integers(0, 1000, n)] + rng.normal(size=(n, k)).astype(np.float32)
    x = z @ proj + rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    zq = z[rng.choice(n, 200, replace=False)] + 0.3 * rng.normal(size=(200, k)).astype(np.float32)
    q = zq @ proj + rng.normal(size=(200, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    index = vectors.build(np.arange(n), x, d)
    assert vectors.is_approximate(index)
    _, got = vectors.search(index, q, 10)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert recall >= 0.95, recall
    _, exact = vectors.search(index, q, 10, exact=True)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, truth)]) >= 0.999


def test_indexes_lists_every_index_with_its_roots_model_and_counts(photos: Path, tmp_path: Path) -> None:
    env = {"MMCLI_HOME": str(tmp_path / "home")}
    assert run_mmcli("index", str(photos), "--index", "holiday", "--model", TINY, "-q", env=env).returncode == 0
    assert run_mmcli("index", str(photos / "sub"), "--index", "sub", "--model", TINY, "-q", env=env).returncode == 0
    broken = tmp_path / "home" / "indexes" / "broken"
    broken.mkdir()
    (broken / "index.sqlite").write_text("not a database")
    r = run_mmcli("indexes", "-f", "jsonl", env=env)
    assert r.returncode == 0, r.stderr.decode()
    rows = {row["name"]: row for row in map(json.loads, r.stdout.decode().splitlines())}
    assert set(rows) == {"holiday", "sub", "broken"}
    assert rows["holiday"]["roots"] == [str(photos)] and rows["holiday"]["model"] == TINY
    assert rows["holiday"]["images"] == 13 and rows["sub"]["images"] == len(list((photos / "sub").iterdir()))
    assert rows["holiday"]["state"] == "ok" and "corrupt" in rows["broken"]["state"]
    r = run_mmcli("indexes", "-f", "paths", env=env)
    assert r.stdout.decode().splitlines() == [
        str(tmp_path / "home" / "indexes" / n) for n in ("broken", "holiday", "sub")
    ]
