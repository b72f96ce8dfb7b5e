"""The query path's figures for scripts/bench.py: the first search after `mmcli index`, a new query in a
cold process, and adding one photo to an index against a cold `mmcli classify` of one photo.

Each figure is a whole process (`python -m mmcli ...`): wall time and peak RSS (VmHWM), medians of a
few runs. ``run(cmd, env)`` is bench.py's runner.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MMCLI = [sys.executable, "-m", "mmcli"]
Run = Callable[[list[str], dict[str, str]], dict[str, Any]]


def export_towers(env: dict[str, str], arch: str, weights: Path) -> None:
    """The towers into ``env``'s cache first, so the indexing figures measure indexing alone."""
    code = (
        "from mmcli.models import parse_model_spec\n"
        "from mmcli.models.towers import ensure_towers\n"
        f"assert not ensure_towers(parse_model_spec({arch!r}, {str(weights)!r}))\n"
    )
    subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, check=True)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def query_figures(
    run: Run, tmpdir: Path, env: dict[str, str], arch: str, weights: Path, corpus: list[Path], smoke: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    model = ["--model", arch, "--weights", str(weights)]
    repeats = 2 if smoke else 5

    # a model new to this machine: `mmcli index` embeds with torch and exports the towers; then the first search
    fresh = {**env, "MMCLI_CACHE": str(tmpdir / "cache-after-index")}
    few = tmpdir / "few"
    few.mkdir()
    for p in corpus[-8:]:
        shutil.copy(p, few / p.name)
    indexed = run([*MMCLI, "index", str(few), "--index", str(tmpdir / "idx-few"), *model, "-q"], fresh)
    out["index_8_with_export_s"] = indexed["seconds"]
    search = [*MMCLI, "search", "--index", str(tmpdir / "idx-few"), "-k", "5"]
    first = run([*search, "the first query after indexing"], fresh)
    out["first_search_after_index_s"], out["first_search_after_index_rss_mb"] = first["seconds"], first["rss_mb"]
    later = [run([*search, f"another query {i}"], fresh) for i in range(repeats)]
    out["search_after_index_s"] = _median(later, "seconds")

    # one new 12 MP photo into an index that has the towers, against a cold classify of one such photo
    folder, index = tmpdir / "add", tmpdir / "idx-add"
    folder.mkdir()
    big = [p for p in corpus if p.name.startswith("big_")] or corpus[:1]
    shutil.copy(big[0], folder / "first.jpg")
    run([*MMCLI, "index", str(folder), "--index", str(index), *model, "-q"], env)
    adds, classifies = [], []
    for i in range(repeats):
        photo = folder / f"new_{i}.jpg"
        photo.write_bytes(big[i % len(big)].read_bytes() + bytes([i]))  # new bytes: embedded, not reused
        adds.append(run([*MMCLI, "index", str(folder), "--index", str(index), "-q"], env))
        labels = ["--labels", f"label {i}a", f"label {i}b"]
        classifies.append(run([*MMCLI, "classify", str(photo), *labels, *model], env))
    out["add_one_photo_s"], out["add_one_photo_rss_mb"] = _median(adds, "seconds"), _median(adds, "rss_mb")
    out["classify_one_new_photo_s"] = _median(classifies, "seconds")
    return out


def report(res: dict[str, Any]) -> None:
    q = res["query"]
    print(
        f"| first search after `mmcli index` of a model new to the machine, s / MB | "
        f"{q['first_search_after_index_s']:.2f} / {q['first_search_after_index_rss_mb']:.0f} | "
        f"then {q['search_after_index_s']:.2f} s (median); `mmcli index` of 8 files incl. exporting the towers "
        f"{q['index_8_with_export_s']:.1f} s |"
    )
    print(
        f"| adding one 12 MP photo to an index (`mmcli index`, median), s / MB | {q['add_one_photo_s']:.2f} / "
        f"{q['add_one_photo_rss_mb']:.0f} | {q['add_one_photo_s'] / q['classify_one_new_photo_s']:.2f}x a cold "
        f"`classify` of one such photo ({q['classify_one_new_photo_s']:.2f} s); target 1.5x |"
    )
