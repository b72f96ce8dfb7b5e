"""Talking to a resident helper: one request per connection, lines of ASCII JSON.

The client sends ``{"identity", "op", "body"}``; the helper answers ``{"ack": <its identity>}`` at once
(within ``ACK_TIMEOUT``), then any number of ``{"progress"}``, ``{"labels"}``, ``{"warnings"}`` and
``{"item"}`` lines, blank lines as a heartbeat while it works (one at least every ``HEARTBEAT`` seconds),
and one final line: ``{"reply"}``, ``{"error"}`` (an MmcliError: message, hint, exit code) or
``{"decline"}`` (this helper cannot do it: the command works in-process). Bodies, replies and items are
written and read by ``mmcli.wire``, the server's format. Standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import Callable, Iterator
from typing import Any

from mmcli.helper.place import Helper

CONNECT_TIMEOUT = 0.5  # seconds: a helper that does not take the connection by then is not used
ACK_TIMEOUT = 1.5  # seconds for the acknowledgement: a hung helper costs this, then the work is done here
GAP_TIMEOUT = 10.0  # seconds without a byte while the helper works (it sends a heartbeat every HEARTBEAT)
HEARTBEAT = 0.5
MAX_LINE = 256 * 1024 * 1024


class Unusable(Exception):
    """The helper cannot answer this command (none, dead, hung, foreign, gone): it is done in-process."""


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


def messages(helper: Helper, op: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Send one request; its messages as (kind, value), the last one's kind one of ``FINAL``. Unusable
    when the helper cannot be used (before its first message: nothing was done there that this process
    must know of). The connection closes with the generator."""
    sock = connect(helper)
    try:
        try:
            send_line(sock, {"identity": helper.identity, "op": op, "body": body})
        except OSError as exc:
            raise Unusable(f"it does not take the request ({exc.__class__.__name__})") from None
        lines = read_lines(sock, ACK_TIMEOUT, GAP_TIMEOUT)
        ack = next(lines).get("ack")
        if ack != helper.identity:
            raise Unusable("it is another helper (" + _difference(helper.identity, ack) + ")")
        for message in lines:
            ((kind, value),) = message.items()
            yield kind, value
            if kind in FINAL:
                return
        raise Unusable("it closed the connection")  # pragma: no cover - read_lines raises first
    finally:
        sock.close()


def exchange(
    helper: Helper, op: str, body: dict[str, Any], on_message: Callable[[str, Any], None] | None = None
) -> tuple[str, Any]:
    """Send one request; hand every message before the last to ``on_message``; the last one, as
    (kind, value) with kind one of ``FINAL``. Unusable as ``messages``."""
    for kind, value in messages(helper, op, body):
        if kind in FINAL:
            return kind, value
        if on_message is not None:
            on_message(kind, value)
    raise Unusable("it closed the connection")  # pragma: no cover - messages ends with a final one


def _difference(mine: dict[str, Any], theirs: Any) -> str:
    if not isinstance(theirs, dict):
        return "no identity"
    return ", ".join(f"{k}: {theirs.get(k)!r}" for k in mine if theirs.get(k) != mine[k]) or "another identity"
