"""The exported towers are a cache: a failure to write them is tried again, damaged files are found and
replaced, an unwritable cache costs speed and one warning, never a command; `mmcli index` leaves them
ready for the first search, and small index updates use them instead of torch."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from killing import run_killed
from test_text_tower import _heavy_modules

from mmcli.demo.shapes import all_specs, draw_shape


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(photos, an index of them, the cache `mmcli index` left: the towers it exported)."""
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index

    base = tmp_path_factory.mktemp("towers")
    photos = base / "photos"
    photos.mkdir()
    for i, spec in enumerate(all_specs()[:8]):
        draw_shape(spec, size=96, seed=70_000 + i).save(photos / f"{spec.colour}_{spec.shape}.png")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCLI_CACHE", str(base / "cache"))
        summary = run_index(base / "idx", IndexJob([str(photos)], model=TINY, workers=1))
    assert summary.added == 8 and not summary.warnings
    return photos, base / "idx", base / "cache"


@pytest.fixture
def cache(built: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own copy of the exported towers (same bytes, same times)."""
    mine = tmp_path / "cache"
    shutil.copytree(built[2], mine)
    monkeypatch.setenv("MMCLI_CACHE", str(mine))
    return mine


def _spec():  # noqa: ANN202
    from mmcli.models import parse_model_spec

    return parse_model_spec(TINY)


def _files(cache: Path, tower: str) -> dict[str, Path]:
    """The tower's files as its sidecar names them: {"graph": ..., "weights": ...}."""
    from mmcli.models.tower_files import tower_paths

    paths = tower_paths(_spec(), tower)
    meta = json.loads(paths.sidecar.read_text())
    graph = paths.folder / meta["model"]
    return {"graph": graph, "weights": graph.with_name(graph.name + ".data")}


def _warnings(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if line.startswith("mmcli: warning:")]


# ------------------------------------------------------------------ A: only refusals that recur are recorded
@pytest.mark.parametrize("failure", ["ENOSPC", "ONNX Runtime"])
def test_a_failure_to_write_the_tower_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    import mmcli.models.onnx_export as onnx_export
    from mmcli.engine.local import LocalEngine
    from mmcli.models.onnx_towers import OnnxTextEncoder
    from mmcli.models.tower_files import tower_paths, tower_state

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))

    def full_disk(raw: Path, paths, names) -> None:  # noqa: ANN001
        (paths.folder / names[0]).write_bytes(raw.read_bytes()[:1000])  # a part written, then the disk is full
        if failure == "ENOSPC":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : cannot write the optimized model")

    monkeypatch.setattr(onnx_export, "_optimise", full_disk)
    engine = LocalEngine(None, TINY)
    texts = engine.text_encoder()
    assert not isinstance(texts, OnnxTextEncoder) and texts.encode_texts(["a red circle"]).shape == (1, 64)
    assert len(engine.notes) == 1 and "tried again next time" in engine.notes[0]
    assert tower_state(_spec()).refused is None and not tower_state(_spec()).ready  # not recorded
    left = [p.name for p in tower_paths(_spec()).folder.iterdir() if "text-" in p.name and p.suffix != ".lock"]
    assert left == []  # the part written and the traced graph are gone
    monkeypatch.undo()
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    again = LocalEngine(None, TINY)
    assert isinstance(again.text_encoder(), OnnxTextEncoder) and not again.notes  # tried again: exported


def test_a_killed_export_is_tried_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmcli.models.tower_files import tower_paths, tower_state

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "mmcli", "embed", "--text", "a red circle", "--model", TINY]
    run_killed(cmd, "onnx.export")  # the files are written, the sidecar not yet
    folder = tower_paths(_spec()).folder
    assert not tower_state(_spec()).ready and not tower_state(_spec()).refused
    assert len(list(folder.glob("text-*.onnx*"))) == 2  # what the killed export wrote, named by no sidecar
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    assert r.returncode == 0 and not _warnings(r.stderr), r.stderr.decode()
    meta = tower_state(_spec()).meta
    assert meta is not None and sorted(p.name for p in folder.glob("text-*.onnx*")) == sorted(meta["files"])
    status, heavy, out = _heavy_modules("embed", "--text", "a blue star", "--model", TINY)
    assert status == 0 and heavy == [] and out


