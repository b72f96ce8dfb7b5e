"""`mmcli index --from-embeddings` (issue 26.3): vectors made by `mmcli embed -o` or clip-retrieval, recorded
as if `mmcli index` had computed them. Real files and the real tiny model: a corpus is embedded with
`mmcli embed` and indexed with `mmcli index`; the imports must search the same."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_mmcli

import mmcli
from mmcli.config import install_command
from mmcli.demo.shapes import write_corpus

QUERIES = ("a red circle", "a blue square", "a green star", "a black triangle")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A corpus, its embeddings (`mmcli embed -o`, 3 shards) and its index (`mmcli index`)."""
    base = tmp_path_factory.mktemp("imports")
    photos = base / "photos"
    write_corpus(photos, 12, seed=77)
    done = run_mmcli("embed", str(photos), "-o", str(base / "emb"), "--shard-rows", "5", "--model", TINY)
    assert done.returncode == 0, done.stderr
    done = run_mmcli("index", str(photos), "--index", str(base / "ref"), "--model", TINY, "-q")
    assert done.returncode == 0, done.stderr
    return {"base": base, "photos": photos, "emb": base / "emb", "ref": base / "ref"}


def hits(index: Path, query: str, k: int = 12) -> list[tuple[str, float]]:
    out = run_mmcli("search", query, "--index", str(index), "-k", str(k), "-f", "jsonl")
    assert out.returncode == 0, out.stderr
    return [(h["path"], h["score"]) for h in map(json.loads, out.stdout.splitlines())]


def assert_same_hits(index: Path, ref: Path, tolerance: float = 1e-5) -> None:
    for query in QUERIES:
        got, want = hits(index, query), hits(ref, query)
        assert [p for p, _ in got] == [p for p, _ in want], query
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=tolerance), query


def shard_rows(emb: Path) -> tuple[np.ndarray, list[str]]:
    from mmcli.embedding.shards import read_shards

    vectors, paths = read_shards(emb)
    return vectors, [os.path.abspath(p) for p in paths]


def test_an_import_searches_as_mmcli_index_and_a_later_index_finds_it_unchanged(
    made: dict[str, Path], tmp_path: Path
) -> None:
    index = tmp_path / "idx"
    done = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--index", str(index))
    assert done.returncode == 0, done.stderr
    assert b"12 rows, 12 added" in done.stderr and done.stdout == b""
    assert_same_hits(index, made["ref"])
    again = run_mmcli("index", str(made["photos"]), "--index", str(index))
    assert again.returncode == 0, again.stderr
    assert b"12 unchanged" in again.stderr and b"(no model loaded)" in again.stderr, again.stderr
    db = sqlite3.connect(index / "index.sqlite")
    taken = db.execute("SELECT COUNT(*) FROM files WHERE taken_source = 'mtime' AND hash IS NULL").fetchone()[0]
    assert taken == 12  # each file's date read (no EXIF here: its mtime), no content hash without --hash
    db.close()
    resumed = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--index", str(index))
    assert b"0 added, 0 updated, 12 unchanged" in resumed.stderr, resumed.stderr


