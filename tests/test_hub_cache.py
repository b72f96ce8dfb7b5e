"""`mmcli models` and weight resolution read the Hugging Face cache without importing huggingface_hub:
the same answers as its ``try_to_load_from_cache`` on the cache layouts it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmcli.models.weights import _hub_candidates, hub_cache_dir, hub_cached


def _snapshot(cache: Path, repo: str, files: list[str], commit: str = "c0ffee", no_exist: tuple[str, ...] = ()) -> None:
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    for name in files:
        (folder / "blobs").mkdir(exist_ok=True)
        blob = folder / "blobs" / f"blob-{name}"
        blob.write_bytes(b"weights")
        (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        (folder / "snapshots" / commit / name).symlink_to(blob)
    for name in no_exist:
        (folder / ".no_exist" / commit).mkdir(parents=True, exist_ok=True)
        (folder / ".no_exist" / commit / name).touch()


def test_the_same_answers_as_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import try_to_load_from_cache

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _snapshot(cache, "org/both", ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"])
    _snapshot(cache, "org/bin-only", ["open_clip_pytorch_model.bin"], no_exist=("open_clip_model.safetensors",))
    _snapshot(cache, "org/old-commit", ["open_clip_pytorch_model.bin"], commit="aaa")
    (cache / "models--org--old-commit" / "refs" / "main").write_text("bbb")  # main moved on, not downloaded
    assert hub_cache_dir() == cache

    def reference(repo: str, filename: str) -> Path | None:
        for name in _hub_candidates(filename):  # (the names mmcli looks for, safetensors first)
            try:
                found = try_to_load_from_cache(repo, name, cache_dir=cache)
            except ValueError:
                return None
            if isinstance(found, str):
                return Path(found)
        return None

    for repo in ("org/both", "org/bin-only", "org/old-commit", "org/absent", "bad repo!", "a--b/c"):
        for filename in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors", "weights.pth"):
            assert hub_cached(repo, filename) == reference(repo, filename), (repo, filename)
    assert hub_cached("org/both", "open_clip_pytorch_model.bin").name == "open_clip_model.safetensors"


def test_hf_home_and_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache_dir() == tmp_path / "hf" / "hub"


def test_models_imports_neither_huggingface_hub_nor_torch() -> None:
    code = (
        "import sys; from mmcli.cli import main; sys.argv = ['mmcli', 'models', '-f', 'json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('huggingface_hub', 'torch', 'open_clip') if m in sys.modules), file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr
