"""Before a Ray job: can every node read the files? (``--ray`` needs a shared filesystem.)

A tiny task on each node stats a few sample paths that this process can read; the first node that
cannot is named in one error, before any model is loaded anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mmcli.errors import MmcliError

SAMPLES = 3  # paths each node stats before the job


def check_shared_files(paths: Sequence[str], remote_args: dict[str, Any] | None = None) -> None:
    """Fail early, with a clear message, when a node of the cluster cannot read sample paths that
    this process can read: the files must be on a filesystem every worker mounts at the same path."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    samples = _samples(paths)
    if not samples:
        return
    probe = ray.remote(stat_paths)
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    refs = {
        n.get("NodeManagerAddress", n["NodeID"]): probe.options(
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            **(remote_args or {}),
        ).remote(samples)
        for n in nodes
    }
    problems = {node: ray.get(ref, timeout=300) for node, ref in refs.items()}
    complain(problems)


def complain(problems: dict[str, list[tuple[bytes, str]]]) -> None:
    """The error for the first node that could not read a sample path, if any."""
    for node, missing in problems.items():
        if missing:
            path, reason = missing[0]
            raise MmcliError(
                f"a Ray worker on {node} cannot read {os.fsdecode(path)} ({reason}): every node must see "
                "the files at the same paths",
                hint="put the images on a filesystem every Ray node mounts at the same place (NFS, a "
                "cluster filesystem); see the README, 'Large collections'",
            )


def _samples(paths: Sequence[str]) -> list[bytes]:
    """Up to SAMPLES paths that this process can stat: the first, the last, one between."""
    picks = sorted({0, len(paths) // 2, len(paths) - 1})
    found = [os.fsencode(os.path.abspath(paths[i])) for i in picks if _can_stat(paths[i])]
    if len(found) < min(SAMPLES, len(paths)):
        more = (os.fsencode(os.path.abspath(p)) for p in paths[:50] if _can_stat(p))
        found += [p for p in more if p not in found]
    return found[:SAMPLES]


def _can_stat(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def stat_paths(paths: list[bytes]) -> list[tuple[bytes, str]]:
    """On a worker node: the sample paths it cannot stat, with the reason."""
    missing = []
    for path in paths:
        try:
            os.stat(path)
        except OSError as exc:
            missing.append((path, exc.strerror or type(exc).__name__))
    return missing
