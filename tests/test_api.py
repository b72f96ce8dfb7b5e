"""The Python API (``import mmcli``): the same answers as the CLI, typed results, clear errors."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

import mmcli

PACKAGE = Path(mmcli.__file__).parent


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, shapes_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("api_photos")
    for name in ("red_circle", "blue_square", "green_star", "red_square", "yellow_circle", "blue_circle"):
        shutil.copy(shapes_dir / f"{name}.jpg", folder / f"{name}.jpg")
    return folder


def test_import_mmcli_loads_nothing_heavy() -> None:
    code = (
        "import sys, mmcli\n"
        "assert callable(mmcli.classify) and mmcli.Index.__name__ == 'Index'\n"
        "heavy = [m for m in ('torch', 'open_clip', 'numpy', 'PIL', 'faiss', 'onnxruntime') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_exports_are_typed() -> None:
    assert (PACKAGE / "py.typed").exists()
    stub = ast.parse((PACKAGE / "__init__.pyi").read_text())
    typed = {alias.asname for node in stub.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert typed | {"__version__"} == set(mmcli.__all__)
    for name in mmcli.__all__:
        assert getattr(mmcli, name) is not None
    with pytest.raises(AttributeError):
        mmcli.no_such_name  # noqa: B018


def test_index_names_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMCLI_HOME", str(tmp_path / "home"))
    assert mmcli.Index("photos").folder == tmp_path / "home" / "indexes" / "photos"
    assert mmcli.Index().folder == tmp_path / "home" / "indexes" / "default"
    assert mmcli.Index(tmp_path / "idx").folder == tmp_path / "idx"
    assert mmcli.Index(str(tmp_path / "idx")).folder == tmp_path / "idx"
    with pytest.raises(mmcli.UsageError, match="invalid index name"):
        mmcli.Index("no good name!")
    assert not mmcli.Index("photos").exists
    with pytest.raises(mmcli.IndexMissing):
        mmcli.Index("photos").search("a red circle")


def test_add_search_and_info_give_what_the_cli_gives(photos: Path, tmp_path: Path) -> None:
    index = mmcli.Index(tmp_path / "idx")
    summary = index.add([photos], model=TINY)
    assert isinstance(summary, mmcli.IndexSummary)
    assert (summary.added, summary.failed, summary.model_loaded) == (6, 0, True)
    again = index.add(str(photos))  # a single path; the index keeps its model
    assert (again.unchanged, again.added, again.model_loaded) == (6, 0, False)
    assert index.info().ok == 6 and index.info().model == TINY

    hits = index.search("a red circle", k=3)
    assert [h.rank for h in hits] == [1, 2, 3] and all(isinstance(h, mmcli.Hit) for h in hits)
    assert all(h.time is None and h.taken and h.taken_source == "mtime" for h in hits)
    cli = run_mmcli("search", "a red circle", "--index", str(index.folder), "-k", "3", "-f", "json")
    assert cli.returncode == 0, cli.stderr.decode()
    expected = json.loads(cli.stdout)
    assert [h.path for h in hits] == [e["path"] for e in expected]
    assert [h.score for h in hits] == pytest.approx([e["score"] for e in expected], abs=1e-6)

    like = index.search(image=photos / "red_circle.jpg", k=2)  # the query image itself is left out
    assert len(like) == 2 and str(photos / "red_circle.jpg") not in [h.path for h in like]
    combined = index.search("a circle", add=["red"], sub=["0.5:blue"], k=6, threshold=-1.0)
    assert len(combined) == 6
    within = index.search("a circle", within=photos, k=6)
    assert {Path(h.path).parent for h in within} == {photos}
    assert index.search("a circle", after="2999") == []  # every date here is today's mtime
    by_date = index.search("a circle", k=6, sort="-date")
    assert [h.taken for h in by_date] == sorted((h.taken for h in by_date), reverse=True)


def test_search_errors_are_mmcli_errors(photos: Path, tmp_path: Path) -> None:
    index = mmcli.Index(tmp_path / "idx")
    index.add([photos], model=TINY)
    with pytest.raises(mmcli.UsageError, match="empty query"):
        index.search("  ")
    with pytest.raises(mmcli.UsageError):
        index.search("a circle", after="not a date")
    with pytest.raises(mmcli.UsageError):
        index.search("a circle", k=0)
    with pytest.raises(mmcli.UsageError):
        index.search("a circle", within=tmp_path / "no such folder")
    with pytest.raises(mmcli.UsageError):
        index.add([])
    with pytest.raises(mmcli.UsageError):
        index.add([tmp_path / "missing"])


def test_a_long_query_is_a_warning_not_a_print(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    index = mmcli.Index(tmp_path / "idx")
    index.add([photos], model=TINY)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hits = index.search("a red circle " * 40, k=1)
    assert len(hits) == 1
    assert any(issubclass(w.category, mmcli.MmcliWarning) and "truncated" in str(w.message) for w in seen)
    assert capsys.readouterr() == ("", "")


def test_classify_gives_what_the_cli_gives(photos: Path) -> None:
    files = sorted(photos.glob("*.jpg"))
    results = mmcli.classify(files, labels=["red", "blue", "green", "yellow"], model=TINY)
    assert [r.path for r in results] == [str(f) for f in files]
    for r in results:
        assert isinstance(r, mmcli.Classification)
        assert [s.score for s in r.labels] == sorted((s.score for s in r.labels), reverse=True)
        assert sum(s.score for s in r.labels) == pytest.approx(1.0, abs=1e-5)
    cli = run_mmcli(
        "classify", *map(str, files), "--labels", "red", "blue", "green", "yellow", "--model", TINY, "-f", "jsonl",
        "--top-k", "4",
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr.decode()
    rows = [json.loads(line) for line in cli.stdout.decode().splitlines()]
    for r, row in zip(results, rows, strict=True):
        assert r.path == row["path"]
        assert [s.label for s in r.labels] == [x["label"] for x in row["labels"]]
        assert [s.score for s in r.labels] == pytest.approx([x["score"] for x in row["labels"]], abs=1e-6)
    # a folder is walked; the best label of a red circle is red
    by_path = {r.path: r for r in mmcli.classify(photos, labels=["red", "blue"], model=TINY)}
    assert len(by_path) == 6 and by_path[str(photos / "red_circle.jpg")].labels[0].label == "red"


def test_classify_bad_input(photos: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    good = photos / "red_circle.jpg"
    with pytest.raises(mmcli.ImageLoadError) as caught:
        mmcli.classify([good, broken], labels=["red", "blue"], model=TINY)
    assert caught.value.path == str(broken)
    kept = mmcli.classify([good, broken], labels=["red", "blue"], model=TINY, errors="skip")
    assert [r.path for r in kept] == [str(good)]
    multi = mmcli.classify([good], labels=["red", "blue"], model=TINY, multi_label=True, threshold=0.0)
    assert {s.label for s in multi[0].labels} == {"red", "blue"}
    with pytest.raises(mmcli.UsageError):
        mmcli.classify([good], labels="red", model=TINY)  # a string, not a list of labels
    with pytest.raises(mmcli.UsageError):
        mmcli.classify([good], labels=[], model=TINY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(mmcli.UsageError, match="no image files"):
        mmcli.classify([tmp_path / "empty"], labels=["red"], model=TINY)
    with pytest.raises(mmcli.ImageLoadError, match="no such file"):  # as the CLI reports it
        mmcli.classify([tmp_path / "missing.jpg"], labels=["red"], model=TINY)
    with pytest.raises(mmcli.UsageError):
        mmcli.classify([good], labels=["red"], model=TINY, templates="no such set")
