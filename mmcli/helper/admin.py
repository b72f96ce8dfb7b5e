"""This user's resident helpers, for `mmcli helper`: what each says of itself, and stopping them all."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcli.helper.place import Helper, runtime_dir
from mmcli.helper.talk import ACK_TIMEOUT, CONNECT_TIMEOUT, GAP_TIMEOUT, Unusable, connect, read_lines, send_line


@dataclass(frozen=True)
class HelperStatus:
    """A running helper, as it describes itself (``mmcli helper status``)."""

    kind: str  # "search" or "classify"
    target: str  # the index folder, or the --model given ("" for the default)
    model: str
    pid: int
    up_s: float
    idle_s: float  # since its last request
    idle_limit_s: float
    searches: int
    classifications: int
    socket: str


def status_of(path: Path, op: str = "status") -> HelperStatus | None:
    """What the helper at ``path`` says of itself (whatever its identity), or None if it does not
    answer as a helper. ``op="stop"``: and it exits."""
    reply = _ask(path, op)
    try:
        assert reply is not None
        ident, served = reply["identity"], reply["served"]
        return HelperStatus(
            str(ident["kind"]),
            str(ident["target"]),
            str(reply["model"]),
            int(reply["pid"]),
            float(reply["up_s"]),
            float(reply["idle_s"]),
            float(reply["idle_limit_s"]),
            int(served.get("search", 0)),
            int(served.get("classify", 0)),
            os.fspath(path),
        )
    except (AssertionError, AttributeError, KeyError, TypeError, ValueError):
        return None


def stop_all() -> tuple[int, int]:
    """Ask every helper of this user to exit; remove sockets nobody listens on. (stopped, removed)."""
    stopped = removed = 0
    for path in helpers():
        if status_of(path, "stop") is not None:
            stopped += 1
            continue
        try:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with probe:
                probe.settimeout(CONNECT_TIMEOUT)
                probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # stale: its helper is gone
            removed += 1
        except OSError:
            pass
    return stopped, removed


def _ask(path: Path, op: str) -> dict[str, Any] | None:
    helper = Helper({}, path)
    try:
        sock = connect(helper)
    except Unusable:
        return None
    try:
        send_line(sock, {"identity": None, "op": op, "body": {}})
        messages = read_lines(sock, ACK_TIMEOUT, GAP_TIMEOUT)
        next(messages)
        for message in messages:
            reply = message.get("reply")
            return reply if isinstance(reply, dict) else None
    except (OSError, Unusable):
        return None
    finally:
        sock.close()
    return None


def helpers() -> list[Path]:
    """The sockets in this user's runtime folder."""
    folder = runtime_dir(create=False)
    return sorted(folder.glob("*.sock")) if folder is not None else []
