"""Killing `mmcli index` and checking what must hold afterwards: the one harness the kill tests share.

``run_killed(cmd, fault)`` runs the real ``mmcli index`` with ``MMCLI_FAULT`` set, so it SIGKILLs
itself at a named moment (see ``mmcli.faults``), and clears away any process it left behind.
``check_index`` is what must hold after any kill; ``check_complete`` what a finished run must give.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from conftest import TINY

from mmcli.demo.shapes import all_specs, draw_shape

Row = tuple[Any, ...]  # (id, path, size, mtime_ns, hash, status, error, vector) as stored


def draw_pngs(folder: Path, n: int, seed: int = 10_000) -> list[Path]:
    """``n`` small PNGs named 0000.png, 0001.png, ...: every colour x shape in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i:04d}.png"
        draw_shape(all_specs()[i % 32], size=96, seed=seed + i).save(p)
        paths.append(p)
    return paths


def index_command(folder: Path, index: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mmcli", "index", str(folder), "--index", str(index), "-q", *options]


def run_killed(cmd: list[str], fault: str, timeout: float = 300) -> list[int]:
    """Run ``cmd`` with ``MMCLI_FAULT=fault``; it must die of SIGKILL (else the point was never reached).
    Returns the processes of its group that outlived it (and were then killed)."""
    env = {**os.environ, "MMCLI_FAULT": fault}
    with tempfile.TemporaryFile() as err:  # not a pipe: a leftover helper would hold it open
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        proc.wait(timeout=timeout)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"{fault}: exit {proc.returncode}, not killed there\n{stderr}"
    return end_process_group(proc.pid, f"MMCLI_FAULT={fault}")


def run_to_the_end(cmd: list[str]) -> None:
    """The next `mmcli index` after a kill: not locked out, finishes."""
    done = subprocess.run(cmd, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(int(entry))
    return found


def end_process_group(pgid: int, what: str, grace: float = 3.0) -> list[int]:
    """Wait up to ``grace`` s for what is left of a killed indexer's process group to exit, then
    SIGKILL it (a leftover forked decoding helper keeps the index lock: the next run is locked out).

    Returns the processes that were still there after the grace time, with a warning naming them.
    """
    deadline = time.monotonic() + grace
    while (members := _group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not members:
        return []
    warnings.warn(f"{what}: processes {members} outlived the killed indexer; killed them", stacklevel=3)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_members(pgid), f"process group {pgid} survived SIGKILL"
    return members


def check_index(index: Path) -> dict[str, Row]:
    """What must hold after any kill: mmcli opens the index, SQLite's integrity check passes and no
    path is stored twice. Returns the stored rows by path."""
    from mmcli.index.store import Store

    Store(index).close()  # opens: schema, format version, no corruption
    db = sqlite3.connect(index / "index.sqlite", timeout=30)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT id, path, size, mtime_ns, hash, status, error, vector FROM files").fetchall()
    finally:
        db.close()
    paths = [os.fsdecode(r[1]) for r in rows]
    assert len(paths) == len(set(paths)), "a path is stored twice"
    return dict(zip(paths, rows))


def assert_kept(before: dict[str, Row], after: dict[str, Row]) -> None:
    """Every row of ``before`` (committed before a kill) is in ``after``, unchanged."""
    lost = sorted(set(before) - set(after))
    assert not lost, f"{len(lost)} committed rows lost, e.g. {lost[:3]}"
    changed = sorted(p for p in before if before[p] != after[p])
    assert not changed, f"{len(changed)} committed rows rewritten, e.g. {changed[:3]}"


@cache
def _tiny_encoder() -> Any:
    from mmcli.models import load_encoder, parse_model_spec

    return load_encoder(parse_model_spec(TINY), device="cpu", precision="auto")


def check_complete(index: Path, good: Sequence[Path], bad: Sequence[Path] = ()) -> dict[str, Row]:
    """After a finished run: every file exactly once, ``bad`` ones failed, and each stored vector
    equal to a fresh embedding of its file (cosine > 0.9999)."""
    from mmcli.embedding.batch import embed_stream

    rows = check_index(index)
    assert set(rows) == {str(p) for p in good} | {str(p) for p in bad}
    assert {p for p, r in rows.items() if r[5] == "failed"} == {str(p) for p in bad}
    fresh = {v.path: v.vector for v in embed_stream(_tiny_encoder(), [str(p) for p in good], workers=1)}
    assert set(fresh) == {str(p) for p in good}
    for path, vector in fresh.items():
        stored = np.frombuffer(rows[path][7], np.float32)
        assert float(stored @ vector) > 0.9999, path
    return rows


def stopped_at(cmd: list[str], fault: str) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group; return once it has stopped itself at ``fault``."""
    proc = subprocess.Popen(
        cmd, env={**os.environ, "MMCLI_FAULT": fault}, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state == "T":
            return proc
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError(f"never stopped at {fault}")
