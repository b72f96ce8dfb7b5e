"""How soon `mmcli index DIR --watch` makes a new photo searchable, and how a burst is batched.

    python scripts/bench_watch.py                     # mmcli-tiny, 10 single photos, a burst of 2000
    python scripts/bench_watch.py --model vit-b-32 --photos 2000 --burst 5000

Starts the real command (a subprocess, its stderr read for each batch line), then, one at a time,
writes a new JPEG (complete: written, then renamed into place) into a folder already holding
``--photos`` photos and asks `mmcli search` (in this process, as a user's next command would) until
that file is among the results: the time from the rename to that answer. Then copies ``--burst``
photos in at once (``shutil.copytree``, as ``cp -r``) and counts the batches it took. Prints the
figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mmcli-tiny")
    ap.add_argument("--photos", type=int, default=200, help="photos in the folder before watching")
    ap.add_argument("--new", type=int, default=10, help="single photos written one at a time")
    ap.add_argument("--burst", type=int, default=2000, help="photos written at once, afterwards")
    args = ap.parse_args()

    from mmcli.demo.shapes import photo_like
    from mmcli.engine.local import LocalEngine
    from mmcli.queries import SearchRequest, build_terms

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, index = base / "photos", base / "idx"
        root.mkdir()
        for i in range(args.photos):
            photo_like(320, 240, seed=i).save(root / f"old{i:05d}.jpg", quality=85)
        env = {**os.environ, "MMCLI_HOME": str(base / "home"), "MMCLI_CACHE": str(base / "cache")}
        os.environ.update({k: env[k] for k in ("MMCLI_HOME", "MMCLI_CACHE")})
        cmd = [sys.executable, "-m", "mmcli", "index", str(root), "--index", str(index), "--model", args.model]
        proc = subprocess.Popen([*cmd, "--watch"], env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            print("  " + line.rstrip(), file=sys.stderr)
            if line.startswith("watching "):
                break
        engine = LocalEngine(index)
        query = SearchRequest(build_terms("a photo", None), top_k=100_000)
        engine.search(query)  # the text tower exported and warm, as for any later search
        waits = []
        try:
            for i in range(args.new):
                tmp_file = base / f"new{i}.part"
                photo_like(320, 240, seed=100_000 + i).save(tmp_file, "JPEG", quality=85)
                target = root / f"new{i:03d}.jpg"
                t0 = time.perf_counter()
                os.replace(tmp_file, target)
                while str(target) not in {h.path for h in engine.search(query).hits}:
                    time.sleep(0.05)
                waits.append(time.perf_counter() - t0)
            staged = base / "staged"
            staged.mkdir()
            for i in range(args.burst):
                photo_like(320, 240, seed=200_000 + i).save(staged / f"b{i:05d}.jpg", quality=85)
            t0 = time.perf_counter()
            shutil.copytree(staged, root / "burst")  # as `cp -r` would copy them in
            written = time.perf_counter() - t0
            batches = 0
            total = args.photos + args.new + args.burst
            for line in proc.stderr:
                print("  " + line.rstrip(), file=sys.stderr)
                seen = re.search(r"(\d+) scanned", line)  # a batch that saw the burst (earlier lines wait here too)
                batches += bool(seen) and int(seen.group(1)) > args.photos + args.new
                if len(engine.search(query).hits) >= total:
                    break
            burst_s = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"model {args.model}, {args.photos} photos watched")
    print(
        f"new photo searchable after: median {statistics.median(waits):.2f} s, max {max(waits):.2f} s "
        f"({len(waits)} photos, one at a time)"
    )
    print(f"burst of {args.burst}: copied in {written:.1f} s, all searchable after {burst_s:.1f} s, {batches} batches")


if __name__ == "__main__":
    main()
