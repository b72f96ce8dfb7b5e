"""Decoding only: JPEG decoders on a corpus like a phone's, as `mmcli index` uses them.

    python scripts/bench_decode.py                       # corpus in /tmp/mmcli-phone (made once), 5 rounds
    python scripts/bench_decode.py --corpus DIR --rounds 7 --out decode.json
    python scripts/bench_decode.py --weights W.safetensors --before /tmp/mmcli-old --pairs 5   # + `mmcli index`

The corpus: 40 photo-like 12 MP JPEGs (4032 x 3024, quality 92, as a phone writes them) and 40 at
2 MP (1732 x 1155), every fifth one with an EXIF orientation (6, 8, 3) and all with a capture time.
Each decoder does the whole job of a decoding process for a 256 px model: the file's bytes to the
resized, centre-cropped (256, 256, 3) uint8 pixels (JPEGs scaled in the decoder to >= 512 px on the
shorter side, EXIF orientation applied). Candidates: mmcli's decoder with the libjpeg-turbo fast
path (simplejpeg) and with it switched off (Pillow with ``draft``, the decoder before), and, where
installed, PyTurboJPEG (needs the system libturbojpeg) and pyvips shrink-on-load, each handing its
pixels to the same Pillow resize. One process; each file is run ``--rounds`` times by every decoder,
interleaved, and its least CPU time kept (the run least disturbed by whatever else the machine is
doing); the table gives the mean over the files. Also checks that every decoder's pixels match Pillow's.

With ``--weights`` (ViT-B-32-256 stand-in weights, as scripts/bench.py makes them) and ``--before
TREE`` (a checkout of the code to compare with): whole `mmcli index` runs over the corpus, this tree's
and TREE's alternated, each with a one-file run to take start-up off (steady images/s = (n - 1) /
(t(n) - t(1))), medians over ``--pairs``, with the CPU seconds (user + sys) the runs took.
``--stream``: ``embed_stream`` in this process instead, the model loaded once, simplejpeg against
Pillow alone. ``--threads``: ``embed_stream`` with the model's torch threads and the decoding
processes split three ways (the model and the decoders share the cores).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmcli.demo.shapes import photo_like  # noqa: E402
from mmcli.media import images, jpeg  # noqa: E402
from mmcli.media.preprocess import Preprocess  # noqa: E402

ORIENTATIONS = (6, 8, 3)


def make_phone_corpus(folder: Path, n12: int = 40, n2: int = 40) -> list[Path]:
    """Phone-like JPEGs (kept between runs: the 12 MP ones take seconds each to make)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    plan = [(f"p12_{i:03d}.jpg", 4032, 3024, i) for i in range(n12)]
    plan += [(f"p2_{i:03d}.jpg", 1732, 1155, 500 + i) for i in range(n2)]
    paths = []
    for k, (name, w, h, seed) in enumerate(plan):
        path = folder / name
        if not path.exists():
            exif = Image.Exif()
            exif[0x0132] = "2026:05:01 12:00:00"  # DateTime
            if k % 5 == 0:
                exif[0x0112] = ORIENTATIONS[(k // 5) % len(ORIENTATIONS)]
            tmp = path.with_suffix(".part")
            photo_like(w, h, seed=seed).save(tmp, "JPEG", quality=92, exif=exif.tobytes())
            tmp.replace(path)
        paths.append(path)
    return paths


def _orient(img, data: bytes):  # noqa: ANN001, ANN202 - PIL images, lazily imported
    from PIL import Image

    with Image.open(io.BytesIO(data)) as probe:
        return jpeg.orient(img, probe.getexif().get(0x0112, 1))


def _draft_scale(w: int, h: int, min_side: int) -> int:
    """The DCT scale denominator mmcli asks of a ``w`` x ``h`` JPEG (1, 2, 4 or 8)."""
    wanted = images._draft_size(w, h, min_side)
    return jpeg.draft_scale(w, h, wanted) if wanted else 1


def decoders(pre: Preprocess) -> dict[str, Callable[[str, bytes], np.ndarray]]:
    """name -> decode(path, bytes) giving the (H, W, 3) uint8 model-size pixels."""
    from PIL import Image

    def mmcli_with(turbo: bool) -> Callable[[str, bytes], np.ndarray]:
        def run(path: str, data: bytes) -> np.ndarray:
            img = images.load_image(path, min_side=pre.min_side, data=data, turbo=turbo)
            return np.asarray(pre.resize(img), dtype=np.uint8)

        return run

    out = {"pillow": mmcli_with(False), "mmcli-simplejpeg": mmcli_with(True)}
    try:
        from turbojpeg import TurboJPEG

        tj = TurboJPEG()

        def pyturbo(path: str, data: bytes) -> np.ndarray:
            w, h, _, _ = tj.decode_header(data)
            s = _draft_scale(w, h, pre.min_side)
            arr = tj.decode(data, pixel_format=0, scaling_factor=(1, s))  # TJPF_RGB
            return np.asarray(pre.resize(_orient(Image.fromarray(arr), data)))

        out["pyturbojpeg"] = pyturbo
    except (ImportError, RuntimeError, OSError):
        pass
    try:
        import pyvips

        def vips(path: str, data: bytes) -> np.ndarray:
            probe = pyvips.Image.new_from_buffer(data, "", access="sequential")
            s = _draft_scale(probe.width, probe.height, pre.min_side)
            img = pyvips.Image.new_from_buffer(data, "", shrink=s, access="sequential")
            arr = np.ndarray(buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands))
            return np.asarray(pre.resize(_orient(Image.fromarray(arr), data)))

        out["pyvips-shrink"] = vips
    except (ImportError, OSError):
        pass
    return out


def run(paths: list[Path], rounds: int) -> dict[str, object]:
    pre = Preprocess(size=(256, 256))
    blobs = [(str(p), p.read_bytes()) for p in paths]
    cands = decoders(pre)
    reference = [cands["pillow"](p, d) for p, d in blobs]
    agreement = {}
    for name, fn in cands.items():
        diffs = [int(np.abs(fn(p, d).astype(int) - ref.astype(int)).max()) for (p, d), ref in zip(blobs, reference)]
        agreement[name] = {"max_abs_diff": max(diffs), "files_differing": sum(d > 0 for d in diffs)}
    best: dict[str, list[float]] = {n: [] for n in cands}  # per file: the least CPU time of the rounds
    for p, d in blobs:
        times: dict[str, list[float]] = {n: [] for n in cands}
        for r in range(rounds):
            for name in list(cands)[r % len(cands) :] + list(cands)[: r % len(cands)]:
                c = time.process_time()
                cands[name](p, d)
                times[name].append(time.process_time() - c)
        for name in cands:
            best[name].append(min(times[name]) * 1000)
    groups = {"all": range(len(blobs))}
    groups |= {k: [i for i, (p, _) in enumerate(blobs) if Path(p).name.startswith(k)] for k in ("p12_", "p2_")}
    table = {n: {g: statistics.fmean(best[n][i] for i in idx) for g, idx in groups.items() if idx} for n in cands}
    return {"files": len(blobs), "rounds": rounds, "cpu_ms": table, "pixels_vs_pillow": agreement, "best_ms": best}


def _index_once(tree: Path, folder: Path, weights: Path, work: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys, with its children) of one `mmcli index` of ``folder`` with the
    code in ``tree``, into a fresh index."""
    idx = work / "idx"
    shutil.rmtree(idx, ignore_errors=True)
    cmd = [sys.executable, "-m", "mmcli", "index", str(folder), "--model", "ViT-B-32-256", "--weights", str(weights)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([*cmd, "--index", str(idx), "-q"], env=env, check=True, cwd=work, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def index_pairs(paths: list[Path], weights: Path, before: Path, pairs: int) -> dict[str, object]:
    """`mmcli index` with this tree against ``before``, alternated: steady images/s, medians."""
    n = len(paths)
    trees = {"after": ROOT, "before": before.resolve()}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = work / "one"
        one.mkdir()
        (one / paths[0].name).symlink_to(paths[0])
        folder = paths[0].parent
        for i in range(pairs):
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                t1, c1 = _index_once(trees[side], one, weights, work)
                tn, cn = _index_once(trees[side], folder, weights, work)
                runs[side].append(
                    {"t1": t1, "tn": tn, "steady": (n - 1) / max(1e-9, tn - t1), "cpu_per_image": (cn - c1) / (n - 1)}
                )
    med = {
        k: {m: statistics.median(r[m] for r in v) for m in ("t1", "tn", "steady", "cpu_per_image")}
        for k, v in runs.items()
    }
    ratios = [a["steady"] / b["steady"] for a, b in zip(runs["after"], runs["before"])]
    return {"files": n, "pairs": pairs, "median": med, "runs": runs, "after_over_before": statistics.median(ratios)}


def stream_pairs(paths: list[Path], weights: Path, pairs: int, workers: int | None) -> dict[str, object]:
    """``embed_stream`` (what `mmcli index` runs on each batch) over the corpus in this process, the model
    loaded once: JPEGs through simplejpeg and through Pillow alone, alternated; images/s, medians."""
    from mmcli.embedding.batch import embed_stream
    from mmcli.models import load_encoder, parse_model_spec

    encoder = load_encoder(parse_model_spec("ViT-B-32-256", weights), device="cpu")
    names = [str(p) for p in paths]
    real = jpeg.decode
    rates: dict[str, list[float]] = {"simplejpeg": [], "pillow": []}
    list(embed_stream(encoder, names[:8], workers=workers))  # warm: first batch, pool start-up paths
    try:
        for i in range(pairs):
            for side in ("pillow", "simplejpeg") if i % 2 == 0 else ("simplejpeg", "pillow"):
                jpeg.decode = real if side == "simplejpeg" else (lambda img, data, scale: None)  # forked: inherited
                t = time.perf_counter()
                n = sum(1 for _ in embed_stream(encoder, names, workers=workers))
                rates[side].append(n / (time.perf_counter() - t))
    finally:
        jpeg.decode = real
    ratios = [a / b for a, b in zip(rates["simplejpeg"], rates["pillow"])]
    return {
        "precision": str(getattr(encoder, "precision", "")),
        "median": {k: statistics.median(v) for k, v in rates.items()},
        "rates": rates,
        "simplejpeg_over_pillow": statistics.median(ratios),
    }


def thread_rounds(paths: list[Path], weights: Path, rounds: int) -> dict[str, object]:
    """``embed_stream`` over the corpus in this process with the model's torch threads and the decoding
    processes split three ways, alternated: mmcli's default (as many of each as cores), one torch
    thread with one decoding process, one torch thread with the default processes; images/s."""
    import torch

    from mmcli.embedding.batch import default_workers, embed_stream
    from mmcli.models import load_encoder, parse_model_spec

    encoder = load_encoder(parse_model_spec("ViT-B-32-256", weights), device="cpu")
    names = [str(p) for p in paths]
    cores, workers = torch.get_num_threads(), default_workers()
    variants = {
        f"{cores} threads, {workers} processes": (cores, workers),
        "1 thread, 1 process": (1, 1),
        f"1 thread, {workers} processes": (1, workers),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    list(embed_stream(encoder, names[:8], workers=workers))
    try:
        for r in range(rounds):
            for name in list(variants) if r % 2 == 0 else list(reversed(variants)):
                threads, procs = variants[name]
                torch.set_num_threads(threads)
                t = time.perf_counter()
                n = sum(1 for _ in embed_stream(encoder, names, workers=procs))
                rates[name].append(n / (time.perf_counter() - t))
    finally:
        torch.set_num_threads(cores)
    return {"median": {k: statistics.median(v) for k, v in rates.items()}, "rates": rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/mmcli-phone"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n12", type=int, default=40)
    ap.add_argument("--n2", type=int, default=40)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--weights", type=Path, help="ViT-B-32-256 weights for the `mmcli index` pairs")
    ap.add_argument("--before", type=Path, help="a checkout of the code to pair `mmcli index` runs with")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--index-only", action="store_true", help="skip the decoder table")
    ap.add_argument("--stream", action="store_true", help="with --weights: embed_stream in-process, on and off")
    ap.add_argument("--workers", type=int, help="decoding processes for --stream (default: mmcli's)")
    ap.add_argument("--threads", action="store_true", help="with --weights: torch threads / processes split")
    args = ap.parse_args()
    paths = make_phone_corpus(args.corpus, args.n12, args.n2)
    load = os.getloadavg()
    res: dict[str, object] = {"loadavg_start": load}
    if args.weights and args.before:
        pairs = index_pairs(paths, args.weights, args.before, args.pairs)
        res["index"] = pairs
        print(f"`mmcli index` of {pairs['files']} files, {pairs['pairs']} alternated pairs, medians:")
        for side, m in pairs["median"].items():  # type: ignore[union-attr]
            print(
                f"  {side}: steady {m['steady']:.1f} images/s, {m['tn']:.1f} s for all, {m['t1']:.1f} s for one, "
                f"{m['cpu_per_image'] * 1000:.0f} ms CPU per image"
            )
        print(f"  after / before (median of the pairs' ratios): {pairs['after_over_before']:.2f}x")
    if args.weights and args.stream:
        st = stream_pairs(paths, args.weights, args.pairs, args.workers)
        res["stream"] = st
        med = st["median"]
        print(
            f"embed_stream over {len(paths)} files ({st['precision']}), {args.pairs} alternated pairs, medians: "
            f"simplejpeg {med['simplejpeg']:.1f} images/s, Pillow {med['pillow']:.1f}; "  # type: ignore[index]
            f"ratio {st['simplejpeg_over_pillow']:.2f}x"
        )
    if args.weights and args.threads:
        th = thread_rounds(paths, args.weights, args.pairs)
        res["threads"] = th
        print(f"embed_stream over {len(paths)} files, {args.pairs} alternated rounds, medians:")
        for name, rate in th["median"].items():  # type: ignore[union-attr]
            print(f"  {name}: {rate:.1f} images/s")
    if args.index_only or args.stream or args.threads:
        print(f"load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
        if args.out:
            args.out.write_text(json.dumps(res, indent=2))
        return
    res.update(run(paths, args.rounds))
    print(
        f"{res['files']} files, one process: CPU ms per image (each file's least of {res['rounds']} "
        "interleaved runs, mean over the files)"
    )
    print("| decoder | all | 12 MP | 2 MP | vs Pillow (all) | pixels vs Pillow |")
    print("| --- | --- | --- | --- | --- | --- |")
    table = res["cpu_ms"]
    for name, m in table.items():  # type: ignore[union-attr]
        agree = res["pixels_vs_pillow"][name]  # type: ignore[index]
        diff, files = agree["max_abs_diff"], agree["files_differing"]
        same = "identical" if diff == 0 else f"max diff {diff} in {files} files"
        ratio = table["pillow"]["all"] / m["all"]  # type: ignore[index]
        print(f"| {name} | {m['all']:.1f} | {m.get('p12_', 0):.1f} | {m.get('p2_', 0):.1f} | {ratio:.2f}x | {same} |")
    print(f"load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
