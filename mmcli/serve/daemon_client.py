"""The thin client of the resident helper (``mmcli.serve.daemon``): where it listens, who it must be,
one request to it, and starting one.

This module imports only the standard library and light mmcli modules: no numpy, onnxruntime,
faiss, torch, PIL, pydantic or rich (a test checks ``sys.modules``), so a command the helper
answers costs an interpreter start and one round trip.

**Identity.** A helper serves one thing for one user: the searches of one index, or the
classifications with one model. Its identity is that, the user id, the mmcli version and source
(the package's folder and the size and mtime of each of its source and config files), the Python
executable, and the environment variables that change what it computes (MMCLI_*, HF_*, ...). A hash
of the identity names its socket, ``<runtime folder>/<kind>-<hash>.sock``; an mmcli upgrade, an edited
source file or another MMCLI_CACHE gives another socket, and the old helper runs out its idle time.

**Runtime folder.** ``$XDG_RUNTIME_DIR/mmcli``, else ``$MMCLI_CACHE/daemon``: mode 0700, owned by this
user (anything else: no helper). The socket is mode 0600; before connecting the client checks that it
is a socket owned by this user, after connecting that the process on the other end runs as this
user (SO_PEERCRED); the helper checks the same of each client.

**Protocol.** One request per connection, lines of ASCII JSON. The client sends
``{"identity", "op", "body"}``; the helper answers ``{"ack": <its identity>}`` at once (within
``ACK_TIMEOUT``), then any number of ``{"progress"}``, ``{"labels"}``, ``{"warnings"}`` and ``{"item"}``
lines, blank lines as a heartbeat while it works (one at least every ``HEARTBEAT`` seconds), and one
final line: ``{"reply"}``, ``{"error"}`` (an MmcliError: message, hint, exit code) or ``{"decline"}`` (this
helper cannot do it: the command works in-process). The bodies and replies are those of `mmcli serve`
(``mmcli.serve.wire``), built and checked without pydantic by ``mmcli.serve.daemon_wire``; the helper
validates them with pydantic.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT = 0.5  # seconds: a helper that does not take the connection by then is not used
ACK_TIMEOUT = 1.5  # seconds for the acknowledgement: a hung helper costs this, then the work is done here
GAP_TIMEOUT = 10.0  # seconds without a byte while the helper works (it sends a heartbeat every HEARTBEAT)
HEARTBEAT = 0.5
MAX_LINE = 256 * 1024 * 1024
OFF_FOR = 3600.0  # seconds a helper that could not start (``<name>.off``) is not started again
SUN_PATH = 107  # bytes of a socket path (Linux: 108 with the NUL)
ENV_PREFIXES = ("MMCLI_", "HF_", "HUGGINGFACE_", "TORCH", "CUDA_", "OMP_", "MKL_", "OPENBLAS_", "ORT_")
ENV_NAMES = ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE")
ENV_NAMES += ("PYTHONPATH", "PYTHONHOME")
ENV_IGNORED = ("MMCLI_DAEMON", "MMCLI_DAEMON_IDLE", "MMCLI_SERVER")  # read by the client alone


class Unusable(Exception):
    """The helper cannot answer this command (none, dead, hung, foreign, gone): it is done in-process."""


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
    for folder in [*candidates, cache_dir() / "daemon"]:
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


def identity(kind: str, target: str) -> dict[str, Any]:
    """What a helper for ``kind`` ("search": ``target`` is the index folder; "classify": the --model
    given, or "") must be to answer this process."""
    from mmcli import __version__

    env = json.dumps(environment(), sort_keys=True).encode()
    return {
        "mmcli": __version__,
        "code": code_stamp(),
        "python": sys.executable,
        "uid": os.getuid(),
        "kind": kind,
        "target": target,
        "env": hashlib.sha256(env).hexdigest()[:20],
    }


def helper_for(kind: str, target: str) -> Helper | None:
    """The helper this process would use, or None when helpers are off or cannot be had here."""
    from mmcli.config import settings

    if not settings().daemon or not supported():
        return None
    folder = runtime_dir()
    if folder is None:
        return None
    ident = identity(kind, target)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    path = folder / f"{kind}-{key}.sock"
    if len(os.fsencode(path)) > SUN_PATH:
        return None
    return Helper(ident, path)


def serve_found() -> bool:
    """Is `mmcli serve` named (MMCLI_SERVER) or maybe running (its discovery file)? Then the command
    line decides, as before, and no helper is used."""
    from mmcli.config import settings
    from mmcli.index.lock import process_alive

    current = settings()
    if current.server is not None:
        return current.server != "off"
    try:
        info = json.loads((current.home / "server.json").read_text())
    except (OSError, ValueError):
        return False
    pid = info.get("pid") if isinstance(info, dict) else None
    return isinstance(pid, int) and process_alive(pid)


# ------------------------------------------------------------------------------------ a request
def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def connect(helper: Helper) -> socket.socket:
    """A connection to the helper, checked: its socket file is this user's, and so is the process."""
    try:
        info = os.lstat(helper.path)
    except FileNotFoundError:
        raise Unusable("no helper is running") from None
    except OSError as exc:
        raise Unusable(f"its socket cannot be read: {exc}") from None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise Unusable("its socket is not a private socket of this user")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(os.fspath(helper.path))
        if peer_uid(sock) != os.getuid():
            raise Unusable("it runs as another user")
    except OSError as exc:
        sock.close()
        raise Unusable(f"it does not answer ({exc.__class__.__name__})") from None
    except Unusable:
        sock.close()
        raise
    return sock


