"""The resident helper against the cold command: whole `mmcli` processes under `/usr/bin/time -v`.

    python scripts/bench_daemon.py                  # 10k-image index, ViT-B-32-256 stand-in weights
    python scripts/bench_daemon.py --runs 9 --out bench-daemon.json

Each round runs the same command twice, alternating: in-process (MMCLI_DAEMON=off) and answered by
the helper (started by the first round, waited for). Every search has a text never seen before, so
each one embeds it (ONNX text tower); stdout is a pipe (JSON Lines) unless a format is named.
Reports medians of wall time and peak RSS (``Maximum resident set size`` of the `mmcli` process;
the helper's own memory is its status's, once). Classification: one 2 MP image, two new labels,
mmcli-tiny (a small model: this shows what the helper saves, not what a big model costs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from bench import make_weights, synthetic_index  # noqa: E402

from mmcli.demo.shapes import photo_like  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds: user + system) of ``mmcli args`` under /usr/bin/time -v."""
    out = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "mmcli", *args], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    wall = rss = cpu = 0.0
    for line in out.stderr.splitlines():
        line = line.strip()
        if line.startswith(("User time (seconds)", "System time (seconds)")):
            cpu += float(line.rsplit(" ", 1)[1])
        elif line.startswith("Elapsed (wall clock) time"):
            parts = line.rsplit(" ", 1)[1].split(":")
            wall = sum(float(p) * 60**i for i, p in enumerate(reversed(parts)))
        elif line.startswith("Maximum resident set size"):
            rss = int(line.rsplit(" ", 1)[1]) / 1024
    return wall, rss, cpu


def helper_status(env: dict[str, str], kind: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "mmcli", "daemon", "-f", "json"], env=env, capture_output=True)
    found = [h for h in json.loads(out.stdout or b"[]") if h["kind"] == kind]
    return found[0] if found else {}


def wait_for_helper(env: dict[str, str], kind: str) -> None:
    deadline = time.time() + 600
    while not helper_status(env, kind):
        if time.time() > deadline:
            raise RuntimeError("no helper came up")
        time.sleep(0.5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helper_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def rounds(name: str, make_args: Any, env: dict[str, str], runs: int, kind: str) -> dict[str, Any]:
    """``runs`` pairs, alternating: in-process, then through the helper (whose CPU time is counted too)."""
    off = {**env, "MMCLI_DAEMON": "off"}
    helper = int(helper_status(env, kind)["pid"])
    cold, warm, helper_cpu = [], [], []
    for i in range(runs):
        cold.append(timed(make_args(f"cold {i}"), off))
        before = cpu_seconds(helper)
        warm.append(timed(make_args(f"warm {i}"), env))
        helper_cpu.append(cpu_seconds(helper) - before)
    med = statistics.median
    result = {
        "cold_s": med(w for w, _, _ in cold),
        "cold_rss_mb": med(r for _, r, _ in cold),
        "cold_cpu_s": med(c for _, _, c in cold),
        "warm_s": med(w for w, _, _ in warm),
        "warm_rss_mb": med(r for _, r, _ in warm),
        "warm_cpu_s": med(c for _, _, c in warm),
        "helper_cpu_s": med(helper_cpu),
        "cold_all_s": [round(w, 3) for w, _, _ in cold],
        "warm_all_s": [round(w, 3) for w, _, _ in warm],
        "warm_all_rss_mb": [round(r, 1) for _, r, _ in warm],
        "load": os.getloadavg(),
    }
    print(
        f"{name}: cold {result['cold_s']:.3f} s wall, {result['cold_cpu_s']:.2f} s CPU, "
        f"{result['cold_rss_mb']:.0f} MB; "
        f"helper {result['warm_s']:.3f} s wall ({result['warm_s'] / result['cold_s']:.2f}x), CPU "
        f"{result['warm_cpu_s']:.3f} s + {result['helper_cpu_s']:.3f} s in the helper, {result['warm_rss_mb']:.0f} MB; "
        f"wall runs {result['warm_all_s']} vs {result['cold_all_s']}; load {result['load'][0]:.1f}",
        flush=True,
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=None)
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmb", dir="/tmp"))
    env = {
        **os.environ,
        "MMCLI_HOME": str(work / "home"),
        "MMCLI_CACHE": str(work / "cache"),
        "XDG_RUNTIME_DIR": str(work),
        "MMCLI_SERVER": "off",
        "MMCLI_DAEMON": "on",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT.parent),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached after the first run
    os.environ.update({k: env[k] for k in ("MMCLI_HOME", "MMCLI_CACHE")})
    weights = make_weights(work)
    index = work / "home" / "indexes" / "bench"
    synthetic_index(index, None, opts.rows, weights)
    image = work / "photo.jpg"
    photo_like(1732, 1155, seed=5).save(image, quality=90)
    off = {**env, "MMCLI_DAEMON": "off"}
    timed(["search", "the first text: exports the ONNX tower", "--index", "bench"], off)
    timed(["search", "a first search starts the helper", "--index", "bench"], env)
    wait_for_helper(env, "search")
    results: dict[str, Any] = {}
    start = [
        subprocess.run(
            ["/usr/bin/time", "-f", "%e %U %S", sys.executable, "-c", "pass"], capture_output=True, text=True
        )
        for _ in range(5)
    ]
    walls = [float(p.stderr.split()[0]) for p in start]
    cpus = [float(p.stderr.split()[1]) + float(p.stderr.split()[2]) for p in start]
    results["python_start"] = {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}
    print(f"python -c pass: {statistics.median(walls):.3f} s wall, {statistics.median(cpus):.3f} s CPU", flush=True)
    search = ["search", "--index", "bench"]
    results["search"] = rounds("search (jsonl)", lambda t: [*search, f"a new text, {t}"], env, opts.runs, "search")
    table = [*search, "-f", "table"]
    results["search_table"] = rounds("search -f table", lambda t: [*table, f"a table, {t}"], env, opts.runs, "search")
    status = helper_status(env, "search")
    results["helper_rss_mb"] = helper_rss_mb(int(status["pid"]))
    print(f"search helper: pid {status['pid']}, RSS {results['helper_rss_mb']:.0f} MB", flush=True)
    classify = ["classify", str(image), "--model", "mmcli-tiny", "--labels"]
    timed([*classify, "first", "labels"], env)
    wait_for_helper(env, "classify")
    two_labels = lambda t: [*classify, f"{t} a", f"{t} b"]  # noqa: E731
    results["classify"] = rounds("classify one image", two_labels, env, opts.runs, "classify")
    subprocess.run([sys.executable, "-m", "mmcli", "daemon", "stop"], env=env, capture_output=True)
    results["machine"] = {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": sys.version.split()[0]}
    if opts.out:
        opts.out.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
