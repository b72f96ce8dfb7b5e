"""Decoding only: JPEG decoders on a corpus like a phone's, as `mmcli index` uses them.

    python scripts/bench_decode.py                       # corpus in /tmp/mmcli-phone (made once), 5 rounds
    python scripts/bench_decode.py --corpus DIR --rounds 7 --out decode.json

The corpus: 40 photo-like 12 MP JPEGs (4032 x 3024, quality 92, as a phone writes them) and 40 at
2 MP (1732 x 1155), every fifth one with an EXIF orientation (6, 8, 3) and all with a capture time.
Each decoder does the whole job of a decoding process for a 256 px model: the file's bytes to the
resized, centre-cropped (256, 256, 3) uint8 pixels (JPEGs scaled in the decoder to >= 512 px on the
shorter side, EXIF orientation applied). Candidates: mmcli's decoder with the libjpeg-turbo fast
path (simplejpeg) and with it switched off (Pillow with ``draft``, the decoder before), and, where
installed, PyTurboJPEG (needs the system libturbojpeg) and pyvips shrink-on-load, each handing its
pixels to the same Pillow resize. One process; rounds alternate the decoders; CPU time and wall time
per image, medians over rounds. Also checks that every decoder's pixels match Pillow's.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
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
        orientation = probe.getexif().get(0x0112, 1)
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return img.transpose(method) if method is not None else img


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

        def turbo(path: str, data: bytes) -> np.ndarray:
            w, h, _, _ = tj.decode_header(data)
            s = _draft_scale(w, h, pre.min_side)
            arr = tj.decode(data, pixel_format=0, scaling_factor=(1, s))  # TJPF_RGB
            return np.asarray(pre.resize(_orient(Image.fromarray(arr), data)))

        out["pyturbojpeg"] = turbo
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
    cpu: dict[str, list[float]] = {n: [] for n in cands}
    wall: dict[str, list[float]] = {n: [] for n in cands}
    for r in range(rounds):
        order = list(cands) if r % 2 == 0 else list(reversed(cands))
        for name in order:
            fn = cands[name]
            c, t = time.process_time(), time.perf_counter()
            for p, d in blobs:
                fn(p, d)
            cpu[name].append((time.process_time() - c) / len(blobs) * 1000)
            wall[name].append((time.perf_counter() - t) / len(blobs) * 1000)
    med = {n: {"cpu_ms": statistics.median(cpu[n]), "wall_ms": statistics.median(wall[n])} for n in cands}
    for n in cands:
        med[n]["images_per_s_cpu"] = 1000 / med[n]["cpu_ms"]
        med[n]["vs_pillow_cpu"] = med["pillow"]["cpu_ms"] / med[n]["cpu_ms"]
        med[n]["vs_pillow_wall"] = med["pillow"]["wall_ms"] / med[n]["wall_ms"]
    return {"files": len(blobs), "rounds": rounds, "median": med, "pixels_vs_pillow": agreement, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/tmp/mmcli-phone"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n12", type=int, default=40)
    ap.add_argument("--n2", type=int, default=40)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    paths = make_phone_corpus(args.corpus, args.n12, args.n2)
    res = run(paths, args.rounds)
    print(f"{res['files']} files, {res['rounds']} rounds alternated, medians (one process)")
    print("| decoder | CPU ms/image | wall ms/image | images/s (CPU) | vs Pillow (CPU) | pixels vs Pillow |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in res["median"].items():  # type: ignore[union-attr]
        agree = res["pixels_vs_pillow"][name]  # type: ignore[index]
        same = (
            "identical"
            if agree["max_abs_diff"] == 0
            else f"max diff {agree['max_abs_diff']} in {agree['files_differing']}"
        )
        print(
            f"| {name} | {m['cpu_ms']:.1f} | {m['wall_ms']:.1f} | {m['images_per_s_cpu']:.1f} "
            f"| {m['vs_pillow_cpu']:.2f}x | {same} |"
        )
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