def send_line(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode() + b"\n")


def read_lines(sock: socket.socket, first_timeout: float, timeout: float) -> Iterator[dict[str, Any]]:
    """JSON lines from ``sock``; blank lines (heartbeats) only renew the timeout. Unusable when the
    first line takes over ``first_timeout`` seconds, a later one over ``timeout``, or a line is no JSON
    object."""
    buffer = b""
    sock.settimeout(first_timeout)
    while True:
        while b"\n" not in buffer:
            try:
                chunk = sock.recv(1 << 16)
            except OSError as exc:  # socket.timeout too
                raise Unusable(f"it stopped answering ({exc.__class__.__name__})") from None
            if not chunk:
                raise Unusable("it closed the connection")
            buffer += chunk
            if len(buffer) > MAX_LINE:
                raise Unusable("it sent an oversized line")
        line, buffer = buffer.split(b"\n", 1)
        sock.settimeout(timeout)
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            raise Unusable("it sent a line that is not JSON") from None
        if not isinstance(message, dict) or len(message) != 1:
            raise Unusable("it sent a message of the wrong shape")
        yield message


FINAL = ("reply", "error", "decline")


def exchange(
    helper: Helper, op: str, body: dict[str, Any], on_message: Callable[[str, Any], None] | None = None
) -> tuple[str, Any]:
    """Send one request; hand every message before the last to ``on_message``; the last one, as
    (kind, value) with kind one of ``FINAL``. Unusable when the helper cannot be used: nothing was
    done there that this process must know of (unless ``on_message`` was called)."""
    sock = connect(helper)
    try:
        try:
            send_line(sock, {"identity": helper.identity, "op": op, "body": body})
        except OSError as exc:
            raise Unusable(f"it does not take the request ({exc.__class__.__name__})") from None
        messages = read_lines(sock, ACK_TIMEOUT, GAP_TIMEOUT)
        ack = next(messages).get("ack")
        if ack != helper.identity:
            raise Unusable("it is another helper (" + _difference(helper.identity, ack) + ")")
        for message in messages:
            ((kind, value),) = message.items()
            if kind in FINAL:
                return kind, value
            if on_message is not None:
                on_message(kind, value)
        raise Unusable("it closed the connection")  # pragma: no cover - read_lines raises first
    finally:
        sock.close()


def _difference(mine: dict[str, Any], theirs: Any) -> str:
    if not isinstance(theirs, dict):
        return "no identity"
    return ", ".join(f"{k}: {theirs.get(k)!r}" for k in mine if theirs.get(k) != mine[k]) or "another identity"


# ------------------------------------------------------------------------------------ starting one
def start(helper: Helper, idle: float) -> bool:
    """Start the helper in the background (it detaches: ``mmcli.serve.daemon.main``); False when one
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
    code = f"import sys; sys.path[0] = {package_parent!r}; from mmcli.serve.daemon import main; main()"
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
