"""Test-only fault points: make the process die at a named moment, deterministically.

``MMCLI_FAULT=NAME[:N][,NAME[:N]...]`` makes the process SIGKILL itself the Nth time (default: the
first) it reaches ``fault_point(NAME)``. Kill tests use it instead of sleeping and hoping the kill
lands mid-work. With the variable unset a fault point costs one dictionary lookup.

Named points (grep ``fault_point(`` for the list):
    index.commit        after a batch of embeddings is committed to SQLite
    index.decoding      while decoding helper processes are running
    index.faiss-write   after the FAISS file's temporary copy is written, before it replaces the old one
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def _armed() -> dict[str, int]:
    from mmcli.config import settings

    wanted: dict[str, int] = {}
    for part in settings().fault.split(","):
        name, _, nth = part.strip().partition(":")
        if name:
            wanted[name] = int(nth) if nth.isdigit() else 1
    return wanted


def fault_point(name: str) -> None:
    """SIGKILL this process here if ``MMCLI_FAULT`` names this point (and this is its Nth visit)."""
    if not os.environ.get("MMCLI_FAULT"):
        return
    nth = _armed().get(name)
    if nth is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
