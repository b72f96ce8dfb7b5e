"""mmcli's benchmark harness: one command, one machine, one model, every figure in the README.

    python scripts/bench.py                       # full run (~5-10 minutes on 2 cores)
    python scripts/bench.py --smoke               # a tiny corpus, seconds (what the test suite runs)
    python scripts/bench.py --out bench.json

Default architecture ViT-B-32-256 with random stand-in weights (same cost as the real ones, same
code path through --weights). Measures, on a generated corpus of photo-like JPEGs (12 MP and
2 MP: gradients, texture, noise) and PNGs:
  (a) model-only throughput on ready tensors (fp32 and the CPU's auto precision);
  (b) a naive reference loop: sequential PIL.Image.open + open_clip's preprocess + encode, batch 32, fp32;
  (c) `mmcli index` end to end (subprocess), auto precision and fp32;
  (d) cold wall time of `mmcli search` on a 10k index, and of `mmcli classify` on one image;
  (e) a no-op re-index of 10k unchanged files;
  (f) search latency p50/p99 at 100k and 1M synthetic vectors, exact and approximate, recall@10;
  (g) peak RSS of each command (and of indexing N vs 2N files);
  (h) the query path (scripts/bench_query.py): the first search after `mmcli index` of a model new to
      the machine, and adding one photo to an index against a cold `classify` of one photo;
  (i) with --rclip-data DIR (written by ../shared/anchors/export_rclip.py) and rclip 3.3 installed
      (--rclip): issue 20's targets against rclip on this corpus, alternated pairs (scripts/bench_rclip.py).
Prints a Markdown table with ratios and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_rclip  # noqa: E402
from bench_query import export_towers, query_figures  # noqa: E402
from bench_query import report as report_query  # noqa: E402

from mmcli.demo.shapes import photo_like  # noqa: E402

ARCH = "ViT-B-32-256"
MMCLI = [sys.executable, "-m", "mmcli"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _hwm_mb(pid: int) -> float:
    """The process's peak RSS so far (VmHWM: reset at exec, unlike getrusage's ru_maxrss)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _popen_rss(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``: wall time, its peak RSS (polled VmHWM of the main process), its output."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _hwm_mb(proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr[-2000:]}")
    return {"seconds": seconds, "rss_mb": peak, "stdout": stdout, "stderr": stderr}


def make_weights(folder: Path) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    path = folder / "standin.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def make_corpus(folder: Path, n12: int, n2: int, npng: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n12):
        p = folder / f"big_{i:03d}.jpg"
        photo_like(4000, 3000, seed=i).save(p, quality=90)
        paths.append(p)
    for i in range(n2):
        p = folder / f"mid_{i:03d}.jpg"
        photo_like(1732, 1155, seed=1000 + i).save(p, quality=90)
        paths.append(p)
    for i in range(npng):
        p = folder / f"png_{i:03d}.png"
        photo_like(1200, 900, seed=2000 + i).save(p)
        paths.append(p)
    return paths


def model_only(weights: Path, precision: str, batch: int, batches: int) -> float:
    from mmcli.models import load_encoder, parse_model_spec

    enc = load_encoder(parse_model_spec(ARCH, weights), device="cpu", precision=precision)
    x = np.random.default_rng(0).normal(size=(batch, 3, 256, 256)).astype(np.float32)
    enc.encode_images(x[:4])
    t = time.perf_counter()
    for _ in range(batches):
        enc.encode_images(x)
    return batches * batch / (time.perf_counter() - t)


def precision_agreement(weights: Path, paths: list[Path], precision: str) -> float:
    """Minimum cosine between fp32 and ``precision`` embeddings of the same images."""
    from mmcli.media.images import load_pixels
    from mmcli.models import load_encoder, parse_model_spec

    vecs = []
    for prec in ("fp32", precision):
        enc = load_encoder(parse_model_spec(ARCH, weights), device="cpu", precision=prec)
        vecs.append(enc.encode_images(np.stack([load_pixels(p, enc.preprocess) for p in paths])))
    return float((vecs[0] * vecs[1]).sum(axis=1).min())


def decode_rates(paths: list[Path]) -> dict[str, float]:
    """Images/s of one process decoding + preprocessing, with and without JPEG draft mode."""
    from mmcli.media.images import load_pixels
    from mmcli.media.preprocess import Preprocess

    pre = Preprocess(size=(256, 256))
    out = {}
    for name, fast in (("draft", True), ("full", False)):
        t = time.perf_counter()
        for p in paths:
            load_pixels(p, pre, fast_decode=fast)
        out[name] = len(paths) / (time.perf_counter() - t)
    return out


