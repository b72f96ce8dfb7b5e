"""Batched embedding: parallel decoding equals in-process decoding; order, failures, files, cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from mmcli.cli import app
from mmcli.embedding.batch import embed_stream
from mmcli.embedding.textcache import TextCache, encode_texts_cached
from mmcli.models import load_encoder, parse_model_spec
from mmcli.results import FileFailure, ImageVector


@pytest.fixture(scope="module")
def tiny():
    return load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")


def test_parallel_equals_inline_and_keeps_order(tiny, random_corpus, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("x")
    paths = [str(p) for p, _ in random_corpus]
    paths.insert(5, str(bad))
    inline = list(embed_stream(tiny, paths, batch_size=4, workers=1))
    pooled = list(embed_stream(tiny, paths, batch_size=7, workers=2))
    assert [x.path for x in inline] == [x.path for x in pooled] == paths
    assert isinstance(inline[5], FileFailure) and isinstance(pooled[5], FileFailure)
    a = np.stack([x.vector for x in inline if isinstance(x, ImageVector)])
    b = np.stack([x.vector for x in pooled if isinstance(x, ImageVector)])
    assert np.allclose(a, b, atol=1e-5)


def test_embed_output_file_and_companion(runner, random_corpus, tmp_path: Path) -> None:
    paths = [str(p) for p, _ in random_corpus[:5]]
    out = tmp_path / "sub" / "e.npy"
    result = runner.invoke(app, ["embed", *paths, "--model", TINY, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    arr = np.load(out)
    assert arr.dtype == np.float32 and arr.shape[0] == 5
    meta = json.loads((tmp_path / "sub" / "e.paths.json").read_text())
    assert meta["paths"] == paths and meta["format"] == "mmcli-embeddings/1"
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_text_cache_returns_what_the_model_computes(tiny, tmp_path: Path) -> None:
    cache = TextCache(tmp_path / "cache.sqlite")
    texts = ["a red circle", "a blue star", "a red circle"]
    first = encode_texts_cached(tiny, texts, cache)
    calls = []
    original = tiny.encode_texts
    tiny.encode_texts = lambda t: calls.append(t) or original(t)  # type: ignore[method-assign]
    try:
        second = encode_texts_cached(tiny, texts, TextCache(tmp_path / "cache.sqlite"))
    finally:
        tiny.encode_texts = original  # type: ignore[method-assign]
    assert calls == []
    assert np.array_equal(first, second)
    assert np.allclose(second, tiny.encode_texts(texts), atol=1e-6)


def test_broken_cache_file_is_ignored(tiny, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"garbage" * 100)
    vecs = encode_texts_cached(tiny, ["a red circle"], TextCache(path))
    assert np.allclose(vecs, tiny.encode_texts(["a red circle"]), atol=1e-6)  # computed afresh, not read back
    again = encode_texts_cached(tiny, ["a red circle"], TextCache(path))  # the damaged file was replaced
    assert np.array_equal(again, vecs)


@pytest.mark.parametrize("damage", ["short row", "nan", "swapped", "other dim", "checksum"])
def test_a_damaged_text_cache_row_is_recomputed(tiny, tmp_path: Path, damage: str) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    texts = ["a red circle", "a blue star"]
    fresh = encode_texts_cached(tiny, texts, TextCache(path))
    db = sqlite3.connect(path)
    rows = db.execute("SELECT model, text_hash, dim, vector FROM texts ORDER BY rowid").fetchall()
    (m, h0, d, v0), (_, h1, _, v1) = rows
    if damage == "short row":
        db.execute("UPDATE texts SET vector = ? WHERE text_hash = ?", (v0[:-4], h0))
    elif damage == "nan":
        db.execute("UPDATE texts SET vector = ? WHERE text_hash = ?", (np.full(d, np.nan, np.float32).tobytes(), h0))
    elif damage == "swapped":  # each row well-formed, but holding the other text's vector
        db.execute("UPDATE texts SET vector = ? WHERE text_hash = ?", (v1, h0))
        db.execute("UPDATE texts SET vector = ? WHERE text_hash = ?", (v0, h1))
    elif damage == "other dim":
        other = np.ones(d + 8, np.float32) / np.sqrt(d + 8)
        db.execute("UPDATE texts SET dim = ?, vector = ? WHERE text_hash = ?", (d + 8, other.tobytes(), h0))
    else:
        db.execute("UPDATE texts SET checksum = 'x' WHERE text_hash = ?", (h0,))
    db.commit()
    db.close()
    again = encode_texts_cached(tiny, texts, TextCache(path))
    assert np.allclose(again, fresh, atol=1e-5)  # (recomputed alone, not in a batch of two: float noise)


def test_label_embedding_reports_progress_in_batches(tiny, tmp_path: Path) -> None:
    from mmcli.engine.classify import build_label_set

    seen: list[tuple[int, int]] = []
    labels = [f"label number {i}" for i in range(600)]

    def note(done: int, total: int) -> None:
        seen.append((done, total))

    build_label_set(
        tiny, labels, ["a photo of a {}."], TextCache(tmp_path / "c.sqlite"), lambda d, t: seen.append((d, t))
    )
    assert seen == [(256, 601), (512, 601), (601, 601)]  # 600 labels + the neutral prompt, 256 at a time
    seen.clear()
    build_label_set(
        tiny, labels, ["a photo of a {}."], TextCache(tmp_path / "c.sqlite"), lambda d, t: seen.append((d, t))
    )
    assert seen == []  # all cached: nothing to compute


def test_classify_shows_label_progress_on_a_terminal(shapes_dir: Path, tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"thing {i}" for i in range(700)))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmcli", "classify", str(shapes_dir / "red_star.jpg"), "--labels-file", str(labels)]
        + ["--model", TINY, "-f", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    out, _ = proc.communicate(timeout=300)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.returncode == 0 and out
    assert b"embedding label prompts" in seen and b"prompts/s" in seen