def test_an_architecture_the_exporter_cannot_handle_is_recorded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from mmcli.models.onnx_export import export_tower
    from mmcli.models.tower_files import tower_state

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    calls = []

    def unsupported(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise RuntimeError("Exporting the operator 'aten::mystery' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    outcome = export_tower(_spec(), "image")
    assert not outcome.done and outcome.recorded and "aten::mystery" in (outcome.reason or "")
    assert tower_state(_spec(), "image").refused
    assert export_tower(_spec(), "image").recorded and len(calls) == 1  # not tried again


# ----------------------------------------------------------------------------- B: the files are checked
def _damage(files: dict[str, Path], how: str, other: Path | None = None) -> None:
    weights = files["weights"]
    st = weights.stat()
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: st.st_size // 3])
    elif how == "garbage graph":
        files["graph"].write_bytes(os.urandom(files["graph"].stat().st_size))
    elif how == "another model's weights":
        assert other is not None and other.stat().st_size == st.st_size
        shutil.copyfile(other, weights)
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the recorded time: sampled blocks differ


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The text tower's weights file of another model of the same architecture (other weights, same size)."""
    import torch
    from safetensors.torch import load_file, save_file

    from mmcli.config import configs_dir
    from mmcli.models import parse_model_spec
    from mmcli.models.onnx_export import export_tower

    base = tmp_path_factory.mktemp("other")
    folder = base / "model"
    shutil.copytree(configs_dir() / "mmcli-tiny", folder)
    (checkpoint,) = folder.glob("*.safetensors")
    state = load_file(str(checkpoint))
    torch.manual_seed(1)
    save_file(
        {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}, str(checkpoint)
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCLI_CACHE", str(base / "cache"))
        spec = parse_model_spec(f"local-dir:{folder}")
        assert export_tower(spec).done
        (weights,) = (base / "cache" / "onnx").glob("text-*.onnx.data")
    return weights


@pytest.mark.parametrize("how", ["truncated", "garbage graph", "another model's weights"])
def test_a_damaged_text_tower_is_exported_again_with_one_warning(
    built: tuple[Path, Path, Path], cache: Path, other_weights: Path, how: str
) -> None:
    _, index, _ = built
    _damage(_files(cache, "text"), how, other_weights)
    args = ["search", "a red circle", "--index", str(index), "-k", "3", "-f", "jsonl"]
    r = subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr.decode()
    (warning,) = _warnings(r.stderr)
    assert "damaged" in warning and "exported it again" in warning
    status, heavy, out = _heavy_modules("search", "a green square", "--index", str(index), "-k", "3")
    assert status == 0 and heavy == [] and out  # repaired: no torch, no warning
    if how != "another model's weights":
        return
    torch_path = {**os.environ, "MMCLI_CACHE": "/dev/null/none", "MMCLI_CPU_BF16": "0"}  # no cache: torch, fp32
    reference = subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, env=torch_path)
    ours, theirs = ([json.loads(line) for line in x.stdout.splitlines()] for x in (r, reference))
    assert [h["path"] for h in ours] == [h["path"] for h in theirs]
    assert [h["score"] for h in ours] == pytest.approx([h["score"] for h in theirs], abs=1e-4)


def test_a_copied_cache_is_hashed_whole_once(built: tuple[Path, Path, Path], tmp_path: Path, monkeypatch) -> None:
    """Copies get new times: the weights are hashed whole once, found to be the exported ones, and their
    new times recorded, so the next load checks sampled blocks only."""
    import mmcli.models.tower_files as tower_files
    from mmcli.models.towers import open_tower

    copy = tmp_path / "copy"
    shutil.copytree(built[2], copy, copy_function=shutil.copyfile)  # contents only: new modification times
    monkeypatch.setenv("MMCLI_CACHE", str(copy))
    hashed = []
    whole = tower_files._whole
    monkeypatch.setattr(tower_files, "_whole", lambda path: hashed.append(path.suffix) or whole(path))
    assert open_tower(_spec(), export=False).encoder is not None
    assert hashed == [".onnx", ".data"]  # the small graph always; the weights once
    hashed.clear()
    assert open_tower(_spec(), export=False).encoder is not None and hashed == [".onnx"]


def test_a_damaged_image_tower_is_found_by_classify(built: tuple[Path, Path, Path], cache: Path) -> None:
    photos, _, _ = built
    one = str(photos / "red_star.png")
    args = ["classify", one, "--labels", "red star", "blue circle", "--model", TINY]
    first = subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300)
    _damage(_files(cache, "image"), "truncated")
    r = subprocess.run([sys.executable, "-m", "mmcli", *args], capture_output=True, timeout=300)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr.decode()
    assert len(_warnings(r.stderr)) == 1 and "damaged" in r.stderr.decode()
    assert json.loads(r.stdout)["labels"][0]["label"] == json.loads(first.stdout)["labels"][0]["label"]


# --------------------------------------------------------------------------- C: an unwritable cache
def _read_only_run(folder: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """mmcli (or ``python -c code``) with ``folder`` read-only: a read-only bind mount as root, the
    permission bits otherwise."""
    command = shlex.join([sys.executable, "-c", code] if code else [sys.executable, "-m", "mmcli", *args])
    if os.geteuid() == 0:
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("no mount namespace to make a read-only folder in")
        where = shlex.quote(str(folder))
        script = f"mount --bind {where} {where} && mount -o remount,bind,ro {where} && exec {command}"
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=300)
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        return subprocess.run(shlex.split(command), capture_output=True, timeout=300)
    finally:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


SERVE_START = (
    "import sys\n"
    "from mmcli.engine.local import LocalEngine\n"
    "engine = LocalEngine(__import__('pathlib').Path(sys.argv[1]), workers=1, warm=True)\n"
    "engine.encoder(); engine.text_encoder(); engine.image_encoder(1)  # what `mmcli serve` loads before it listens\n"
    "print('\\n'.join(engine.notes))\n"
)


def test_an_empty_read_only_cache_costs_speed_and_one_warning(
    built: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos, index, _ = built
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("MMCLI_CACHE", str(cache))
    r = _read_only_run(cache, "search", "a red circle", "--index", str(index), "-k", "3")
    assert r.returncode == 0 and r.stdout.count(b"\n") == 3, r.stderr.decode()
    (warning,) = _warnings(r.stderr)
    assert "not writable" in warning and "torch" in warning
    r = _read_only_run(cache, "classify", str(photos / "red_star.png"), "--labels", "star", "circle", "--model", TINY)
    assert r.returncode == 0 and json.loads(r.stdout)["labels"] and len(_warnings(r.stderr)) == 1, r.stderr.decode()
    r = _read_only_run(cache, code=SERVE_START.replace("sys.argv[1]", repr(str(index))))
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.decode().split("\n")) == 2 and b"not writable" in r.stdout  # one note, then the server runs
    r = _read_only_run(cache, "index", str(photos), "--index", str(tmp_path / "new"), "--model", TINY, "-q")
    assert r.returncode == 0 and (tmp_path / "new" / "index.sqlite").exists(), r.stderr.decode()
    assert any("could not be written" in w or "not writable" in w for w in _warnings(r.stderr))


def test_a_read_only_cache_with_the_towers_serves_without_torch(built: tuple[Path, Path, Path], cache: Path) -> None:
    _, index, _ = built
    assert (
        subprocess.run([sys.executable, "-m", "mmcli", "search", "seen before", "--index", str(index)]).returncode == 0
    )
    check = (
        "import runpy, sys\n"
        "sys.argv = ['mmcli', 'search', {q!r}, '--index', {index!r}, '-k', '2']\n"
        "try:\n    runpy.run_module('mmcli', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code\n"
        "print('HEAVY', [m for m in ('torch', 'open_clip') if m in sys.modules], file=sys.stderr)\n"
    )
    for query in ("a new query", "seen before"):  # the ONNX tower from a read-only cache; the text cache read
        r = _read_only_run(cache, code=check.format(q=query, index=str(index)))
        assert r.returncode == 0 and r.stdout.count(b"\n") == 2, r.stderr.decode()
        assert b"HEAVY []" in r.stderr and not _warnings(r.stderr), r.stderr.decode()


def test_the_text_cache_reads_a_read_only_cache(cache: Path) -> None:
    from mmcli.embedding.textcache import TextCache

    vector = np.full(64, 0.125, np.float32)
    TextCache().put("model", ["kept"], vector[None])
    code = (
        "from mmcli.embedding.textcache import TextCache\n"
        "import numpy as np\n"
        "c = TextCache()\n"
        "c.put('model', ['new'], np.ones((1, 64), np.float32) / 8)\n"
        "print(sorted(c.get('model', ['kept', 'new'])))\n"
    )
    r = _read_only_run(cache, code=code)
    assert r.returncode == 0 and r.stdout.strip() == b"['kept']", r.stderr.decode()


# ------------------------------------------------- D: commands that load torch anyway leave the towers
def test_embedding_images_leaves_the_towers_for_searches(
    built: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmcli.models.tower_files import tower_state

    photos, _, _ = built
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "vectors.npy"
    r = subprocess.run(
        [sys.executable, "-m", "mmcli", "embed", str(photos / "red_star.png"), "--model", TINY, "-o", str(out), "-q"],
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0 and out.exists() and not _warnings(r.stderr), r.stderr.decode()
    assert tower_state(_spec(), "text").ready and tower_state(_spec(), "image").ready


def test_index_says_once_that_it_writes_the_towers(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The first index with a model new to the cache spends seconds exporting: it says so on stderr,
    once; the next run (the towers are there) and `-q` say nothing of it."""
    photos, _, _ = built
    env = {**os.environ, "MMCLI_CACHE": str(tmp_path / "cache")}

    def index(name: str, *extra: str) -> str:
        cmd = [sys.executable, "-m", "mmcli", "index", str(photos), "--index", str(tmp_path / name), "--model", TINY]
        r = subprocess.run([*cmd, *extra], capture_output=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr.decode()
        return r.stderr.decode()

    first = index("a")
    assert first.count("writing the ONNX text and image towers of mmcli-tiny (once per model)") == 1, first
    assert "writing the ONNX" not in index("b")
    env["MMCLI_CACHE"] = str(tmp_path / "cache-2")
    assert "writing the ONNX" not in index("c", "-q")


def test_a_large_classify_says_once_that_it_writes_the_towers(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Over 16 images torch classifies them, then writes the image tower: each export said once."""
    photos, _, _ = built
    many = tmp_path / "many"
    many.mkdir()
    for i in range(3):  # 24 images
        for p in photos.iterdir():
            shutil.copy(p, many / f"{i}_{p.name}")
    env = {**os.environ, "MMCLI_CACHE": str(tmp_path / "cache"), "MMCLI_DAEMON": "off"}

    def classify(*extra: str) -> subprocess.CompletedProcess[bytes]:
        cmd = [sys.executable, "-m", "mmcli", "classify", str(many), "--labels", "a star", "a circle", "--model", TINY]
        r = subprocess.run([*cmd, *extra], capture_output=True, timeout=300, env=env)
        assert r.returncode == 0 and r.stdout.count(b"\n") == 24, r.stderr.decode()
        return r

    quiet = classify("-q")
    assert b"writing the ONNX" not in quiet.stderr and tower_files_in(tmp_path / "cache")
    env["MMCLI_CACHE"] = str(tmp_path / "cache-2")
    said = classify().stderr.decode()  # the labels need the text tower first, the images the image tower after
    assert said.count("writing the ONNX text tower of mmcli-tiny (once per model)") == 1, said
    assert said.count("writing the ONNX image tower of mmcli-tiny (once per model)") == 1, said
    assert "writing the ONNX" not in classify().stderr.decode()


def test_a_search_that_must_write_the_text_tower_says_so(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """An index whose towers are gone (a cleared cache): the search exports the text tower, and says so
    once on stderr, in-process on the fast path and through the command (--server off: Typer)."""
    _, index, _ = built
    env = {**os.environ, "MMCLI_DAEMON": "off"}
    for i, extra in enumerate(([], ["--server", "off"])):
        env["MMCLI_CACHE"] = str(tmp_path / f"cache-{i}")
        cmd = [sys.executable, "-m", "mmcli", "search", "a red star", "--index", str(index), "-k", "2", *extra]
        r = subprocess.run(cmd, capture_output=True, timeout=300, env=env)
        assert r.returncode == 0 and r.stdout.count(b"\n") == 2, r.stderr.decode()
        assert r.stderr.decode().count("writing the ONNX text tower of mmcli-tiny (once per model)") == 1, r.stderr
        again = subprocess.run(cmd[:4] + ["a blue star"] + cmd[5:], capture_output=True, timeout=300, env=env)
        assert again.returncode == 0 and b"writing the ONNX" not in again.stderr


def tower_files_in(cache: Path) -> list[Path]:
    return sorted((cache / "onnx").glob("*.onnx"))


# ------------------------------------------------------------- F: a small index update without torch
def test_one_new_photo_is_added_without_torch(built: tuple[Path, Path, Path], cache: Path, tmp_path: Path) -> None:
    from mmcli.media.images import load_pixels
    from mmcli.models import load_encoder

    photos, index, _ = built
    mine, folder = tmp_path / "idx", tmp_path / "photos"
    shutil.copytree(index, mine)
    shutil.copytree(photos, folder)
    new = folder / "new_green_circle.png"
    draw_shape(all_specs()[20], size=96, seed=71_000).save(new)
    status, heavy, _ = _heavy_modules("index", str(folder), "--index", str(mine), "-q")
    assert status == 0 and heavy == []  # the exported image tower embedded it
    encoder = load_encoder(_spec(), device="cpu", precision="fp32")
    reference = encoder.encode_images(load_pixels(str(new), encoder.preprocess)[None])[0]
    assert float(_stored_vector(mine, str(new)) @ reference) >= 0.999  # the torch path's vector


def _stored_vector(index: Path, path: str) -> np.ndarray:
    from mmcli.index.store import Store

    store = Store(index)
    try:
        st = os.stat(path)
        raw = store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns)
    finally:
        store.close()
    assert raw is not None
    return np.frombuffer(raw, dtype=np.float32)
