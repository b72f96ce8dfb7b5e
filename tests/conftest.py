"""Shared fixtures: an isolated mmcli home/cache, generated images, the real mmcli-tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmcli.shapes import ShapeSpec, all_specs, draw_shape, write_corpus

TINY = "mmcli-tiny"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's caches, and none reaches a model hub."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("MMCLI_CACHE", str(base / "cache"))
    monkeypatch.setenv("MMCLI_HOME", str(base / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MMCLI_MODEL", raising=False)


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
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``mmcli`` in a subprocess: stdout is a pipe, as in a shell pipeline."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mmcli", *args], input=stdin, capture_output=True, env=full_env, timeout=timeout
    )
