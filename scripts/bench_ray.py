"""What `--ray` costs and gives on one machine: the local path against Ray Data with 1 and 2 model actors.

    python scripts/bench_ray.py                  # mmcli-tiny, runs of 320 and 640 photo-like JPEGs (~3 min, 2 cores)
    python scripts/bench_ray.py --standin        # also ViT-B-32-256 with random stand-in weights, 96 and 192
    python scripts/bench_ray.py --smoke          # a few images: checks the harness, measures nothing
    python scripts/bench_ray.py --out bench_ray.json

Measures, in this process, with the same calls the commands make, each on N and 2N images:
  local      embed.embed_stream (decoding processes + the model here), after the model is loaded;
  start-up   ray_session(): a new local Ray instance, as `--ray` without an address starts one;
  ray A      ray_driver.embed_on_ray with A actors: the whole job (actor start and model loads included),
             and the time to its first result;
  steady     N / (t(2N) - t(N)): the rate without start-up; fixed cost t(N) - N / steady;
  Ray adds   1000 / steady(ray) - 1000 / steady(local): milliseconds per image, start-up apart.
Every run's vectors are checked against the local ones (cosine). Prints a Markdown table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from mmcli.demo.shapes import photo_like  # noqa: E402


def make_corpus(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"photo_{i:04d}.jpg"
        photo_like(1024, 768, seed=i).save(p, quality=90)
        paths.append(str(p))
    return paths


def local_run(spec: Any, paths: list[str], batch: int, workers: int) -> tuple[float, np.ndarray]:
    """Seconds to embed ``paths`` here (the model loaded before), and the vectors."""
    from mmcli.embedding.batch import embed_stream
    from mmcli.models import load_encoder

    encoder = load_encoder(spec, device="cpu", precision="fp32")
    t0 = time.perf_counter()
    vectors = [v.vector for v in embed_stream(encoder, paths, batch, workers)]
    return time.perf_counter() - t0, np.stack(vectors)


def ray_run(spec: Any, paths: list[str], batch: int, actors: int) -> tuple[float, float, np.ndarray]:
    """Seconds for the whole job on the running Ray (actor start and model loads included), seconds to
    its first result, and the vectors."""
    from mmcli.embedding.ray_driver import RayOptions, embed_on_ray
    from mmcli.models import describe_encoder

    t0 = time.perf_counter()
    shape = describe_encoder(spec)
    batches: list[float] = []

    def note(done: int, total: int) -> None:
        batches.append(time.perf_counter())

    stream = embed_on_ray(
        spec, shape.preprocess, paths, RayOptions(actors=actors), device="cpu", precision="fp32", batch_size=batch,
        on_progress=note,
    )  # fmt: skip
    vectors = np.stack([item.vector for item in stream])
    return time.perf_counter() - t0, batches[0] - t0, vectors


def paired(n: int, t1: float, t2: float) -> dict[str, float]:
    """Runs of N and 2N images: the steady rate N / (t(2N) - t(N)) and the fixed cost t(N) - N / rate."""
    steady = n / (t2 - t1) if t2 > t1 else float("nan")
    return {"t_n_s": t1, "t_2n_s": t2, "steady_img_s": steady, "fixed_s": t1 - n / steady}


def measure(spec: Any, paths: list[str], n: int, batch: int, cpus: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t1, _ = local_run(spec, paths[:n], batch, cpus)
    t2, ref = local_run(spec, paths, batch, cpus)
    out["local"] = paired(n, t1, t2)
    for actors in (1, 2):  # on the Ray instance main() started
        r1, first1, _ = ray_run(spec, paths[:n], batch, actors)
        r2, _, vectors = ray_run(spec, paths, batch, actors)
        run = paired(n, r1, r2)
        run["first_result_s"] = first1
        run["overhead_ms_per_image"] = 1000 * (1 / run["steady_img_s"] - 1 / out["local"]["steady_img_s"])
        run["min_cosine"] = float((vectors * ref).sum(axis=1).min())
        out[f"ray_{actors}"] = run
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="a few images: checks the harness, measures nothing")
    ap.add_argument("--standin", action="store_true", help="also ViT-B-32-256 with random stand-in weights")
    ap.add_argument("--images", type=int, default=320, help="N for mmcli-tiny (runs of N and 2N)")
    ap.add_argument("--standin-images", type=int, default=96, help="N for the stand-in model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from mmcli.embedding.ray_driver import RayOptions, ray_session
    from mmcli.models import parse_model_spec

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    res: dict[str, Any] = {"batch": args.batch, "cpus": cpus, "machine": platform.machine(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {"mmcli-tiny": 6 if args.smoke else args.images}
        specs = {"mmcli-tiny": parse_model_spec("mmcli-tiny")}
        if args.standin:
            from bench import ARCH, make_weights

            name = f"{ARCH} (stand-in)"
            specs[name] = parse_model_spec(ARCH, str(make_weights(Path(tmp))))
            sizes[name] = 6 if args.smoke else args.standin_images
        paths = make_corpus(Path(tmp) / "photos", 2 * max(sizes.values()))
        t0 = time.perf_counter()
        with ray_session(RayOptions()):  # what `--ray` without an address does
            res["ray_start_s"] = time.perf_counter() - t0
            for name, spec in specs.items():
                n = sizes[name]
                res["models"][name] = {"n": n, **measure(spec, paths[: 2 * n], n, args.batch, cpus)}
            t1 = time.perf_counter()
        res["ray_stop_s"] = time.perf_counter() - t1
    report(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


def report(res: dict[str, Any]) -> None:
    print(
        f"photo-like 1024x768 JPEGs, batch {res['batch']}, {res['cpus']} CPUs, fp32; a new local Ray instance "
        f"starts in {res['ray_start_s']:.1f} s and stops in {res['ray_stop_s']:.1f} s\n"
    )
    print(
        "| model | run | t(N), s | t(2N), s | steady images/s | fixed cost, s | first result, s | Ray adds, ms/image |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m in res["models"].items():
        for key, label in (("local", "local"), ("ray_1", "--ray, 1 actor"), ("ray_2", "--ray, 2 actors")):
            r = m[key]
            first = f"{r['first_result_s']:.1f}" if "first_result_s" in r else ""
            extra = f"{r['overhead_ms_per_image']:.1f}" if "overhead_ms_per_image" in r else ""
            print(
                f"| {name}, N={m['n']} | {label} | {r['t_n_s']:.1f} | {r['t_2n_s']:.1f} | {r['steady_img_s']:.1f} | "
                f"{r['fixed_s']:.1f} | {first} | {extra} |"
            )
        worst = min(m[f"ray_{a}"]["min_cosine"] for a in (1, 2))
        print(f"\n{name}: lowest cosine between a --ray vector and the local one: {worst:.6f}\n")


if __name__ == "__main__":
    main()
