"""`mmcli index --rebuild` and a first index: nothing a failed or killed run does may lose the index,
and readers see the old index until the new one is complete."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli
from killing import (
    assert_kept,
    check_complete,
    check_index,
    draw_pngs,
    index_command,
    run_killed,
    run_to_the_end,
    stopped_at,
)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    folder = tmp_path / "photos"
    good = draw_pngs(folder, 12)
    index = tmp_path / "idx"
    run_to_the_end(index_command(folder, index, "--model", TINY, "--workers", "1"))
    return folder, index, good


def _indexed_at(index: Path) -> tuple[float, float]:
    db = sqlite3.connect(index / "index.sqlite")
    try:
        return db.execute("SELECT MIN(indexed_at), MAX(indexed_at) FROM files").fetchone()
    finally:
        db.close()


def _search(index: Path) -> bytes:
    r = run_mmcli("search", "a red circle", "--index", str(index), "-k", "5", "-f", "jsonl")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def _info(index: Path) -> dict:
    r = run_mmcli("info", "--index", str(index), "-f", "json")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_a_rebuild_whose_model_cannot_load_changes_nothing(built) -> None:
    folder, index, _ = built
    before_rows, before_hits = check_index(index), _search(index)
    r = run_mmcli("index", str(folder), "--index", str(index), "--rebuild", "-m", "ViT-B-32-256:datacomp_s34b_b86k")
    assert r.returncode == 1 and b"cannot get the weights" in r.stderr, r.stderr
    assert_kept(before_rows, check_index(index))
    assert len(check_index(index)) == len(before_rows)
    info = _info(index)
    assert info["model"] == TINY and info["ok"] == 12 and info["format_version"] >= 1
    assert _search(index) == before_hits


def test_readers_see_the_old_index_until_the_swap(built) -> None:
    folder, index, _ = built
    before_rows, before_hits = check_index(index), _search(index)
    cmd = index_command(folder, index, "--rebuild", "--model", TINY, "--workers", "1", "--batch-size", "4")
    started = _indexed_at(index)[1]
    proc = stopped_at(cmd, "index.rebuild-swap:1:stop")  # everything re-embedded, not yet swapped in
    try:
        assert _search(index) == before_hits
        assert _info(index)["ok"] == 12
        assert_kept(before_rows, check_index(index))
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    assert proc.wait(timeout=120) == 0
    after = check_index(index)
    assert sorted(after) == sorted(before_rows)
    assert _indexed_at(index)[0] > started  # every row re-embedded by the rebuild
    assert not (index / "rebuild.sqlite").exists()
    assert _search(index) == before_hits  # same model, same images: same answers


@pytest.mark.parametrize("point", ["index.rebuild-swap", "index.rebuild-swapped", "index.commit:2"])
def test_a_rebuild_killed_anywhere_leaves_a_whole_index(built, point: str) -> None:
    folder, index, good = built
    before, (_, last) = check_index(index), _indexed_at(index)
    cmd = index_command(folder, index, "--rebuild", "--model", TINY, "--workers", "1", "--batch-size", "4")
    assert run_killed(cmd, point) == []
    after = check_index(index)
    assert sorted(after) == sorted(before)
    if point == "index.rebuild-swapped":
        assert _indexed_at(index)[0] > last  # the new index, whole: every row from the rebuild
    else:
        assert after == before and _indexed_at(index)[1] == last  # the old index, untouched
    run_to_the_end(index_command(folder, index, "--workers", "1"))  # no lock-out, no model switch
    check_complete(index, good)
    run_to_the_end(cmd)  # a later rebuild clears what the killed one left
    check_complete(index, good)
    assert not (index / "rebuild.sqlite").exists()


def test_a_first_index_killed_before_any_work_keeps_its_model(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    good = draw_pngs(folder, 6)
    index = tmp_path / "idx"
    run_killed(index_command(folder, index, "--model", TINY, "--workers", "1"), "index.scanned")
    info = _info(index)
    assert info["model"] == TINY and info["format_version"] >= 1 and info["ok"] == 0
    # no --model: the index's own model, not the default (which cannot load offline)
    run_to_the_end(index_command(folder, index, "--workers", "1"))
    check_complete(index, good)
    assert _info(index)["model"] == TINY
