"""Talking to a running `mmcli serve`: finding it, and calling it with plain urllib.

A server is used when given (``--server URL`` / ``MMCLI_SERVER``) or found (``server.json`` in
MMCLI_HOME, written by `mmcli serve`, whose process is alive and which serves the same index).
When it cannot be reached the caller works in-process instead; the output is the same.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mmcli.errors import MmcliError, UsageError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_server(explicit: str | None, index_folder: Path | None) -> tuple[str | None, bool]:
    """(url or None, whether the user asked for it explicitly)."""
    from mmcli.serve import discovery_file

    if explicit:
        return explicit.rstrip("/"), True
    from mmcli.config import settings

    env = settings().server
    if env == "off":
        return None, False
    if env:
        return env.rstrip("/"), True
    try:
        info = json.loads(discovery_file().read_text())
    except (OSError, ValueError):
        return None, False
    if not isinstance(info, dict) or not _alive(int(info.get("pid", 0))):
        return None, False
    if index_folder is not None and Path(info.get("index", "")) != index_folder:
        return None, False
    return str(info.get("url", "")).rstrip("/") or None, False


def call(
    url: str, endpoint: str, payload: dict[str, Any], timeout: float = 60, explicit: bool = True
) -> dict[str, Any] | None:
    """POST JSON; the decoded reply, or None to work in-process: the server cannot be reached, or a
    server that was only found (not named) refuses a path outside its allowed roots."""
    data = json.dumps(payload, ensure_ascii=True).encode()
    req = urllib.request.Request(url + endpoint, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())
        except ValueError:
            detail = {}
        if exc.code == 403 and not explicit:
            return None
        message = f"server {url}: {detail.get('error') or exc.reason}"
        if exc.code in (400, 403, 413, 422):
            raise UsageError(message, hint=detail.get("hint")) from None
        raise MmcliError(message) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None
