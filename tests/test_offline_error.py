"""The error for weights that cannot be had (issue 31.6): offline, or with no network, and the default
model not in the local cache, `mmcli index|classify|embed` say so before torch or open_clip is imported
(they took 6-15 s to import before the hub was asked). Checked by what the process imported, not by time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_mmcli

from mmcli.demo.shapes import ShapeSpec, draw_shape

PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps({m: m in sys.modules for m in ("torch", "open_clip")}), file=sys.stderr))
sys.argv = ["mmcli", *sys.argv[1:]]
from mmcli.cli.entry import main
main()
"""
NO_NETWORK = {  # no HF_HUB_OFFLINE, but the hub's name does not resolve (.invalid never does) and no proxy
    "HF_HUB_OFFLINE": None,
    "HF_ENDPOINT": "https://hub.invalid",
    **{name: None for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")},
}


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("offline")
    draw_shape(ShapeSpec("red", "circle"), size=64, seed=1).save(folder / "red.jpg")
    return folder / "red.jpg"


@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE", "no network"])
@pytest.mark.parametrize("command", ["index", "classify", "embed"])
def test_weights_that_cannot_be_had_are_said_before_torch_is_imported(
    command: str, network: str, picture: Path, tmp_path: Path
) -> None:
    args = {
        "index": ["index", str(picture.parent), "--index", str(tmp_path / "index")],
        "classify": ["classify", str(picture), "--labels", "cat", "dog"],
        "embed": ["embed", str(picture)],
    }[command]
    env = {"MMCLI_MODEL": None, **(NO_NETWORK if network == "no network" else {})}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, env=_env(env), timeout=300, check=False
    )
    said = proc.stderr.decode().splitlines()
    assert proc.returncode == 1, said
    assert said[0].startswith("mmcli: error: cannot get the weights of ViT-B-32-256:datacomp_s34b_b86k: "), said
    assert ("HF_HUB_OFFLINE is set" if network == "HF_HUB_OFFLINE" else "cannot resolve hub.invalid") in said[0]
    assert json.loads(said[-1]) == {"torch": False, "open_clip": False}  # the answer came first


def test_a_spec_whose_hub_repo_only_open_clip_knows_gets_the_same_error(picture: Path) -> None:
    proc = run_mmcli("classify", str(picture), "--labels", "cat", "--model", "RN50:openai")  # not an alias: torch
    assert proc.returncode == 1 and proc.stderr.startswith(b"mmcli: error: cannot get the weights of RN50"), proc.stderr


def _env(extra: dict[str, str | None]) -> dict[str, str]:
    merged = {**os.environ, **extra}
    return {k: v for k, v in merged.items() if v is not None}
