"""A read-only index (a backup on read-only media, a shared folder) is searchable, and updating it
says "read-only" and never suggests a destructive fix."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

from mmcli.demo.shapes import write_corpus


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run mmcli with ``folder`` read-only: a read-only bind mount as root (root ignores permissions),
    the permission bits otherwise."""
    mmcli = shlex.join([sys.executable, "-m", "mmcli", *args])
    if os.geteuid() == 0:
        where = shlex.quote(str(folder))
        script = f"mount --bind {where} {where} && mount -o remount,bind,ro {where} && exec {mmcli}"
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, timeout=300)
    return subprocess.run(shlex.split(mmcli), capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ro")
    write_corpus(base / "photos", 12, seed=21)
    made = base / "made"
    r = run_mmcli("index", str(base / "photos"), "--index", str(made), "--model", TINY, "-q")
    assert r.returncode == 0, r.stderr.decode()
    folder = base / "backup"
    shutil.copytree(made, folder)
    for f in folder.glob("vectors.g*.faiss"):
        f.unlink()  # searches must build it in memory: nothing can be written
    if os.geteuid() == 0:
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("no mount namespace to make a read-only folder in")
    else:
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["search", "a red circle", "-k", "3", "-f", "jsonl"],
        ["info", "-f", "json"],
        ["dupes", "--threshold", "0.5", "-f", "jsonl"],
        ["cluster", "-k", "2", "-f", "jsonl"],
    ],
)
def test_a_read_only_index_answers(index: Path, args: list[str]) -> None:
    r = _read_only(index, *args, "--index", str(index))
    assert r.returncode == 0 and r.stdout, r.stderr.decode()
    assert b"corrupt" not in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize("extra", [[], ["--rebuild"]])
def test_updating_a_read_only_index_says_read_only(index: Path, extra: list[str]) -> None:
    r = _read_only(index, "index", str(index.parent / "photos"), "--index", str(index), *extra)
    assert r.returncode == 1 and b"read-only" in r.stderr, r.stderr.decode()
    assert b"--rebuild" not in r.stderr and b"corrupt" not in r.stderr and b"Traceback" not in r.stderr
    assert not list(index.glob("*.corrupt-*"))
