"""Whole-process timings of two mmcli source trees, runs alternating, under /usr/bin/time -v: medians of
wall time, CPU time (user + sys) and peak RSS. For a machine shared with other work, where only paired
runs compare.

    git archive BASE_COMMIT | tar -x -C /tmp/base
    python scripts/bench_paired.py --base /tmp/base --work /tmp/paired [--runs 9] [search] [first] [add]

search: a new text on a 10k-image index (random stand-in vectors), each tree with its own cache, the
        towers exported before the first timed run;
first:  `mmcli index` of 8 photos with a model new to the cache, then the first search and a second one;
add:    one new 12 MP JPEG added to an index with `mmcli index`, then a cold `classify` of that photo.
Model: ViT-B-32-256 with random stand-in weights (bench.py's). Bytecode caches are allowed to be written
(as an installed mmcli has them).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402

from mmcli.demo.shapes import photo_like  # noqa: E402


class Paired:
    def __init__(self, trees: dict[str, Path], work: Path) -> None:
        self.trees, self.work = trees, work
        self.weights = work / "standin.safetensors"
        self.model = ["--model", bench.ARCH, "--weights", str(self.weights)]

    def timed(self, tree: str, args: list[str], cache: Path) -> dict[str, float]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMCLI_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            PYTHONPATH=str(self.trees[tree]),
            MMCLI_CACHE=str(cache),
            MMCLI_HOME=str(self.work / "home"),
            MMCLI_SERVER="off",
            HF_HUB_OFFLINE="1",
        )
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mmcli", *args]
        r = subprocess.run(cmd, capture_output=True, env=env, cwd=self.work)  # (not where a tree's mmcli/ is)
        err = r.stderr.decode(errors="replace")
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} ({tree}) failed: {err[-2000:]}")

        def field(name: str) -> str:
            found = re.search(rf"{re.escape(name)}: (.+)", err)
            assert found is not None, name
            return found.group(1).strip()

        *hm, s = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
        wall = float(s) + sum(float(x) * 60 ** (len(hm) - i) for i, x in enumerate(hm))
        cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
        return {"wall": wall, "cpu": cpu, "rss": int(field("Maximum resident set size (kbytes)")) / 1024}

    def order(self, i: int) -> list[str]:
        names = list(self.trees)
        return names if i % 2 == 0 else names[::-1]

    def search(self, runs: int) -> dict[str, list[dict[str, float]]]:
        index = self.work / "idx10k"
        if not (index / "index.sqlite").exists():
            bench.synthetic_index(index, None, 10_000, self.weights)
        out: dict[str, list[dict[str, float]]] = {t: [] for t in self.trees}
        for tree in self.trees:  # the first use exports the text tower
            self.timed(tree, ["search", "warm-up", "--index", str(index)], self.work / f"cache-{tree}")
        for i in range(runs):
            for tree in self.order(i):
                query = f"a photo number {i} of a {tree} {time.time_ns()}"
                out[tree].append(
                    self.timed(tree, ["search", query, "--index", str(index)], self.work / f"cache-{tree}")
                )
        return out

    def first(self, runs: int) -> dict[str, list[dict[str, float]]]:
        few = self.work / "few"
        if not few.exists():
            few.mkdir()
            for i in range(8):
                photo_like(1732, 1155, seed=500 + i).save(few / f"mid_{i}.jpg", quality=90)
        out: dict[str, list[dict[str, float]]] = {
            f"{t} {k}": [] for t in self.trees for k in ("index", "first", "second")
        }
        for i in range(runs):
            for tree in self.order(i):
                cache, index = self.work / f"first-cache-{tree}", self.work / f"first-idx-{tree}"
                for p in (cache, index):
                    shutil.rmtree(p, ignore_errors=True)
                out[f"{tree} index"].append(
                    self.timed(tree, ["index", str(few), "--index", str(index), *self.model, "-q"], cache)
                )
                for k in ("first", "second"):
                    args = ["search", f"the {k} query {i}", "--index", str(index), "-k", "5"]
                    out[f"{tree} {k}"].append(self.timed(tree, args, cache))
        return out

    def add(self, runs: int) -> dict[str, list[dict[str, float]]]:
        big = self.work / "big.jpg"
        if not big.exists():
            photo_like(4000, 3000, seed=7).save(big, quality=90)
        data = big.read_bytes()
        out: dict[str, list[dict[str, float]]] = {f"{t} {k}": [] for t in self.trees for k in ("add", "classify")}
        for tree in self.trees:
            cache, folder, index = (self.work / f"add-{x}-{tree}" for x in ("cache", "photos", "idx"))
            for p in (cache, folder, index):
                shutil.rmtree(p, ignore_errors=True)
            folder.mkdir()
            (folder / "first.jpg").write_bytes(data)
            self.timed(tree, ["index", str(folder), "--index", str(index), *self.model, "-q"], cache)
            self.timed(tree, ["classify", str(folder / "first.jpg"), "--labels", "warm", "up", *self.model], cache)
        for i in range(runs):
            for tree in self.order(i):
                cache, folder, index = (self.work / f"add-{x}-{tree}" for x in ("cache", "photos", "idx"))
                photo = folder / f"new_{i}.jpg"
                photo.write_bytes(data + bytes([i % 256]) * (i + 1))  # new bytes: embedded, not reused by hash
                out[f"{tree} add"].append(self.timed(tree, ["index", str(folder), "--index", str(index), "-q"], cache))
                labels = ["--labels", f"label {i}a", f"label {i}b"]
                out[f"{tree} classify"].append(self.timed(tree, ["classify", str(photo), *labels, *self.model], cache))
        return out


def show(title: str, rows: dict[str, list[dict[str, float]]], loads: tuple[float, float]) -> None:
    print(f"\n{title} (load average {loads[0]:.1f} -> {loads[1]:.1f})")
    for name, runs in rows.items():
        med: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss")}
        lo, hi = min(r["wall"] for r in runs), max(r["wall"] for r in runs)
        print(
            f"  {name:18s} wall {med['wall']:.2f} s (min {lo:.2f}, max {hi:.2f}), CPU {med['cpu']:.2f} s, "
            f"peak RSS {med['rss']:.0f} MB ({len(runs)} runs)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="the other source tree (e.g. a git archive of main)")
    ap.add_argument("--work", type=Path, required=True, help="a folder for weights, indexes and caches")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("what", nargs="*", default=["search", "first", "add"])
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    paired = Paired({"base": args.base.resolve(), "this": ROOT}, args.work.resolve())
    if not paired.weights.exists():
        bench.make_weights(args.work)
    titles = {
        "search": "cold `mmcli search`, a new text, 10k-image index",
        "first": "`mmcli index` of 8 photos with a model new to the cache, then the first and second search",
        "add": "one 12 MP photo added by `mmcli index`, then a cold `classify` of it",
    }
    for what in args.what:
        before = os.getloadavg()[0]
        runs = args.runs if what == "search" else max(3, args.runs // 2)
        rows = getattr(paired, what)(runs)
        show(titles[what], rows, (before, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
