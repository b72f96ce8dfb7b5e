"""Where a resident helper listens, who it must be, and starting one (``mmcli.helper.server`` runs it).

This module, like the rest of the client's side (``talk``, ``engine``), imports only the standard
library and light mmcli modules: no numpy, onnxruntime, faiss, torch, PIL, pydantic or rich (a test
checks ``sys.modules``), so a command the helper answers costs an interpreter start and one round trip.

**Identity.** A helper serves one thing for one user: the searches of one index, or the
classifications with one model, each with the engine's settings (``--model``, ``--weights``,
``--device``, ``--precision``, and for classifications ``--batch-size``, ``--workers``). Its identity is
that, the user id, the mmcli version and source (the package's folder and the size and mtime of each
of its source and config files), the Python executable, and the environment variables that change what
it computes (MMCLI_*, HF_*, ...). A hash of the identity names its socket, ``<runtime
folder>/<kind>-<hash>.sock``; an mmcli upgrade, an edited source file or another MMCLI_CACHE gives
another socket, and the old helper runs out its idle time.

**Runtime folder.** ``$XDG_RUNTIME_DIR/mmcli``, else ``$MMCLI_CACHE/helpers``: mode 0700, owned by this
user (anything else: no helper). The socket is mode 0600; before connecting the client checks that it
is a socket owned by this user, after connecting that the process on the other end runs as this user
(SO_PEERCRED); the helper checks the same of each client (``mmcli.helper.talk``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcli.config import HELPER_NAMES

OFF_FOR = 3600.0  # seconds a helper that could not start (``<name>.off``) is not started again
SUN_PATH = 107  # bytes of a socket path (Linux: 108 with the NUL)
ENV_PREFIXES = ("MMCLI_", "HF_", "HUGGINGFACE_", "TORCH", "CUDA_", "OMP_", "MKL_", "OPENBLAS_", "ORT_")
ENV_NAMES = ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE")
ENV_NAMES += ("PYTHONPATH", "PYTHONHOME")
ENV_IGNORED = (*HELPER_NAMES, "MMCLI_SERVER")  # read by the client alone


@dataclass(frozen=True)
class Helper:
    """Where the helper with ``identity`` listens (it may not be running)."""

    identity: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".sock")

    def sibling(self, suffix: str) -> Path:
        """``<name>.lock`` (held while it runs), ``.log`` (its stderr), ``.off`` (it could not start)."""
        return self.path.with_name(self.name + suffix)


# ----------------------------------------------------------------------------------- where, who
def supported() -> bool:
    return hasattr(socket, "AF_UNIX") and hasattr(socket, "SO_PEERCRED") and hasattr(os, "fork")


def runtime_dir(create: bool = True) -> Path | None:
    """The folder of this user's helpers: private (0700) and this user's, or None."""
    from mmcli.config import cache_dir

    base = os.environ.get("XDG_RUNTIME_DIR", "")
    candidates = [Path(base) / "mmcli"] if os.path.isabs(base) else []
    for folder in [*candidates, cache_dir() / "helpers"]:
        if _private_dir(folder, create):
            return folder
    return None


def _private_dir(folder: Path, create: bool) -> bool:
    try:
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return False
        if info.st_mode & 0o077:
            os.chmod(folder, 0o700)
        return True
    except OSError:
        return False


def code_stamp() -> str:
    """The installed mmcli, as files: a source file edited or a package upgraded gives another stamp."""
    import mmcli
    from mmcli.config import configs_dir

    package = Path(mmcli.__file__).resolve().parent
    digest = hashlib.sha256(str(package).encode())
    roots = [package]
    try:
        roots.append(configs_dir())
    except FileNotFoundError:
        pass
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".toml", ".json")):
                    info = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def environment() -> dict[str, str]:
    """The environment variables that can change what a helper computes (its own idle time and the
    client's choices aside)."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if (k.startswith(ENV_PREFIXES) or k in ENV_NAMES) and k not in ENV_IGNORED
    }


def identity(kind: str, target: str, engine: dict[str, Any]) -> dict[str, Any]:
    """What a helper for ``kind`` must be to answer this process: "search": ``target`` is the index
    folder; "classify": the --model given, or "". ``engine``: the engine's other settings (JSON values)."""
    from mmcli import __version__

    env = json.dumps(environment(), sort_keys=True).encode()
    return {
        "mmcli": __version__,
        "code": code_stamp(),
        "python": sys.executable,
        "uid": os.getuid(),
        "kind": kind,
        "target": target,
        "engine": engine,
        "env": hashlib.sha256(env).hexdigest()[:20],
    }


def helper_for(kind: str, target: str, engine: dict[str, Any]) -> Helper | None:
    """The helper this process would use, or None when helpers are off or cannot be had here."""
    from mmcli.config import settings

    if not settings().helper or not supported():
        return None
    folder = runtime_dir()
    if folder is None:
        return None
    ident = identity(kind, target, engine)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    path = folder / f"{kind}-{key}.sock"
    if len(os.fsencode(path)) > SUN_PATH:
        return None
    return Helper(ident, path)


# ------------------------------------------------------------------------------------ starting one
def start(helper: Helper, idle: float) -> bool:
    """Start the helper in the background (it detaches: ``mmcli.helper.server.main``); False when one
    could not start lately (``.off``). Returns at once: the helper takes its lock, warms up, then
    listens; until it does, commands work in-process."""
    import subprocess

    import mmcli

    try:
        if time.time() - os.stat(helper.sibling(".off")).st_mtime < OFF_FOR:
            return False
    except OSError:
        pass
    log = helper.sibling(".log")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        if log.exists() and log.stat().st_size > 1_000_000:
            flags |= os.O_TRUNC
        fd = os.open(log, flags, 0o600)
    except OSError:
        return False
    spec = {"identity": helper.identity, "socket": os.fspath(helper.path), "idle": idle}
    package_parent = os.fspath(Path(mmcli.__file__).resolve().parent.parent)
    code = f"import sys; sys.path[0] = {package_parent!r}; from mmcli.helper.server import main; main()"
    try:
        subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd="/",
            start_new_session=True,  # setsid: no terminal, no signals from the command's process group
            close_fds=True,
        )
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
