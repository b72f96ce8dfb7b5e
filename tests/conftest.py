"""Shared fixtures: an isolated mmcli home/cache, generated images, the real mmcli-tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmcli.demo.shapes import ShapeSpec, all_specs, draw_shape, write_corpus

TINY = "mmcli-tiny"


def isolate(mp: pytest.MonkeyPatch, base: Path) -> None:
    """Point every cache, model hub and home directory into ``base``; no server, no resident helper, no
    other MMCLI_*."""
    for name in [k for k in os.environ if k.startswith("MMCLI_")]:
        mp.delenv(name)
    mp.setenv("MMCLI_CACHE", str(base / "cache"))
    mp.setenv("MMCLI_HOME", str(base / "home"))
    mp.setenv("MMCLI_SERVER", "off")  # a running `mmcli serve` must not answer; test_serve names its own
    mp.setenv("MMCLI_DAEMON", "off")  # no resident helper is started or used; test_daemon turns it on
    user = base / "user"  # ~: platformdirs, ~/.cache/huggingface, ~/.cache/torch, ~/.cache/clip
    mp.setenv("HOME", str(user))
    for var, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")):
        mp.setenv(var, str(user / sub))
    mp.setenv("HF_HOME", str(user / ".cache" / "huggingface"))
    mp.setenv("HF_HUB_CACHE", str(user / ".cache" / "huggingface" / "hub"))
    mp.setenv("TORCH_HOME", str(user / ".cache" / "torch"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_ENABLE_HF_TRANSFER"):
        mp.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def isolated_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The isolation below, already in place for session- and module-scoped fixtures (a server,
    stand-in weights) and for libraries that read their cache paths once, when first imported."""
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, tmp_path_factory.getbasetemp())
        yield


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's caches, reaches a model hub or a running server, or
    inherits an MMCLI_* setting (MMCLI_FAULT, MMCLI_WORKERS, ...) from the shell or an earlier test."""
    isolate(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One JPEG per colour x shape (32), named colour_shape.jpg, unseen by training (own seeds)."""
    folder = tmp_path_factory.mktemp("shapes")
    for i, spec in enumerate(all_specs()):
        draw_shape(spec, size=160, seed=900_000 + i).save(folder / f"{spec.colour}_{spec.shape}.jpg", quality=92)
    return folder


@pytest.fixture(scope="session")
def random_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, ShapeSpec]]:
    return write_corpus(tmp_path_factory.mktemp("corpus"), 24, seed=4242)


def run_mmcli(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str | None] | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``mmcli`` in a subprocess: stdout is a pipe, as in a shell pipeline.
    ``env`` adds to this process's environment; a ``None`` value removes that variable."""
    merged = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "mmcli", *args], input=stdin, capture_output=True, env=full_env, timeout=timeout, cwd=cwd
    )
