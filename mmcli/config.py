"""Settings and data files: flag > MMCLI_* environment > defaults; configs/ lookup."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from mmcli.errors import UsageError

DEFAULT_MODEL = "ViT-B-32-256:datacomp_s34b_b86k"


def configs_dir() -> Path:
    """The ``configs/`` folder: bundled inside the wheel, or the repository's in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "models.toml").is_file():
            return candidate
    raise FileNotFoundError("mmcli's configs/ folder is missing from this installation")


@cache
def load_toml(name: str) -> dict[str, Any]:
    with open(configs_dir() / name, "rb") as f:
        return tomllib.load(f)


def default_model() -> str:
    return os.environ.get("MMCLI_MODEL") or DEFAULT_MODEL


def _platform_dir(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        return base / "mmcli" / ("Cache" if kind == "cache" else "")
    if sys.platform == "darwin":
        sub = "Caches" if kind == "cache" else "Application Support"
        return home / "Library" / sub / "mmcli"
    if kind == "cache":
        return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "mmcli"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "mmcli"


def home_dir() -> Path:
    """Where indexes live: ``MMCLI_HOME`` or the platform's user data dir."""
    env = os.environ.get("MMCLI_HOME")
    return Path(env).expanduser() if env else _platform_dir("data")


def cache_dir() -> Path:
    """Where derived, disposable data lives (label embeddings): ``MMCLI_CACHE`` or the user cache dir."""
    env = os.environ.get("MMCLI_CACHE")
    return Path(env).expanduser() if env else _platform_dir("cache")


def template_sets() -> dict[str, list[str]]:
    data = load_toml("templates.toml")
    return {name: list(entry["templates"]) for name, entry in data.items()}


def templates_named(name: str) -> list[str]:
    sets = template_sets()
    if name not in sets:
        raise UsageError(f"unknown template set {name!r}", hint=f"choose one of: {', '.join(sorted(sets))}")
    return sets[name]
