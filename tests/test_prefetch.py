"""`mmcli index` starts decoding before the torch model is loaded, when the input transform is known
without it (the index's meta, or the model's exported image tower): the vectors are those of the
ordinary path, a transform that turns out different is decoded again, and a load that fails leaves
no decoding process behind."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import TINY

from mmcli.demo.shapes import write_corpus
from mmcli.embedding import batch


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prefetch") / "photos"
    write_corpus(folder, 12, seed=41)
    return folder


class Spy:
    """Counts the prefetches made and how many of them were closed unused (the real class runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[batch.Prefetch] = []
        self.closed = 0
        real_init, real_close = batch.Prefetch.__init__, batch.Prefetch.close
        spy = self

        def init(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            real_init(self, *args, **kwargs)
            spy.made.append(self)

        def close(self) -> None:  # noqa: ANN001
            spy.closed += 1
            real_close(self)

        monkeypatch.setattr(batch.Prefetch, "__init__", init)
        monkeypatch.setattr(batch.Prefetch, "close", close)


def _vectors(index: Path) -> dict[str, bytes]:
    with sqlite3.connect(index / "index.sqlite") as db:
        return {os.path.basename(p.decode() if isinstance(p, bytes) else p): v for p, v in db.execute(
            "SELECT path, vector FROM files WHERE status = 'ok'"
        )}  # fmt: skip


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found |= {int(pid) for pid in (task / "children").read_text().split()}
    return found


def test_decoding_started_before_the_model_gives_the_same_vectors(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    first = run_index(tmp_path / "a", IndexJob([str(photos)], model=TINY, workers=2))  # exports the towers after
    assert first.added == 12
    spy = Spy(monkeypatch)
    again = run_index(tmp_path / "b", IndexJob([str(photos)], model=TINY, workers=2))  # the image tower's sidecar knows
    assert again.added == 12 and len(spy.made) == 1 and spy.closed == 0
    inline = run_index(tmp_path / "c", IndexJob([str(photos)], model=TINY, workers=1))  # in-process: no prefetch
    assert inline.added == 12 and len(spy.made) == 1
    reference = _vectors(tmp_path / "c")
    assert len(reference) == 12 and _vectors(tmp_path / "a") == reference == _vectors(tmp_path / "b")


def test_a_transform_that_differs_from_the_models_is_decoded_again(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.models import parse_model_spec
    from mmcli.models.tower_files import tower_paths

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    run_index(tmp_path / "ref", IndexJob([str(photos)], model=TINY, workers=1))
    sidecar = tower_paths(parse_model_spec(TINY), "image").sidecar
    meta = json.loads(sidecar.read_text())
    meta["preprocess"]["size"] = [8, 8]  # a stale or edited sidecar: not what the model says
    sidecar.write_text(json.dumps(meta))
    spy = Spy(monkeypatch)
    run_index(tmp_path / "b", IndexJob([str(photos)], model=TINY, workers=2))
    assert len(spy.made) == 1 and spy.made[0].preprocess.size == (8, 8) and spy.closed == 1
    assert _vectors(tmp_path / "b") == _vectors(tmp_path / "ref")


def test_a_model_that_fails_to_load_stops_the_decoding(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.index import embedding
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    run_index(tmp_path / "a", IndexJob([str(photos)], model=TINY, workers=2))
    before = _children()
    spy = Spy(monkeypatch)

    def fail(*args: object) -> None:
        assert _children() - before, "the decoding processes run while the model loads"
        raise MemoryError("no room for the weights")

    monkeypatch.setattr(embedding, "load_for_index", fail)
    with pytest.raises(MemoryError):
        run_index(tmp_path / "b", IndexJob([str(photos)], model=TINY, workers=2))
    assert len(spy.made) == 1 and spy.closed == 1
    assert not _children() - before
