"""Crashes, corruption, full disks, concurrency and untrusted text: the index survives them all."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from killing import (
    Row,
    assert_kept,
    check_complete,
    check_index,
    draw_pngs,
    end_process_group,
    index_command,
    run_killed,
    run_to_the_end,
    stopped_at,
)

from mmcli.cli import app
from mmcli.demo.shapes import all_specs, draw_shape, photo_like
from mmcli.errors import ImageLoadError, IndexStoreError
from mmcli.media.images import load_image

BATCH = 4


@dataclass(frozen=True)
class Photos:
    """40 good PNGs and one broken file (sorted last) in ``folder``, and where their index goes."""

    folder: Path
    good: list[Path]
    bad: Path
    index: Path

    def command(self, workers: int) -> list[str]:
        """`mmcli index` over the folder, in batches of BATCH."""
        options = ("--model", TINY, "--batch-size", str(BATCH), "--workers", str(workers))
        return index_command(self.folder, self.index, *options)

    def check_complete(self) -> dict[str, Row]:
        return check_complete(self.index, self.good, [self.bad])


@pytest.fixture
def photos(tmp_path: Path) -> Photos:
    folder = tmp_path / "photos"
    good = draw_pngs(folder, 40)
    bad = folder / "zz_bad.png"
    bad.write_text("broken")
    return Photos(folder, good, bad, tmp_path / "idx")


def test_killed_after_a_commit_keeps_every_committed_batch(photos: Photos) -> None:
    cmd = photos.command(workers=1)
    run_killed(cmd, "index.commit:3")
    first = check_index(photos.index)
    assert len(first) == 3 * BATCH  # three batches committed, nothing of the fourth
    run_killed(cmd, "index.commit:2")  # resumes, and dies again after two more batches
    second = check_index(photos.index)
    assert len(second) == 5 * BATCH
    assert_kept(first, second)
    run_to_the_end(cmd)
    assert_kept(second, photos.check_complete())


def test_killed_while_helpers_decode(photos: Photos) -> None:
    cmd = photos.command(workers=2)
    leftovers = run_killed(cmd, "index.decoding:10")  # the 10th decoded image: 9 came back, two batches went in
    assert leftovers == []  # the decoding helpers died with their parent
    kept = check_index(photos.index)
    assert 2 * BATCH <= len(kept) < len(photos.good)
    assert all(row[5] == "ok" for row in kept.values())
    run_to_the_end(cmd)
    assert_kept(kept, photos.check_complete())


def test_killed_writing_faiss_keeps_the_old_file_and_every_row(photos: Photos, tmp_path: Path) -> None:
    cmd = photos.command(workers=1)
    later = [*photos.good[20:], photos.bad]
    hold = tmp_path / "later"
    hold.mkdir()
    for p in later:
        p.rename(hold / p.name)
    run_to_the_end(cmd)  # the first half, with its FAISS file
    (old,) = photos.index.glob("vectors.g*.faiss")
    old_bytes = old.read_bytes()
    for p in later:
        (hold / p.name).rename(p)
    run_killed(cmd, "index.faiss-write")
    assert len(check_index(photos.index)) == 41  # every batch was committed before the FAISS write
    assert list(photos.index.glob("vectors.g*.faiss")) == [old] and old.read_bytes() == old_bytes
    hits = run_mmcli("search", "a red circle", "--index", str(photos.index), "-k", "100", "-f", "paths")
    assert hits.returncode == 0, hits.stderr.decode()
    assert sorted(hits.stdout.decode().splitlines()) == sorted(map(str, photos.good))  # rebuilt from SQLite
    run_to_the_end(cmd)
    photos.check_complete()


def test_sigkill_at_seeded_random_moments(photos: Photos) -> None:
    """Kills at seeded random moments, each certain to land while the run works: a random named point
    (walk done, a decoded image back from the helpers, a batch committed, the FAISS write) at a random
    visit that a fresh run over these 41 files reaches. ``run_killed`` asserts the process died of that
    SIGKILL, so no kill lands after the run ended; the next run keeps what was committed and finishes."""
    rng = random.Random(20261128)
    batches = -(-41 // BATCH)
    moments = [("index.scanned", 1), ("index.decoding", 8), ("index.commit", batches - 1), ("index.faiss-write", 1)]
    cmd = photos.command(workers=2)
    for _ in range(3):
        point, last = rng.choice(moments)
        shutil.rmtree(photos.index, ignore_errors=True)
        run_killed(cmd, f"{point}:{rng.randint(1, last)}")
        kept = check_index(photos.index) if (photos.index / "index.sqlite").exists() else {}
        run_to_the_end(cmd)
        assert_kept(kept, photos.check_complete())


def test_corrupt_sqlite_is_a_clear_error_and_rebuild_recovers(runner, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    draw_pngs(folder, 6)
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


def test_truncated_faiss_file_is_rebuilt(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmcli.engine.search

    monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)  # searches go through FAISS
    folder = tmp_path / "photos"
    draw_pngs(folder, 6)
    index = tmp_path / "idx"
    runner.invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY])
    before = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-f", "paths"]).stdout
    (faiss_file,) = index.glob("vectors.g*.faiss")
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-f", "paths"])
    assert r.exit_code == 0 and r.stdout == before
    assert faiss_file.stat().st_size > 100  # rewritten whole


def test_disk_full_in_sqlite_keeps_the_last_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcli.index.job import IndexJob
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index

    folder = tmp_path / "photos"
    draw_pngs(folder, 24)
    real_put = Store.put_ok
    calls = {"n": 0}

    def put_until_full(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 12:
            raise sqlite3.OperationalError("database or disk is full")
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_ok", put_until_full)
    with pytest.raises(IndexStoreError, match="disk is full"):
        run_index(tmp_path / "idx", IndexJob([str(folder)], model=TINY, workers=1, batch_size=4))
    assert len(check_index(tmp_path / "idx")) == 12  # three committed batches of 4; the fourth rolled back
    monkeypatch.undo()
    s = run_index(tmp_path / "idx", IndexJob([str(folder)], workers=1, batch_size=4))
    assert s.unchanged == 12 and s.added == 12


def test_disk_full_writing_faiss_is_a_clear_error(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmcli.index.vectors as vectors

    folder = tmp_path / "photos"
    draw_pngs(folder, 4)

    def no_space(path, data, before_replace=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vectors, "atomic_write_bytes", no_space)
    r = runner.invoke(app, ["index", str(folder), "--index", str(tmp_path / "idx"), "--model", TINY])
    assert r.exit_code == 1 and "disk is full" in r.stderr and "Traceback" not in r.stderr
    monkeypatch.undo()
    assert len(check_index(tmp_path / "idx")) == 4  # SQLite has everything; the next search rebuilds FAISS
    r = runner.invoke(app, ["search", "a red circle", "--index", str(tmp_path / "idx"), "-f", "paths"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4


def test_second_indexer_meets_a_busy_index_and_searches_answer(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    good = draw_pngs(folder, 24)
    index = tmp_path / "idx"
    cmd = index_command(folder, index, "--model", TINY, "--batch-size", str(BATCH), "--workers", "1")
    env = {**os.environ, "MMCLI_FAULT": "index.commit:2:stop"}  # pauses itself after its 2nd commit
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status  # paused, holding the index lock
        second = subprocess.run(cmd, capture_output=True, timeout=300)
        search = run_mmcli("search", "a red star", "--index", str(index), "-k", "100", "-f", "paths")
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err.decode()
    assert second.returncode == 1, second.stderr.decode()
    assert f"another `mmcli index` (pid {first.pid}) is updating".encode() in second.stderr
    assert b"Traceback" not in second.stderr
    assert search.returncode == 0, search.stderr.decode()
    assert len(search.stdout.splitlines()) == 2 * BATCH  # all that was committed: two batches
    check_complete(index, good)


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
    draw_pngs(folder, 3)
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


def test_a_lock_held_by_orphans_of_a_dead_indexer_is_stale(photos: Photos) -> None:
    """Helpers of an older mmcli, orphaned by a kill, still hold the flock; the pid in it is dead."""
    photos.index.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.pwrite(fd, b'999999999', 0)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            str(photos.index / "index.lock"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        run_to_the_end(photos.command(workers=1))
        photos.check_complete()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_while_helpers_decode_leave_no_helpers_and_no_tracebacks(
    photos: Photos, sig: int, code: int
) -> None:
    cmd = photos.command(workers=2)
    proc = stopped_at(cmd, "index.decoding:10:stop")
    os.killpg(proc.pid, sig)  # as a terminal sends Ctrl-C: to the whole group, helpers included
    os.killpg(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err.decode()
    assert b"Traceback" not in err
    assert end_process_group(proc.pid, "after the signal") == []
    kept = check_index(photos.index)
    run_to_the_end(cmd)
    assert_kept(kept, photos.check_complete())


def test_a_faiss_file_with_a_shuffled_id_map_is_not_trusted(photos: Photos, runner, monkeypatch) -> None:
    """Same size, same vectors, ids rotated by one: it must not give wrong paths, and `index` repairs it."""
    import numpy as np

    import mmcli.engine.search

    monkeypatch.setattr(mmcli.engine.search, "COLD_BRUTE_MAX", 0)  # searches go through FAISS

    from mmcli.index import vectors
    from mmcli.index.store import Store

    run_to_the_end(photos.command(workers=1))
    args = ["search", "a red circle", "--index", str(photos.index), "-k", "5", "-f", "jsonl"]
    before = runner.invoke(app, args).stdout
    (path,) = photos.index.glob("vectors.g*.faiss")
    store = Store(photos.index)
    ids, vecs = vectors.load_all(store)
    good = path.read_bytes()
    vectors.save(vectors.build(np.roll(ids, 1), vecs, vecs.shape[1]), photos.index, store.generation())
    assert path.stat().st_size == len(good) and path.read_bytes() != good
    assert not vectors.agrees(vectors.read(path), store)
    store.close()
    assert runner.invoke(app, args).stdout == before  # rebuilt from SQLite, not trusted
    run_to_the_end(photos.command(workers=1))  # nothing to embed; the FAISS file is written again
    store = Store(photos.index)
    (path,) = photos.index.glob("vectors.g*.faiss")
    assert vectors.agrees(vectors.read(path), store)
    store.close()