def write_clip_retrieval(folder: Path, vectors: np.ndarray, paths: list[str | None]) -> None:
    """clip-retrieval inference's output, as its writer lays it out: float16 rows in img_emb/img_emb_S.npy,
    the same rows' files in metadata/metadata_S.parquet (image_path), captions in text_emb/ (ignored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for sub in ("img_emb", "metadata", "text_emb"):
        (folder / sub).mkdir(parents=True)
    cut = len(paths) // 2
    for name, rows in (("0", slice(0, cut)), ("1", slice(cut, None))):
        np.save(folder / "img_emb" / f"img_emb_{name}.npy", vectors[rows].astype(np.float16))
        np.save(folder / "text_emb" / f"text_emb_{name}.npy", np.zeros((1, 3), np.float16))  # other shape: unread
        table = pa.table({"image_path": paths[rows], "caption": ["x"] * len(paths[rows])})
        pq.write_table(table, folder / "metadata" / f"metadata_{name}.parquet")


def test_a_clip_retrieval_folder_is_imported_and_bad_rows_are_counted(made: dict[str, Path], tmp_path: Path) -> None:
    vectors, paths = shard_rows(made["emb"])
    nan = np.full((1, vectors.shape[1]), np.nan, np.float32)
    rows = np.concatenate([vectors, vectors[:1], vectors[:1], nan, vectors[:1]])
    names: list[str | None] = [*paths, paths[0], "https://example.com/a.jpg", str(tmp_path / "x.jpg"), None]
    source = tmp_path / "clip"
    write_clip_retrieval(source, rows, names)
    missing = run_mmcli("index", "--from-embeddings", str(source), "--index", str(tmp_path / "idx"))
    assert missing.returncode == 2 and b"does not say which model" in missing.stderr, missing.stderr
    index = mmcli.Index(tmp_path / "idx")
    with pytest.warns(mmcli.MmcliWarning) as said:
        summary = index.add_embeddings(source, model=TINY)
    assert sorted(str(w.message).split(": ")[1] for w in said) == [
        "a URL, not a file (the first",
        "a path already imported from an earlier row (the first",
        "its vector is not finite, or zero (the first",
        "no file named",
    ]
    assert (summary.kind, summary.rows, summary.added) == ("clip-retrieval", 16, 12)
    assert {key: n for key, n, _ in summary.skipped} == {"duplicates": 1, "urls": 1, "bad_vector": 1, "no_path": 1}
    assert_same_hits(tmp_path / "idx", made["ref"], tolerance=2e-3)  # float16 rows, normalised again


def test_path_prefix_maps_the_embedding_machines_folders_and_files_not_found_are_counted(
    made: dict[str, Path], tmp_path: Path
) -> None:
    here = tmp_path / "Pictures"
    shutil.copytree(made["photos"], here)  # the same files, elsewhere: mtimes kept
    vectors, paths = shard_rows(made["emb"])
    np.save(tmp_path / "e.npy", vectors)  # a single file names no model: the index's is used
    json.dump({"format": "mmcli-embeddings/1", "rows": 12, "paths": paths}, (tmp_path / "e.paths.json").open("w"))
    index = tmp_path / "idx"
    prefix = f"{made['photos']}={here}"
    done = run_mmcli("index", "--from-embeddings", str(tmp_path / "e.npy"), "--path-prefix", prefix, "--index",
                     str(index), "--model", TINY)  # fmt: skip
    assert done.returncode == 0 and b"12 added" in done.stderr, done.stderr
    assert all(path.startswith(str(here)) for path, _ in hits(index, "a red circle"))
    again = run_mmcli("index", str(here), "--index", str(index))
    assert b"12 unchanged" in again.stderr and b"(no model loaded)" in again.stderr, again.stderr

    gone = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--path-prefix", f"{made['photos']}=/nowhere",
                     "--index", str(tmp_path / "gone"))  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    assert b"12 rows not imported: not found here" in gone.stderr and b"0 added" in gone.stderr
    kept = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--path-prefix", f"{made['photos']}=/nowhere",
                     "--index", str(tmp_path / "kept"), "--keep-not-found")  # fmt: skip
    assert kept.returncode == 0 and b"12 added" in kept.stderr, kept.stderr
    assert {Path(p).name for p, _ in hits(tmp_path / "kept", "a red circle")} == {Path(p).name for p in paths}
    assert all(p.startswith("/nowhere/") for p, _ in hits(tmp_path / "kept", "a red circle"))


@pytest.mark.parametrize("with_hash", [True, False])
def test_a_file_renamed_after_an_import_keeps_its_vector_with_hash_or_is_embedded_again(
    made: dict[str, Path], tmp_path: Path, with_hash: bool
) -> None:
    here = tmp_path / "photos"
    shutil.copytree(made["photos"], here)
    index = tmp_path / "idx"
    _, paths = shard_rows(made["emb"])
    flags = ["--hash"] if with_hash else []
    prefix = f"{made['photos']}={here}"
    done = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--path-prefix", prefix, "--index", str(index),
                     *flags)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = here / Path(paths[0]).name
    first.rename(here / "renamed.jpg")
    again = run_mmcli("index", str(here), "--index", str(index))
    assert again.returncode == 0, again.stderr
    if with_hash:
        assert b"1 renamed" in again.stderr and b"(no model loaded)" in again.stderr, again.stderr
    else:  # the cost without --hash: the renamed file goes through the model once more
        assert b"1 added" in again.stderr and b"1 missing" in again.stderr, again.stderr
    assert any(p.endswith("renamed.jpg") for p, _ in hits(index, "a red circle"))


def test_bad_inputs_are_clear_errors(made: dict[str, Path], tmp_path: Path) -> None:
    def fails(source: Path, *args: str) -> str:
        out = run_mmcli("index", "--from-embeddings", str(source), "--index", str(tmp_path / "idx"), *args)
        assert out.returncode in (1, 2) and out.stderr.startswith(b"mmcli: error:"), out.stderr
        assert b"Traceback" not in out.stderr
        return out.stderr.decode()

    assert "neither mmcli's embeddings" in fails(made["photos"])
    assert "no such file or folder" in fails(tmp_path / "nothing")
    emb = tmp_path / "emb"
    shutil.copytree(made["emb"], emb)
    paths = json.loads((emb / "00001.paths.json").read_text())
    paths["paths"] = paths["paths"][:-1]
    (emb / "00001.paths.json").write_text(json.dumps(paths))
    assert "00001.npy holds 5 rows but 00001.paths.json names 4 files" in fails(emb)
    other = tmp_path / "other"
    shutil.copytree(made["emb"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["model"] = "ViT-B-32:openai"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert "made with ViT-B-32:openai" in fails(other, "--model", TINY)
    (other / "manifest.json").unlink()
    assert "did not finish" in fails(other)
    np.save(tmp_path / "wide.npy", np.ones((2, 32), np.float32))
    (tmp_path / "wide.paths.json").write_text(json.dumps({"format": "mmcli-embeddings/1", "paths": ["a.jpg", "b.jpg"]}))
    assert "32 dimensions" in fails(tmp_path / "wide.npy", "--model", TINY)
    clip = tmp_path / "clip"
    vectors, names = shard_rows(made["emb"])
    write_clip_retrieval(clip, vectors, list(names))
    (clip / "metadata" / "metadata_1.parquet").unlink()
    assert "partition 1 has img_emb but no metadata" in fails(clip, "--model", TINY)
    alone = run_mmcli("index", "--hash", "--index", str(tmp_path / "idx"))
    assert alone.returncode == 2 and b"go with --from-embeddings" in alone.stderr
    both = run_mmcli("index", str(made["photos"]), "--from-embeddings", str(made["emb"]))
    assert both.returncode == 2 and b"does not go with PATHS" in both.stderr


def test_without_pyarrow_a_clip_retrieval_folder_says_what_to_install(
    made: dict[str, Path], tmp_path: Path, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.cli import app

    vectors, names = shard_rows(made["emb"])
    write_clip_retrieval(tmp_path / "clip", vectors, list(names))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = runner.invoke(app, ["index", "--from-embeddings", str(tmp_path / "clip"), "--index", str(tmp_path / "i")])
    assert out.exit_code == 2, out.output
    assert "needs pyarrow" in out.stderr and install_command("import") in out.stderr


def test_a_killed_import_resumes_and_loses_at_most_a_batch(made: dict[str, Path], tmp_path: Path) -> None:
    index = tmp_path / "idx"
    code = f"import mmcli; mmcli.Index({str(index)!r}).add_embeddings({str(made['emb'])!r}, batch_rows=2)"
    import subprocess

    killed = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MMCLI_FAULT": "index.commit:3"})
    assert killed.returncode == -signal.SIGKILL
    db = sqlite3.connect(index / "index.sqlite")
    ok = db.execute("SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
    db.close()
    assert ok == 5  # the first shard's 5 rows, in batches of 2, 2, 1 (a batch never spans two shards)
    done = run_mmcli("index", "--from-embeddings", str(made["emb"]), "--index", str(index))
    assert done.returncode == 0 and b"7 added, 0 updated, 5 unchanged" in done.stderr, done.stderr
    assert_same_hits(index, made["ref"])


def test_a_videos_moments_are_imported_as_its_moments(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from videos import write_video

    media = tmp_path / "media"
    write_corpus(media, 2, seed=5)
    write_video(media / "talk.mp4", seconds=6.0)
    emb = tmp_path / "emb"
    done = run_mmcli("embed", str(media), "-o", str(emb), "--shard-rows", "2", "--every", "2", "--model", TINY)
    assert done.returncode == 0, done.stderr  # the video's moments span shards
    ref = run_mmcli("index", str(media), "--index", str(tmp_path / "ref"), "--every", "2", "--model", TINY)
    assert ref.returncode == 0, ref.stderr
    summary = mmcli.Index(tmp_path / "idx").add_embeddings(emb)
    want = mmcli.Index(tmp_path / "ref").info()
    assert (summary.videos, summary.added) == (1, 3)
    assert (summary.moments, mmcli.Index(tmp_path / "idx").info().moments) == (want.moments, want.moments)
    again = mmcli.Index(tmp_path / "idx").add_embeddings(emb)  # each moment's row found unchanged with its video
    assert (again.added, again.unchanged, again.skipped) == (0, 3, ())
    got = run_mmcli("search", "a red circle", "--index", str(tmp_path / "idx"), "-f", "jsonl", "--all-moments")
    want_hits = run_mmcli("search", "a red circle", "--index", str(tmp_path / "ref"), "-f", "jsonl", "--all-moments")
    assert len(got.stdout.splitlines()) == 2 + want.moments > 3  # the 2 pictures and each moment of the video
    assert [(h["path"], h["time"]) for h in map(json.loads, got.stdout.splitlines())] == [
        (h["path"], h["time"]) for h in map(json.loads, want_hits.stdout.splitlines())
    ]


def test_the_models_shape_from_its_exported_tower_is_the_built_models(
    made: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import asdict

    from mmcli.index.imports import model_shape
    from mmcli.models import describe_encoder, parse_model_spec, tower_files

    spec = parse_model_spec(TINY)
    built = describe_encoder(spec)
    want = (built.dim, json.loads(json.dumps(asdict(built.preprocess))))
    assert tower_files.tower_state(spec, "image").meta  # (`mmcli embed` exported the towers)
    assert model_shape(spec) == want  # read from the tower's sidecar: no torch
    monkeypatch.setattr(tower_files, "tower_state", lambda *a: tower_files.TowerState(False, None))
    dim, preprocess = model_shape(spec)  # no tower: built on the meta device
    assert (dim, json.loads(json.dumps(preprocess))) == want
