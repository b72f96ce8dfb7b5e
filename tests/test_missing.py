"""Vanished files keep their vectors: an unmounted drive or an unreadable folder costs no embedding work."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

import mmcli.models
from mmcli.demo.shapes import write_corpus
from mmcli.index.job import IndexJob
from mmcli.index.schema import FORMAT_VERSION
from mmcli.index.sync import run_index


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(mmcli.models, "load_encoder", refuse)


def _search(index: Path) -> list[str]:
    r = run_mmcli("search", "a red circle", "--index", str(index), "-k", "50", "-f", "paths")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().splitlines()


def _info(index: Path) -> dict:
    return json.loads(run_mmcli("info", "--index", str(index), "-f", "json").stdout)


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    photos = tmp_path / "drive" / "photos"
    write_corpus(photos, 10, seed=77)
    index = tmp_path / "idx"
    run_index(index, IndexJob([str(photos)], model=TINY, workers=1))
    return photos, index


def test_an_unmounted_drive_loses_nothing(indexed, monkeypatch: pytest.MonkeyPatch) -> None:
    photos, index = indexed
    before = _search(index)
    photos.rename(photos.with_name("away"))
    photos.mkdir()  # what an unmounted drive's mount point looks like
    r = run_mmcli("index", str(photos), "--index", str(index))
    assert r.returncode == 0, r.stderr.decode()
    assert b"found no images under" in r.stderr and b"which held 10 indexed images: is it mounted?" in r.stderr
    assert b"10 missing" in r.stderr and b"0 removed" in r.stderr
    assert _search(index) == []  # out of searches
    assert (_info(index)["ok"], _info(index)["missing"]) == (0, 10)
    photos.rmdir()
    photos.with_name("away").rename(photos)  # mounted again
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.restored, s.unchanged, s.added, s.model_loaded) == (10, 10, 0, False)
    assert _search(index) == before
    assert (_info(index)["ok"], _info(index)["missing"]) == (10, 0)


def test_missing_files_come_back_by_content_at_another_path(indexed, monkeypatch: pytest.MonkeyPatch) -> None:
    photos, index = indexed
    moved = photos.parent / "elsewhere"
    photos.rename(moved)
    photos.mkdir()
    run_index(index, IndexJob([str(photos)], workers=1))  # all missing now
    for p in moved.iterdir():
        p.rename(photos / ("renamed-" + p.name))  # back under the root, under other names
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.renamed, s.copied, s.added, s.missing) == (10, 0, 0, 0)
    assert sorted(_search(index)) == sorted(str(p) for p in photos.iterdir())


def test_a_folder_moved_to_another_root_is_renamed_and_leaves_no_dead_entries(indexed, monkeypatch) -> None:
    photos, index = indexed
    new_home = photos.parent.parent / "new_home"
    photos.rename(new_home)
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(new_home)], workers=1))
    assert (s.renamed, s.copied, s.added) == (10, 0, 0)
    assert sorted(_search(index)) == sorted(str(p) for p in new_home.iterdir())  # no dead old paths
    r = run_mmcli("dupes", "--index", str(index), "--threshold", "0.999", "-f", "paths")
    assert str(photos).encode() not in r.stdout


def test_prune_drops_what_is_missing(indexed) -> None:
    photos, index = indexed
    victims = sorted(photos.iterdir())[:3]
    for v in victims:
        v.unlink()
    s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.missing, s.removed) == (3, 0)
    s = run_index(index, IndexJob([str(photos)], workers=1, prune=True))
    assert (s.missing, s.removed) == (0, 3)
    assert _info(index)["missing"] == 0


def test_an_unreadable_folder_keeps_its_entries(indexed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root can read any folder, so the refusal is made where mmcli lists folders (os.scandir)."""
    import mmcli.media.images

    photos, index = indexed
    sub = photos / "sub"
    sub.mkdir()
    write_corpus(sub, 4, seed=78)
    run_index(index, IndexJob([str(photos)], workers=1))
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == sub:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(mmcli.media.images.os, "scandir", scandir)
    s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.missing, s.removed, s.unchanged) == (0, 0, 10)
    assert any("cannot read the folder" in w and str(sub) in w for w in s.warnings)
    monkeypatch.undo()
    assert len(_search(index)) == 14


def test_an_index_of_the_previous_format_is_migrated_in_place(indexed, monkeypatch: pytest.MonkeyPatch) -> None:
    photos, index = indexed
    db = sqlite3.connect(index / "index.sqlite")
    db.execute("ALTER TABLE files DROP COLUMN missing_since")  # the schema of format 1, as mmcli wrote it
    db.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")
    db.commit()
    rows = db.execute("SELECT id, path, hash, vector FROM files ORDER BY id").fetchall()
    db.close()
    assert len(_search(index)) == 10
    assert _info(index)["format_version"] == FORMAT_VERSION
    with monkeypatch.context() as m:
        _no_model(m)
        s = run_index(index, IndexJob([str(photos)], workers=1))
    assert (s.unchanged, s.model_loaded) == (10, False)
    db = sqlite3.connect(index / "index.sqlite")
    assert db.execute("SELECT id, path, hash, vector FROM files ORDER BY id").fetchall() == rows  # not re-embedded
    db.close()


def test_an_empty_folder_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = run_mmcli("index", str(tmp_path / "empty"), "--index", str(tmp_path / "idx"), "--model", TINY)
    assert r.returncode == 0 and b"found no images under" in r.stderr, r.stderr