def naive_loop(weights: Path, paths: list[Path], batch: int = 32) -> float:
    """What a first script does: sequential open + open_clip preprocess + encode, fp32."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(weights))
    model.eval()
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            x = torch.stack([preprocess(Image.open(p)) for p in paths[start : start + batch]])
            f = model.encode_image(x)
            f / f.norm(dim=-1, keepdim=True)
    return len(paths) / (time.perf_counter() - t)


def decode_only(paths: list[Path]) -> float:
    from mmcli.embedding.batch import decode_stream
    from mmcli.media.preprocess import Preprocess

    t = time.perf_counter()
    for _ in decode_stream([str(p) for p in paths], Preprocess(size=(256, 256))):
        pass
    return len(paths) / (time.perf_counter() - t)


def synthetic_index(folder: Path, files_dir: Path | None, n: int, weights: Path, dim: int = 512) -> None:
    """An index of ``n`` rows with random unit vectors, recorded as built with the stand-in model.

    With ``files_dir``, n small real files are written and recorded with their true size and mtime,
    so that a re-index finds them unchanged (the no-op path).
    """
    from mmcli.index.store import Store
    from mmcli.index.vectors import load_or_rebuild
    from mmcli.media.preprocess import Preprocess
    from mmcli.media.taken import Taken

    rng = np.random.default_rng(n)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = Store(folder, create=True)
    from dataclasses import asdict

    store.init_meta(ARCH, f"{ARCH} --weights {weights}", str(weights), dim, asdict(Preprocess(size=(256, 256))))
    tiny = (ROOT / "configs" / "mmcli-tiny" / "open_clip_config.json").read_bytes()
    with store.transaction():
        for i in range(n):
            if files_dir is not None:
                sub = files_dir / f"{i // 1000:02d}"
                sub.mkdir(parents=True, exist_ok=True)
                p = sub / f"img_{i:05d}.jpg"
                p.write_bytes(tiny)
                st = p.stat()
                taken = Taken(st.st_mtime, "mtime")  # as `mmcli index` records a file without EXIF
                store.put_ok(str(p), st.st_size, st.st_mtime_ns, f"h{i}", vecs[i].tobytes(), taken)
            else:
                store.put_ok(f"/bench/img_{i:06d}.jpg", 1, 1, f"h{i}", vecs[i].tobytes())
    load_or_rebuild(store, write=True)
    store.close()


def warm_search(index: Path, env: dict[str, str], queries: int) -> dict[str, float]:
    """p50/p99 of /search on a running `mmcli serve` (distinct text queries: each is encoded)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [*MMCLI, "serve", "--index", str(index), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def post(query: str) -> float:
        body = json.dumps({"query": query, "top_k": 10}).encode()
        req = urllib.request.Request(url + "/search", data=body, headers={"Content-Type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
        return time.perf_counter() - t

    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("mmcli serve did not start") from None
                time.sleep(0.2)
        for i in range(3):
            post(f"warm-up query {i}")
        new = [post(f"a photo of thing number {i}") for i in range(queries)]
        again = [post("a photo of thing number 0") for _ in range(queries)]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "new_p50_ms": float(np.percentile(new, 50) * 1000),
        "new_p99_ms": float(np.percentile(new, 99) * 1000),
        "cached_p50_ms": float(np.percentile(again, 50) * 1000),
    }


def latent_vectors(n: int, d: int = 512, k: int = 64, seed: int = 0) -> np.ndarray:
    """Unit vectors with a low intrinsic dimension, as CLIP embeddings have (see the recall test)."""
    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(k, d)).astype(np.float32)
    centers = rng.normal(size=(1000, k)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = centers[rng.integers(0, 1000, m)] + rng.normal(size=(m, k)).astype(np.float32)
        out[s : s + m] = z @ proj + rng.normal(size=(m, d)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def search_latency(n: int, queries: int = 200) -> dict[str, float]:
    import faiss

    from mmcli.index import vectors

    faiss.omp_set_num_threads(1)
    x = latent_vectors(n)
    rng = np.random.default_rng(1)
    q = x[rng.choice(n, queries, replace=False)] + 0.05 * rng.normal(size=(queries, x.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out: dict[str, float] = {}
    flat = vectors.build(np.arange(n), x, x.shape[1], exact=True)
    t = time.perf_counter()
    approx = vectors.build(np.arange(n), x, x.shape[1])
    out["build_s"] = time.perf_counter() - t
    truth = None
    for name, index in (("exact", flat), ("approx", approx)):
        times, got = [], []
        for qq in q:
            t = time.perf_counter()
            _, ids = vectors.search(index, qq[None], 10)
            times.append(time.perf_counter() - t)
            got.append(ids[0])
        if truth is None:
            truth = got
        out[f"{name}_p50_ms"] = float(np.percentile(times, 50) * 1000)
        out[f"{name}_p99_ms"] = float(np.percentile(times, 99) * 1000)
        out[f"{name}_recall10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
    out["approximate"] = bool(vectors.is_approximate(approx))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a tiny run: checks the harness, measures nothing")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the GPU table (scripts/bench_gpu.py)"
    )
    ap.add_argument("--rclip-data", type=Path, default=None, help="(i): the folder export_rclip.py wrote")
    ap.add_argument("--rclip", type=Path, default=Path("/tmp/venv-rclip/bin/rclip"), help="(i): rclip 3.3's command")
    args = ap.parse_args()
    if args.device == "cuda":
        gpu = [sys.executable, str(Path(__file__).with_name("bench_gpu.py")), "--out", str(args.out or "gpu.json")]
        raise SystemExit(subprocess.call([*gpu, *(["--small", "--n2", "48", "--n12", "4"] if args.smoke else [])]))
    smoke = args.smoke
    n12, n2, npng = (1, 2, 1) if smoke else (16, 64, 16)
    noop_files = 200 if smoke else 10_000
    sizes = (2000,) if smoke else (100_000, 1_000_000)

    res: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "smoke": smoke,
        "date": time.strftime("%Y-%m-%d"),
    }
    import torch

    res["torch"] = torch.__version__
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        env = {
            **os.environ,
            "MMCLI_CACHE": str(tmpdir / "cache"),
            "MMCLI_HOME": str(tmpdir / "home"),
            "HF_HUB_OFFLINE": "1",
        }
        weights = make_weights(tmpdir)
        t = time.perf_counter()
        corpus = make_corpus(tmpdir / "photos", n12, n2, npng)
        res["corpus"] = {"12MP_jpeg": n12, "2MP_jpeg": n2, "png_1MP": npng, "generate_s": time.perf_counter() - t}
        n = len(corpus)
        res["corpus_n"] = n
        from mmcli.models import resolve_precision

        auto = resolve_precision("auto", "cpu")
        res["auto_precision"] = auto
        batches = 1 if smoke else 4
        res["model_only_fp32"] = model_only(weights, "fp32", 32, batches)
        res[f"model_only_{auto}"] = res["model_only_fp32"] if auto == "fp32" else model_only(weights, auto, 32, batches)
        res["decode_only"] = decode_only(corpus)
        res["decode_one_process"] = decode_rates(corpus)
        res[f"cosine_fp32_{auto}"] = precision_agreement(weights, corpus[:32], auto) if auto != "fp32" else 1.0
        res["naive_fp32"] = naive_loop(weights, corpus)
        export_towers(env, ARCH, weights)  # (else the first index run below would include exporting them)

        def index_run(prec: str, name: str, folder: Path) -> dict[str, Any]:
            cmd = [
                *MMCLI,
                "index",
                str(folder),
                "--index",
                str(tmpdir / name),
                "--model",
                ARCH,
                "--weights",
                str(weights),
                "--precision",
                prec,
            ]
            return _popen_rss(cmd, env)

        # the corpus twice over (new bytes, so nothing is reused by hash): steady-state throughput is
        # N / (t(2N) - t(N)), free of start-up and model loading; peak RSS should not grow with N.
        # None when 2N took no longer than N: a tiny corpus (--smoke), decoded while the model loads
        double = tmpdir / "double"
        shutil.copytree(tmpdir / "photos", double / "a")
        (double / "b").mkdir()
        for p in (double / "a").iterdir():
            (double / "b" / p.name).write_bytes(p.read_bytes() + b"\0")
        for prec in dict.fromkeys((auto, "fp32")):
            one = index_run(prec, f"idx_{prec}", tmpdir / "photos")
            two = index_run(prec, f"idx2_{prec}", double)
            res[f"index_{prec}"] = {
                "img_s": n / one["seconds"],
                "seconds": one["seconds"],
                "rss_mb": one["rss_mb"],
                "steady_img_s": n / (two["seconds"] - one["seconds"]) if two["seconds"] > one["seconds"] else None,
                "rss_2n_mb": two["rss_mb"],
            }

        # (d) cold search on a 10k index, cold classify on one image
        synthetic_index(tmpdir / "idx10k", None, 200 if smoke else 10_000, weights)

        def search_cmd(query: str) -> list[str]:
            return [*MMCLI, "search", query, "--index", str(tmpdir / "idx10k"), "-k", "10"]

        def classify_cmd(*labels: str) -> list[str]:
            return [*MMCLI, "classify", str(corpus[0]), "--labels", *labels, "--model", ARCH, "--weights", str(weights)]

        # a model whose towers were never exported (no `mmcli index` before): the first search exports them
        unexported = {**env, "MMCLI_CACHE": str(tmpdir / "cache-unexported")}
        res["search_first_use_s"] = _popen_rss(search_cmd("a first query"), unexported)["seconds"]
        res["classify_first_use_s"] = _popen_rss(classify_cmd("first", "labels"), unexported)["seconds"]
        # then: cold processes, cache dir warm, texts never seen before (median of 5)
        runs = [_popen_rss(search_cmd(f"a new query number {i}"), env) for i in range(5)]
        res["search_cold_s"] = float(np.median([r["seconds"] for r in runs]))
        res["search_cold_rss_mb"] = float(np.median([r["rss_mb"] for r in runs]))
        res["search_cached_query_s"] = _popen_rss(search_cmd("a new query number 0"), env)["seconds"]
        runs = [_popen_rss(classify_cmd(f"label {i}a", f"label {i}b"), env) for i in range(3)]
        res["classify_one_s"] = float(np.median([r["seconds"] for r in runs]))
        res["classify_one_rss_mb"] = float(np.median([r["rss_mb"] for r in runs]))
        res["models_s"] = float(np.median([_popen_rss([*MMCLI, "models"], env)["seconds"] for _ in range(3)]))
        res["help_s"] = min(_popen_rss([*MMCLI, "--help"], env)["seconds"] for _ in range(3))

        # warm search through `mmcli serve` on a 100k index
        synthetic_index(tmpdir / "idx100k", None, 2000 if smoke else 100_000, weights)
        res["serve_search"] = warm_search(tmpdir / "idx100k", env, 10 if smoke else 60)
        res["serve_index_size"] = 2000 if smoke else 100_000

        # (e) no-op re-index of 10k unchanged files
        synthetic_index(tmpdir / "idx_noop", tmpdir / "noop_files", noop_files, weights)
        noop = _popen_rss([*MMCLI, "index", str(tmpdir / "noop_files"), "--index", str(tmpdir / "idx_noop")], env)
        res["noop_files"] = noop_files
        res["noop_s"], res["noop_rss_mb"] = noop["seconds"], noop["rss_mb"]
        res["noop_model_loaded"] = "no model loaded" not in noop["stderr"]

        # (h) the query path: first search after an index, adding one photo
        res["query"] = query_figures(_popen_rss, tmpdir, env, ARCH, weights, corpus, smoke)

        # (i) against rclip 3.3, on this corpus
        if args.rclip_data is not None:
            pair = bench_rclip.Bench(tmpdir / "photos", args.rclip_data.resolve(), args.rclip, tmpdir / "rclip")
            (tmpdir / "rclip").mkdir()
            try:
                res["rclip"] = bench_rclip.run(pair, 2 if smoke else 5)
            finally:
                pair.stop_helpers()

    # (f) search latency
    for size in sizes:
        res[f"search_{size}"] = search_latency(size, queries=20 if smoke else 200)

    report(res, auto)
    if "rclip" in res:
        bench_rclip.report(res["rclip"])
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


def report(res: dict[str, Any], auto: str) -> None:
    a = res[f"index_{auto}"]["steady_img_s"] or float("nan")  # (nan: not measurable at this size)
    f32 = res["index_fp32"]["steady_img_s"] or float("nan")
    print(
        f"\nmmcli benchmark: {res['cpu']}, {res['cores']} cores, torch {res['torch']}, {res['date']}"
        f"{' (SMOKE: not a measurement)' if res['smoke'] else ''}"
    )
    c = res["corpus"]
    print(
        f"corpus: {c['12MP_jpeg']} x 12 MP JPEG, {c['2MP_jpeg']} x 2 MP JPEG, {c['png_1MP']} x 1 MP PNG; "
        f"model {ARCH} (random stand-in weights); auto precision on this CPU: {auto}\n"
    )
    print("| measure | value | ratio |\n| --- | --- | --- |")
    print(f"| model only, fp32, images/s | {res['model_only_fp32']:.1f} | |")
    print(
        f"| model only, {auto}, images/s | {res[f'model_only_{auto}']:.1f} | "
        f"{res[f'model_only_{auto}'] / res['model_only_fp32']:.2f}x fp32 |"
    )
    print(f"| decoding only (parallel, draft), images/s | {res['decode_only']:.1f} | |")
    d = res["decode_one_process"]
    print(
        f"| decoding, one process: JPEG draft / full decode, images/s | {d['draft']:.1f} / {d['full']:.1f} | "
        f"{d['draft'] / d['full']:.2f}x |"
    )
    print(f"| {auto} vs fp32 embeddings of 32 corpus images: minimum cosine | {res[f'cosine_fp32_{auto}']:.5f} | |")
    print(f"| naive loop (PIL + open_clip preprocess, fp32), images/s | {res['naive_fp32']:.1f} | 1.00x |")
    print(
        f"| `mmcli index`, fp32, steady images/s | {f32:.1f} | {f32 / res['naive_fp32']:.2f}x naive, "
        f"{f32 / res['model_only_fp32']:.0%} of fp32 model bound |"
    )
    if auto != "fp32":
        print(
            f"| `mmcli index`, {auto} (default), steady images/s | {a:.1f} | {a / res['naive_fp32']:.2f}x naive, "
            f"{a / res[f'model_only_{auto}']:.0%} of {auto} model bound |"
        )
    joint = 1 / (1 / res[f"model_only_{auto}"] + 1 / res["decode_only"])
    print(
        f"| `mmcli index`, {auto}, end to end incl. start-up ({res['corpus_n']} files), images/s | "
        f"{res[f'index_{auto}']['img_s']:.1f} | {res[f'index_{auto}']['seconds']:.1f} s |"
    )
    print(
        f"| CPU bound when model and decoding share the cores, images/s | {joint:.1f} | index reaches {a / joint:.0%} |"
    )
    print(
        f"| `mmcli search` cold, 10k index, a new query (median of 5), s | {res['search_cold_s']:.2f} | "
        f"target 0.6x rclip 3.3 (~0.85 s): 0.51 s |"
    )
    report_query(res)
    print(
        "| first search with a model never indexed here (exports the ONNX text tower), s | "
        f"{res['search_first_use_s']:.2f} | |"
    )
    print(f"| `mmcli search` same query again (text cache: no model), s | {res['search_cached_query_s']:.2f} | |")
    print(
        f"| `mmcli classify` one 12 MP image, two new labels, cold (median of 3), s | {res['classify_one_s']:.2f} "
        "| target 1.5 s |"
    )
    print(
        f"| first classify with a model (exports its ONNX image tower once), s | {res['classify_first_use_s']:.2f} | |"
    )
    print(f"| `mmcli models`, s | {res['models_s']:.2f} | target 0.3 s |")
    w = res["serve_search"]
    print(
        f"| warm search via `mmcli serve`, {res['serve_index_size']} images: new query p50 / p99 ms | "
        f"{w['new_p50_ms']:.1f} / {w['new_p99_ms']:.1f} | repeated query p50 {w['cached_p50_ms']:.1f} ms |"
    )
    print(f"| `mmcli --help`, s | {res['help_s']:.3f} | |")
    print(
        f"| no-op re-index of {res['noop_files']} files, s | {res['noop_s']:.2f} | model loaded: "
        f"{res['noop_model_loaded']} |"
    )
    for key in [k for k in res if k.startswith("search_") and isinstance(res[k], dict)]:
        s = res[key]
        size = key.split("_")[1]
        print(f"| search {size} vectors, exact p50 / p99 ms | {s['exact_p50_ms']:.2f} / {s['exact_p99_ms']:.2f} | |")
        print(
            f"| search {size} vectors, {'IVF' if s['approximate'] else 'flat'} p50 / p99 ms, recall@10 | "
            f"{s['approx_p50_ms']:.2f} / {s['approx_p99_ms']:.2f} | recall {s['approx_recall10']:.3f} |"
        )
    print(
        f"| peak RSS: index N / 2N files, MB | {res[f'index_{auto}']['rss_mb']:.0f} / "
        f"{res[f'index_{auto}']['rss_2n_mb']:.0f} | |"
    )
    print(
        f"| peak RSS: search / classify one / no-op index, MB | {res['search_cold_rss_mb']:.0f} / "
        f"{res['classify_one_rss_mb']:.0f} / {res['noop_rss_mb']:.0f} | |"
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
