"""How far one machine goes (issue 26.5): indexes of 1k to 1M images (10M with --10m), built through the
import path, then searched by whole `mmcli` processes.

    python scripts/bench_scale.py                        # 1k, 10k, 100k, 1M: one command, progress on stderr
    python scripts/bench_scale.py --sizes 10k 100k       # a dry run
    python scripts/bench_scale.py --10m                  # adds 10M (a machine with ~64 GB of memory and disk)
    python scripts/bench_scale.py --rclip-data /tmp/rclip-data   # and rclip 3.3 side by side (below)
    python scripts/bench_scale.py --smoke                # seconds, mmcli-tiny, 500 rows: checks the harness

For each size N: N vectors are written as `mmcli embed -o` shards (``latent_vectors`` of scripts/bench.py:
clustered with a low intrinsic dimension, as CLIP's are; recorded as made by ViT-B-32-256 with stand-in
weights), every path a file that does not exist here except a few probe pictures that do; then
`mmcli index --from-embeddings SHARDS --keep-not-found` builds the index (timed, peak RSS). Then, per round
(medians over --runs rounds, alternated: cold, warm, cold auto, warm auto):
  cold   a fresh `mmcli search TEXT` process with MMCLI_DAEMON=off (the OS page cache is warm: files just read)
  warm   `mmcli search TEXT` as typed, answered by the resident helper started before the rounds
  auto   the same with `--threshold auto`
Every query text is embedded once before the rounds (the text cache holds it: no model work is timed).
Peak RSS: of each command (/usr/bin/time -v), and of the helper (its VmHWM after the rounds). Disk: the
index's files (`mmcli info`'s size) per image. Recall@10: the hits of `mmcli search` against those of
`mmcli search --exact`, for the query texts and for the probe pictures as queries (in-distribution).

--rclip-data DIR (export_rclip.py's output; rclip 3.3 in RVENV, default /tmp/venv-rclip): the vectors are
then rclip_scale.py's (random unit vectors, seed N: the ones `synthetic_index` writes too) and its stand-in
weights are mmcli's model; for each size /work/shared/anchors/rclip_scale.py times rclip's cold query on
the same vectors between two blocks of mmcli's cold searches (its script builds and removes its database).
Prints a Markdown table, writes JSON (scripts/results/ unless --out), removes what it built unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from bench import ARCH, cpu_name, make_weights  # noqa: E402

TEXTS = ("a red car", "a dog on a beach", "mountains at sunset", "a birthday cake", "a city at night")
PROBES = 5  # rows whose files exist here: the in-distribution queries of the recall figure
SHARD_ROWS = 100_000
RCLIP_SCALE = Path("/work/shared/anchors/rclip_scale.py")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def size_arg(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmM]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: a number, or with k or M (10k, 1M)")
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]


# ---------------------------------------------------------------------------------------- vectors
def latent_blocks(n: int, d: int = 512, k: int = 64, seed: int = 0) -> Iterator[np.ndarray]:
    """The rows of ``bench.latent_vectors(n, d, k, seed)``, 100k at a time (the same generator calls in the
    same order; tests/test_bench_scale.py checks they are the same rows)."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(k, d)).astype(np.float32)
    centers = rng.normal(size=(1000, k)).astype(np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = centers[rng.integers(0, 1000, m)] + rng.normal(size=(m, k)).astype(np.float32)
        out = z @ proj + rng.normal(size=(m, d)).astype(np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield out


def random_blocks(n: int, d: int = 512, block: int = 100_000) -> Iterator[np.ndarray]:
    """rclip_scale.py's vectors (and ``synthetic_index``'s): ``default_rng(n).normal(size=(n, d))``, unit rows."""
    rng = np.random.default_rng(n)
    for s in range(0, n, block):
        out = rng.normal(size=(min(block, n - s), d)).astype(np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        yield out


def write_shards(folder: Path, files: Path, blocks: Iterator[np.ndarray], n: int, model: str) -> list[Path]:
    """`mmcli embed -o` shards of ``n`` rows; the probes' rows name real pictures under ``files``."""
    from mmcli.demo.shapes import all_specs, draw_shape
    from mmcli.embedding.shards import ShardWriter

    probes = {j * n // PROBES: files / f"probe_{j}.jpg" for j in range(min(PROBES, n))}
    files.mkdir(parents=True, exist_ok=True)
    for j, path in enumerate(probes.values()):
        draw_shape(all_specs()[j], size=64, seed=j).save(path, quality=90)
    writer = ShardWriter(folder, SHARD_ROWS, model)
    row = 0
    for block in blocks:
        for vector in block:
            writer.add(str(probes.get(row, f"/bench-scale/{row // 1000:05d}/img_{row:08d}.jpg")), None, vector)
            row += 1
    writer.close()
    return list(probes.values())


# ------------------------------------------------------------------------------------- processes
def timed(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall seconds and peak RSS (MB) of ``mmcli args`` under /usr/bin/time -v; its stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        cmd = ["/usr/bin/time", "-v", "-o", report.name, sys.executable, "-m", "mmcli", *args]
        t = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if out.returncode != 0:
            raise RuntimeError(f"mmcli {' '.join(args)}: exit {out.returncode}\n{out.stderr[-2000:]}")
        rss = next(int(line.split()[-1]) / 1024 for line in report.read().splitlines() if "Maximum resident" in line)
    return {"s": wall, "rss_mb": rss, "stdout": out.stdout, "stderr": out.stderr}


def helper(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "mmcli", "daemon", "-f", "json"], env=env, capture_output=True)
    return next((h for h in json.loads(out.stdout or b"[]") if h["kind"] == "search"), {})


def wait_for_helper(env: dict[str, str]) -> dict[str, Any]:
    deadline = time.time() + 600
    while not (found := helper(env)):
        if time.time() > deadline:
            raise RuntimeError("no resident helper came up")
        time.sleep(0.3)
    return found


def peak_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def overlap(a: str, b: str) -> float:
    x, y = a.splitlines(), b.splitlines()
    return len(set(x) & set(y)) / max(len(y), 1)


# -------------------------------------------------------------------------------------- one size
def one_size(n: int, work: Path, env: dict[str, str], opts: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"n": n}
    shards, index = work / f"shards-{n}", work / f"index-{n}"
    t = time.perf_counter()
    dim = opts.dim
    blocks = random_blocks(n, dim) if opts.rclip_data else latent_blocks(n, dim)
    probes = write_shards(shards, work / f"files-{n}", blocks, n, opts.model_canonical)
    res["shards_s"] = time.perf_counter() - t
    res["shards_bytes_per_image"] = sum(p.stat().st_size for p in shards.iterdir()) / n
    say(f"{n:,}: shards written in {res['shards_s']:.0f} s; importing")
    built = timed(["index", "--from-embeddings", str(shards), "--index", str(index), "--keep-not-found", "-q"], env)
    res["import_s"], res["import_rss_mb"] = built["s"], built["rss_mb"]
    info = json.loads(timed(["info", "--index", str(index), "-f", "json"], env)["stdout"])
    assert info["ok"] == n, info
    res["bytes_per_image"] = info["size_bytes"] / n
    res["vector_index"] = info["vectors"]
    if not opts.keep:
        shutil.rmtree(shards)
    say(f"{n:,}: imported in {res['import_s']:.1f} s, peak RSS {res['import_rss_mb']:.0f} MB, "
        f"{res['bytes_per_image']:.0f} bytes per image; searching")  # fmt: skip
    off = {**env, "MMCLI_DAEMON": "off"}
    search = ["search", "--index", str(index), "-k", "10", "-f", "paths"]
    for text in TEXTS:  # each text embedded once: the rounds find it in the text cache
        timed([*search, text], off)
    timed([*search, TEXTS[0]], env)  # starts the helper
    started = wait_for_helper(env)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in ("cold", "warm", "cold_auto", "warm_auto")}
    rounds = opts.runs
    for r in range(rounds):
        text = TEXTS[r % len(TEXTS)]
        for key, how, extra in (("cold", off, []), ("warm", env, []), ("cold_auto", off, ["--threshold", "auto"]),
                                ("warm_auto", env, ["--threshold", "auto"])):  # fmt: skip
            before = int(helper(env).get("searches", 0)) if how is env else 0
            runs[key].append(timed([*search, text, *extra], how))
            if how is env:  # did the helper answer it (or did the command fall back to its own engine)?
                runs[key][-1]["helper"] = int(helper(env).get("searches", 0)) > before
    now = helper(env)
    res["helper_pid_same"] = now.get("pid") == started["pid"]
    for key in ("warm", "warm_auto"):
        res[f"{key}_by_helper"] = sum(g["helper"] for g in runs[key])
    res["helper_rss_mb"] = peak_mb(int(started["pid"])) if res["helper_pid_same"] else None
    for key, got in runs.items():
        res[f"{key}_s"] = statistics.median(g["s"] for g in got)
        res[f"{key}_rss_mb"] = statistics.median(g["rss_mb"] for g in got)
        res[f"{key}_all_s"] = [round(g["s"], 3) for g in got]
    say(f"{n:,}: cold {res['cold_s']:.2f} s, warm {res['warm_s']:.2f} s, auto {res['cold_auto_s']:.2f} / "
        f"{res['warm_auto_s']:.2f} s; helper {res['helper_rss_mb'] or 0:.0f} MB; recall")  # fmt: skip
    text_recall = [overlap(timed([*search, t], env)["stdout"], timed([*search, t, "--exact"], env)["stdout"])
                   for t in TEXTS]  # fmt: skip
    probe_recall = [overlap(timed([*search, str(p)], env)["stdout"], timed([*search, str(p), "--exact"], env)["stdout"])
                    for p in probes]  # fmt: skip
    res["recall10_texts"] = float(np.mean(text_recall))
    res["recall10_probes"] = float(np.mean(probe_recall))
    if opts.rclip_data:
        res["rclip"] = rclip_side_by_side(n, search, off, opts)
    subprocess.run([sys.executable, "-m", "mmcli", "daemon", "stop"], env=env, capture_output=True)
    if not opts.keep:
        shutil.rmtree(index)
        shutil.rmtree(work / f"files-{n}")
    return res


def rclip_side_by_side(n: int, search: list[str], off: dict[str, str], opts: argparse.Namespace) -> dict[str, Any]:
    """mmcli's cold searches, rclip_scale.py's cold queries (its own runs and median), mmcli's again."""

    def mmcli_block() -> list[float]:
        return [timed([*search, TEXTS[r % len(TEXTS)]], off)["s"] for r in range(opts.runs)]

    say(f"{n:,}: rclip 3.3 on the same vectors (rclip_scale.py builds its database first)")
    before = mmcli_block()
    renv = {**os.environ, "RVENV": str(opts.rclip_venv)}
    cmd = [sys.executable, str(RCLIP_SCALE), str(opts.rclip_data), str(n), "--runs", str(opts.runs)]
    out = subprocess.run(cmd, env=renv, capture_output=True, text=True)
    m = re.search(r"cold query median ([\d.]+) s over \d+ runs \(([^)]*)\)", out.stdout)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"rclip_scale.py: exit {out.returncode}\n{out.stdout[-1000:]}{out.stderr[-2000:]}")
    after = mmcli_block()
    mmcli_s = statistics.median(before + after)
    rclip_s = float(m.group(1))
    return {"rclip_cold_s": rclip_s, "rclip_all_s": m.group(2), "mmcli_cold_s": mmcli_s, "ratio": mmcli_s / rclip_s,
            "mmcli_all_s": [round(x, 3) for x in before + after]}  # fmt: skip


# ------------------------------------------------------------------------------------------ report
def report(res: dict[str, Any]) -> None:
    rows, runs = res["sizes"], res["runs"]
    base = next((r for r in rows if r["n"] == 1000), None)
    print(f"\nmmcli at scale: {res['cpu']}, {res['cores']} cores, {res['date']}, model {res['model']}, "
          f"vectors {res['vectors']}, medians of {res['runs']} rounds, load {res['load'][0]:.1f}\n")  # fmt: skip
    print("| index size | " + " | ".join(f"{r['n']:,}" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))

    def line(label: str, cell: Any) -> None:
        print(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")

    line("build: import, s", lambda r: f"{r['import_s']:.1f}")
    line("build: import peak RSS, MB", lambda r: f"{r['import_rss_mb']:.0f}")
    line("on disk, bytes per image", lambda r: f"{r['bytes_per_image']:,.0f}")
    line("vector index", lambda r: r["vector_index"])
    vs_1k = (lambda r: f" ({r['cold_s'] / base['cold_s']:.1f}x 1k)") if base else (lambda r: "")
    line("cold search, s", lambda r: f"{r['cold_s']:.2f}{vs_1k(r)}")
    line("cold search peak RSS, MB", lambda r: f"{r['cold_rss_mb']:.0f}")
    line("`--threshold auto`, cold, s", lambda r: f"{r['cold_auto_s']:.2f} ({r['cold_auto_s'] / r['cold_s']:.2f}x)")
    line("warm search as typed (helper), s", lambda r: f"{r['warm_s']:.3f}")
    line("`--threshold auto`, warm, s", lambda r: f"{r['warm_auto_s']:.3f} ({r['warm_auto_s'] / r['warm_s']:.2f}x)")
    line("warm rounds the helper answered", lambda r: f"{r['warm_by_helper']}+{r['warm_auto_by_helper']} of {2 * runs}")
    line("warm command peak RSS, MB", lambda r: f"{r['warm_rss_mb']:.0f}")
    line("helper peak RSS, MB", lambda r: f"{r['helper_rss_mb']:.0f}" if r["helper_rss_mb"] else "?")
    line("recall@10 vs --exact: texts / probes", lambda r: f"{r['recall10_texts']:.2f} / {r['recall10_probes']:.2f}")
    if any("rclip" in r for r in rows):
        line("rclip 3.3 cold query, s", lambda r: f"{r['rclip']['rclip_cold_s']:.2f}" if "rclip" in r else "")
        line("mmcli cold / rclip cold", lambda r: f"{r['rclip']['ratio']:.2f}x" if "rclip" in r else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=size_arg, default=None, help="default: 1k 10k 100k 1M")
    ap.add_argument("--10m", dest="ten_m", action="store_true", help="add 10M (a big machine)")
    ap.add_argument("--runs", type=int, default=5, help="rounds per size (medians)")
    ap.add_argument("--rclip-data", type=Path, default=None, help="export_rclip.py's folder: rclip side by side")
    ap.add_argument("--rclip-venv", type=Path, default=Path(os.environ.get("RVENV", "/tmp/venv-rclip")))
    ap.add_argument("--work", type=Path, default=None, help="where to build a folder of its own (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the shards and indexes built")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="mmcli-tiny, 500 rows, 1 round: checks the harness")
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (killed: what it built is still removed)
    sizes = opts.sizes or ([500] if opts.smoke else [1000, 10_000, 100_000, 1_000_000])
    sizes = sorted(set(sizes + ([10_000_000] if opts.ten_m else [])))
    opts.runs = 1 if opts.smoke else opts.runs
    if opts.work is not None:
        opts.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mmcli-scale-", dir=opts.work)).resolve()  # (removed at the end)
    run_dir = tempfile.mkdtemp(prefix="mms-", dir="/tmp")  # the helper's socket: a short path (AF_UNIX: 108 bytes)
    env = {**os.environ, "MMCLI_HOME": str(work / "home"), "MMCLI_CACHE": str(work / "cache"),
           "XDG_RUNTIME_DIR": run_dir, "MMCLI_SERVER": "off", "MMCLI_DAEMON": "on", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT.parent)}  # fmt: skip
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached after the first run
    for key in ("MMCLI_HOME", "MMCLI_CACHE"):
        os.environ[key] = env[key]
    try:
        if opts.smoke:
            from mmcli.models import parse_model_spec

            opts.model_canonical, opts.dim, name = parse_model_spec("mmcli-tiny").canonical, 64, "mmcli-tiny"
        else:
            weights = (opts.rclip_data / "w.safetensors") if opts.rclip_data else make_weights(work)
            say(f"stand-in weights: {weights}; exporting the model's towers (once)")
            from bench_query import export_towers

            export_towers(env, ARCH, weights)
            opts.dim, name = 512, f"{ARCH} (stand-in weights)"
            opts.model_canonical = f"{ARCH} --weights {weights.resolve()}"
        res: dict[str, Any] = {
            "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), "runs": opts.runs,
            "date": time.strftime("%Y-%m-%d"), "model": name, "sizes": [],
            "vectors": "random unit (rclip_scale.py's)" if opts.rclip_data else "latent_vectors (clustered)",
        }  # fmt: skip
        for n in sizes:
            res["sizes"].append(one_size(n, work, env, opts))
        res["load"] = os.getloadavg()
    finally:
        subprocess.run([sys.executable, "-m", "mmcli", "daemon", "stop"], env=env, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(res)
    out = opts.out or ROOT / "results" / f"bench-scale-{res['date']}-{platform.node() or 'host'}.json"
    if not opts.smoke or opts.out:
        out.write_text(json.dumps(res, indent=2) + "\n")
        say(f"wrote {out}")


if __name__ == "__main__":
    main()
