"""CPU throughput of `mmcli classify` on the default architecture, with random stand-in weights.

    python scripts/bench_classify.py                     # 96 photo-like 2000x1500 JPEGs
    python scripts/bench_classify.py --images 48 --size 4000x3000

Random weights cost exactly what the real ones cost (same architecture, same code path through
--weights). Reports, on the same machine and files:
  - model-only throughput on ready tensors (fp32 and bf16), and the fp32/bf16 embedding cosine;
  - `mmcli classify` end to end (subprocess: start-up, model load, decoding, batches), fp32 and bf16;
  - `mmcli --help` wall time.
Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmcli.shapes import photo_like  # noqa: E402

ARCH = "ViT-B-32-256"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_weights(folder: Path) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    path = folder / "standin.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def model_only(weights: Path, batches: int, batch: int) -> dict[str, float]:
    from mmcli.models import load_encoder, parse_model_spec

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 3, 256, 256)).astype(np.float32)
    out: dict[str, float] = {}
    vecs = {}
    for prec in ("fp32", "bf16"):
        enc = load_encoder(parse_model_spec(ARCH, weights), device="cpu", precision=prec)
        enc.encode_images(x[:4])  # warm-up
        t = time.perf_counter()
        for _ in range(batches):
            v = enc.encode_images(x)
        out[f"model_{prec}_img_s"] = batches * batch / (time.perf_counter() - t)
        vecs[prec] = v
    out["bf16_min_cosine"] = float((vecs["fp32"] * vecs["bf16"]).sum(axis=1).min())
    return out


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--size", default="2000x1500")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    mmcli = [sys.executable, "-m", "mmcli"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights = make_weights(folder)
        photos = folder / "photos"
        photos.mkdir()
        for i in range(args.images):
            photo_like(w, h, seed=i).save(photos / f"{i:04d}.jpg", quality=90)
        res: dict[str, float | str] = {
            "cpu": cpu_name(),
            "cores": os.cpu_count() or 0,
            "images": args.images,
            "size": args.size,
        }
        res.update(model_only(weights, batches=3, batch=args.batch))
        env_cache = {**os.environ, "MMCLI_CACHE": str(folder / "cache")}
        os.environ.update(env_cache)
        for prec in ("fp32", "bf16"):
            cmd = [
                *mmcli,
                "classify",
                str(photos),
                "--labels",
                "cat",
                "dog",
                "car",
                "--model",
                ARCH,
                "--weights",
                str(weights),
                "--precision",
                prec,
                "-b",
                str(args.batch),
                "-f",
                "jsonl",
            ]
            secs = timed(cmd)
            res[f"classify_{prec}_s"] = secs
            res[f"classify_{prec}_img_s"] = args.images / secs
        res["help_s"] = min(timed([*mmcli, "--help"]) for _ in range(3))
    print(f"\nCPU: {res['cpu']} ({res['cores']} cores); {args.images} JPEGs of {args.size}\n")
    print("| measure | fp32 | bf16 |\n| --- | --- | --- |")
    print(
        f"| model only (ready tensors, batch {args.batch}), images/s | {res['model_fp32_img_s']:.1f} | "
        f"{res['model_bf16_img_s']:.1f} |"
    )
    print(
        f"| `mmcli classify` end to end, images/s | {res['classify_fp32_img_s']:.1f} | "
        f"{res['classify_bf16_img_s']:.1f} |"
    )
    print(f"| `mmcli classify` wall time, s | {res['classify_fp32_s']:.1f} | {res['classify_bf16_s']:.1f} |")
    print(f"\nbf16 vs fp32 embedding cosine (min over batch): {res['bf16_min_cosine']:.5f}")
    print(f"`mmcli --help`: {res['help_s']:.3f} s (best of 3, python -m mmcli)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
