"""Settings and data files.

Precedence: a command-line flag > an ``MMCLI_*`` environment variable > the defaults below.
Every ``MMCLI_*`` variable is read here, in ``settings()``, and nowhere else:

    MMCLI_HOME            where indexes and the server's discovery file live (platform data dir)
    MMCLI_CACHE           disposable caches: text embeddings (platform cache dir)
    MMCLI_MODEL           the default --model
    MMCLI_SERVER          a running `mmcli serve` to use (URL), or off/0/no/none for never
    MMCLI_HELPER          off/0/no/none/false: no resident helper for search and classify (default on)
    MMCLI_HELPER_IDLE     seconds the resident helper waits for a query before it exits (default 600)
                          (MMCLI_DAEMON, MMCLI_DAEMON_IDLE: their older names, read when these are unset)
    MMCLI_WORKERS         decoding processes (default: the CPUs this process may use)
    MMCLI_MAX_PIXELS      the default --max-pixels (decompression-bomb limit)
    MMCLI_DEVICE_DECODE   0: never decode JPEGs on the GPU
    MMCLI_CPU_BF16        0: never pick bf16 on a CPU for --precision auto
    MMCLI_FAULT           test-only fault points (see ``mmcli.faults``)
    MMCLI_FAULT_MARKS     test-only: a folder that makes each fault point fire once across processes

``configs/`` (model aliases, prompt templates, mmcli-tiny) is data shipped with the package.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from mmcli.errors import UsageError

DEFAULT_MODEL = "ViT-B-32-256:datacomp_s34b_b86k"
DEFAULT_MAX_PIXELS = 256_000_000  # a 200 MP phone photo fits; a 40000 x 40000 bomb does not
DEFAULT_HELPER_IDLE = 600.0  # seconds
HELPER, HELPER_IDLE = "MMCLI_HELPER", "MMCLI_HELPER_IDLE"
HELPER_NAMES = (HELPER, HELPER_IDLE, "MMCLI_DAEMON", "MMCLI_DAEMON_IDLE")  # (the older names still read)
SERVER_OFF = ("0", "off", "no", "none", "false")
DISTRIBUTION = "mmcli-clip"  # the name pip knows this project by (on PyPI, "mmcli" is another project)


@dataclass(frozen=True)
class Settings:
    """Everything mmcli takes from its environment, read once per call of ``settings()``."""

    home: Path
    cache: Path
    model: str
    server: str | None  # None: find one; "off": never; else a URL as given
    workers: int | None
    max_pixels: int
    device_decode: bool
    cpu_bf16: bool
    fault: str
    fault_marks: str = ""
    helper: bool = True  # a resident helper answers search and classify (mmcli.helper)
    helper_idle: float = DEFAULT_HELPER_IDLE


def _env_int(name: str, env: dict[str, str] | os._Environ[str]) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(float(raw)) if "e" in raw.lower() else int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise UsageError(f"{name}={raw!r} must not be negative")
    return value


def _env_seconds(name: str, env: dict[str, str] | os._Environ[str], default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _platform_dir(kind: str) -> Path:
    import platformdirs

    if kind == "cache":
        return Path(platformdirs.user_cache_dir("mmcli", appauthor=False))
    return Path(platformdirs.user_data_dir("mmcli", appauthor=False))


def settings(env: dict[str, str] | None = None) -> Settings:
    """The settings in force now (environment variables are read on every call: tests change them)."""
    e = os.environ if env is None else env
    home = e.get("MMCLI_HOME")
    cache_env = e.get("MMCLI_CACHE")
    server = e.get("MMCLI_SERVER", "").strip() or None
    if server is not None and server.lower() in SERVER_OFF:
        server = "off"
    max_pixels = _env_int("MMCLI_MAX_PIXELS", e)
    return Settings(
        home=Path(home).expanduser() if home else _platform_dir("data"),
        cache=Path(cache_env).expanduser() if cache_env else _platform_dir("cache"),
        model=e.get("MMCLI_MODEL") or DEFAULT_MODEL,
        server=server,
        workers=_env_int("MMCLI_WORKERS", e),
        max_pixels=max_pixels if max_pixels else DEFAULT_MAX_PIXELS,
        device_decode=e.get("MMCLI_DEVICE_DECODE", "1") != "0",
        cpu_bf16=e.get("MMCLI_CPU_BF16", "1") != "0",
        fault=e.get("MMCLI_FAULT", ""),
        fault_marks=e.get("MMCLI_FAULT_MARKS", ""),
        helper=e.get(HELPER, e.get("MMCLI_DAEMON", "")).strip().lower() not in SERVER_OFF,
        helper_idle=_env_seconds(HELPER_IDLE if HELPER_IDLE in e else "MMCLI_DAEMON_IDLE", e, DEFAULT_HELPER_IDLE),
    )


def install_command(extra: str | None = None) -> str:
    """The pip command that installs this copy of mmcli (with an ``extra``: serve, video, ...): from the
    source tree it runs from (a clone: ``pip install -e 'CLONE[serve]'``), else by its distribution name
    (never plain ``mmcli``: that is another project on PyPI). Worked out from this file's path alone."""
    root = _installed_at()
    suffix = f"[{extra}]" if extra else ""
    if root is None:
        return f"pip install {shlex.quote(DISTRIBUTION + suffix)}"
    return f"pip install -e {shlex.quote(f'{root}{suffix}')}"


def upgrade_command() -> str:
    """How to upgrade this copy of mmcli: its clone pulled and installed again, or by its name."""
    root = _installed_at()
    if root is None:
        return f"pip install -U {DISTRIBUTION}"
    return f"git -C {shlex.quote(str(root))} pull && {install_command()}"


def _installed_at() -> Path | None:
    """The source tree this copy of mmcli runs from, or None where it was installed as a package."""
    root = Path(__file__).resolve().parent.parent
    return None if root.name in ("site-packages", "dist-packages") else root


def home_dir() -> Path:
    """Where indexes live: ``MMCLI_HOME`` or the platform's user data dir."""
    return settings().home


def cache_dir() -> Path:
    """Where derived, disposable data lives (label embeddings): ``MMCLI_CACHE`` or the user cache dir."""
    return settings().cache


def default_model() -> str:
    return settings().model


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


def template_sets() -> dict[str, list[str]]:
    data = load_toml("templates.toml")
    return {name: list(entry["templates"]) for name, entry in data.items()}


def templates_named(name: str) -> list[str]:
    sets = template_sets()
    if name not in sets:
        raise UsageError(f"unknown template set {name!r}", hint=f"choose one of: {', '.join(sorted(sets))}")
    return sets[name]
