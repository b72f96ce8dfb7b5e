"""Crashes, corruption, full disks, concurrency and untrusted text: the index survives them all."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_mmcli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcli.cli import app
from mmcli.errors import ImageLoadError, IndexStoreError
from mmcli.images import load_image
from mmcli.shapes import all_specs, draw_shape, photo_like


def _corpus(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i:04d}.png"
        draw_shape(all_specs()[i % 32], size=96, seed=10_000 + i).save(p)
        paths.append(p)
    return paths


def _state(index: Path) -> tuple[int, int, list[str]]:
    db = sqlite3.connect(index / "index.sqlite", timeout=30)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        distinct = db.execute("SELECT COUNT(DISTINCT path) FROM files").fetchone()[0]
        paths = [os.fsdecode(p) for (p,) in db.execute("SELECT path FROM files")]
        return n, distinct, paths
    finally:
        db.close()


def test_sigkill_at_ten_random_moments(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    paths = _corpus(folder, 96)
    bad = folder / "zz_bad.png"
    bad.write_text("broken")
    index = tmp_path / "idx"
    rng = random.Random(20261128)
    cmd = [
        sys.executable,
        "-m",
        "mmcli",
        "index",
        str(folder),
        "--index",
        str(index),
        "--model",
        TINY,
        "--batch-size",
        "4",
        "--workers",
        "1",
        "-q",
    ]
    kills = attempts = 0
    while kills < 10 and attempts < 30:
        attempts += 1
        for p in rng.sample(paths, 24):  # new content each round, so every run has work to do
            draw_shape(all_specs()[rng.randrange(32)], size=96, seed=rng.randrange(10**6)).save(p)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.5))  # start-up, scan, hashing, embedding, commits, FAISS write
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (index / "index.sqlite").exists():
            n, distinct, _ = _state(index)  # opens, consistent, no duplicates after every kill
            assert n == distinct
    assert kills >= 10
    done = run_mmcli("index", str(folder), "--index", str(index), "-q")
    assert done.returncode == 0, done.stderr.decode()
    n, distinct, stored = _state(index)
    assert n == distinct == 97 and set(stored) == {str(p) for p in paths} | {str(bad)}
    from mmcli.embed import embed_stream
    from mmcli.models import load_encoder, parse_model_spec

    encoder = load_encoder(parse_model_spec(TINY), device="cpu", precision="auto")
    sample = [str(p) for p in paths[::12]]
    fresh = {v.path: v.vector for v in embed_stream(encoder, sample, workers=1)}
    db = sqlite3.connect(index / "index.sqlite")
    for path in sample:
        blob = db.execute("SELECT vector FROM files WHERE path = ?", (os.fsencode(path),)).fetchone()[0]
        assert float(np.frombuffer(blob, np.float32) @ fresh[path]) > 0.9999
    db.close()


def test_corrupt_sqlite_is_a_clear_error_and_rebuild_recovers(runner, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _corpus(folder, 6)
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY]).exit_code == 0
    for extra in index.glob("index.sqlite-*"):
        extra.unlink()
    (index / "index.sqlite").write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    for args in (
        ["search", "a red circle", "--index", str(index)],
        ["index", str(folder), "--index", str(index)],
        ["info", "--index", str(index)],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.stderr)
        assert str(index / "index.sqlite") in r.stderr and "--rebuild" in r.stderr
    r = runner.invoke(app, ["index", str(folder), "--index", str(index), "--rebuild", "--model", TINY])
    assert r.exit_code == 0, r.stderr
    assert list(index.glob("index.sqlite.corrupt-*"))
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-f", "paths"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 6


def test_truncated_faiss_file_is_rebuilt(runner, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _corpus(folder, 6)
    index = tmp_path / "idx"
    runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY])
    before = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-f", "paths"]).stdout
    (faiss_file,) = index.glob("vectors.g*.faiss")
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-f", "paths"])
    assert r.exit_code == 0 and r.stdout == before
    assert faiss_file.stat().st_size > 100  # rewritten whole


def test_disk_full_in_sqlite_keeps_the_last_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index

    folder = tmp_path / "photos"
    _corpus(folder, 24)
    real_put = Store.put_ok
    calls = {"n": 0}

    def put_until_full(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 12:
            raise sqlite3.OperationalError("database or disk is full")
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_ok", put_until_full)
    with pytest.raises(IndexStoreError, match="disk is full"):
        run_index(tmp_path / "idx", [str(folder)], model=TINY, workers=1, batch_size=4)
    n, distinct, _ = _state(tmp_path / "idx")
    assert n == distinct == 12  # three committed batches of 4; the fourth rolled back
    monkeypatch.undo()
    s = run_index(tmp_path / "idx", [str(folder)], workers=1, batch_size=4)
    assert s.unchanged == 12 and s.added == 12


def test_disk_full_writing_faiss_is_a_clear_error(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmcli.index.vectors as vectors

    folder = tmp_path / "photos"
    _corpus(folder, 4)

    def no_space(path, data, before_replace=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectors, "atomic_write_bytes", no_space)
    r = runner.invoke(app, ["index", str(folder), "--index", str(tmp_path / "idx"), "--model", TINY])
    assert r.exit_code == 1 and "disk is full" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.undo()
    assert _state(tmp_path / "idx")[0] == 4  # SQLite has everything; the next search rebuilds FAISS
    r = runner.invoke(app, ["search", "a red circle", "--index", str(tmp_path / "idx"), "-f", "paths"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4


def test_two_indexers_and_searches_for_a_bounded_time(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _corpus(folder, 48)
    index = tmp_path / "idx"
    assert run_mmcli("index", str(folder / "0000.png"), "--index", str(index), "--model", TINY).returncode == 0
    cmd = [
        sys.executable,
        "-m",
        "mmcli",
        "index",
        str(folder),
        "--index",
        str(index),
        "--batch-size",
        "4",
        "--workers",
        "1",
        "-q",
    ]
    deadline = time.time() + 12
    searches = answered = busy = 0
    indexers: list[subprocess.Popen[bytes]] = []
    while time.time() < deadline:
        indexers = [p for p in indexers if p.poll() is None]
        while len(indexers) < 2:
            indexers.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        r = run_mmcli("search", "a red circle", "--index", str(index), "-k", "3", "-f", "paths")
        searches += 1
        answered += r.returncode == 0 and len(r.stdout.splitlines()) >= 1
        assert b"locked" not in r.stderr and b"Traceback" not in r.stderr
    for p in indexers:
        p.wait(timeout=300)
        err = p.stderr.read() if p.stderr else b""
        assert b"locked" not in err.lower().replace(b"another", b"") and b"Traceback" not in err
        busy += b"another `mmcli index`" in err
    assert searches >= 3 and answered == searches
    n, distinct, _ = _state(index)
    assert n == distinct


@pytest.mark.parametrize(
    "labels",
    [
        ["{}", "{0}", "{label}"],
        ["cat", "", " ", "cat"],
        ["x" * 10_000, "dog"],
        ["猫", "🐶 dog", "Ünïcödé"],
    ],
)
def test_awkward_labels(runner, labels: list[str], tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    draw_shape(all_specs()[0], size=96).save(img)
    r = runner.invoke(app, ["classify", str(img), "--model", TINY, "-f", "json", "--labels", *labels])
    assert r.exit_code == 0, r.stderr
    got = [x["label"] for x in json.loads(r.stdout)[0]["labels"]]
    assert sorted(got) == sorted(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if any(len(label) > 1000 for label in labels):
        assert "truncated" in r.stderr
    if "" in labels:
        assert "ignored an empty label" in r.stderr and "duplicate" in r.stderr


def test_long_query_is_truncated_with_a_warning(runner, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _corpus(folder, 3)
    runner.invoke(app, ["index", str(folder), "--index", str(tmp_path / "idx"), "--model", TINY])
    r = runner.invoke(app, ["search", "a red circle " * 2000, "--index", str(tmp_path / "idx"), "-f", "paths"])
    assert r.exit_code == 0 and "truncated" in r.stderr and len(r.stdout.splitlines()) == 3


def test_labels_file_with_bom_crlf_and_emoji(runner, tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    draw_shape(all_specs()[0], size=96).save(img)
    f = tmp_path / "labels.txt"
    f.write_bytes("\ufeffred circle\r\n🐱 cat\r\n\r\nblue star\r\n".encode())
    r = runner.invoke(app, ["classify", str(img), "--model", TINY, "--labels-file", str(f), "-f", "json"])
    assert r.exit_code == 0, r.stderr
    assert {x["label"] for x in json.loads(r.stdout)[0]["labels"]} == {"red circle", "🐱 cat", "blue star"}


def _seed_images() -> list[bytes]:
    import io

    out = []
    img = photo_like(48, 32, seed=1)
    for fmt, extra in (("JPEG", {}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("BMP", {}), ("TIFF", {})):
        buf = io.BytesIO()
        img.save(buf, fmt, **extra)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_loader_raises_only_its_own_error(
    tmp_path: Path, seed: int, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzz.img"
    path.write_bytes(bytes(data))
    try:
        img = load_image(path, max_pixels=4_000_000)
    except ImageLoadError:
        return
    assert img.mode == "RGB" and img.size[0] > 0 and img.size[1] > 0
