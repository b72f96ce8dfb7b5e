"""Video benchmark: sampling and embedding a 60 s 1080p H.264 clip, against real time.

    python scripts/bench_video.py                  # 60 s, 1920x1080, 30 fps, a keyframe every 2 s
    python scripts/bench_video.py --gop 250        # x264's default keyframe spacing (8.3 s at 30 fps)
    python scripts/bench_video.py --seconds 10 --out video.json

The clip is generated (photo-like pictures panning, a new scene every 10 s) and cached in the temp
folder. Measured, with ViT-B-32-256 and random stand-in weights (same cost as real ones):
  (a) sampling only (``mmcli.media.video.sample_video``, every 2 s): wall time, frames decoded (counted
      inside the reader), moments kept;
  (b) embedding those moments alone (model only, on ready pictures);
  (c) ``embed_video`` end to end (decoding + preprocessing + model): wall time and x real time.
Each is run ``--repeat`` times (default 3); the best and the median are reported (on a shared
machine the best is the nearest to what the code costs, the median what a user there would see).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ARCH, cpu_name, make_weights  # noqa: E402

from mmcli.demo.shapes import photo_like  # noqa: E402


def make_clip(path: Path, seconds: int, fps: int, size: tuple[int, int], gop: int) -> Path:
    import av

    if path.exists():
        return path
    w, h = size
    scenes = [np.asarray(photo_like(w + 400, h, seed=s)) for s in range(max(1, seconds // 10 + 1))]
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(seconds * fps):
            scene = scenes[(i // fps) // 10]
            shift = (i % (10 * fps)) * 400 // (10 * fps)  # a slow pan across the picture
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[:, shift : shift + w]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def count_decoded() -> dict[str, int]:
    """Count the frames the reader decodes (a wrapper around ``_Reader.next``)."""
    import mmcli.media.video as video

    counter = {"decoded": 0}
    real = video._Reader.next

    def counted(self: Any) -> Any:
        frame = real(self)
        counter["decoded"] += frame is not None
        return frame

    video._Reader.next = counted  # type: ignore[method-assign]
    return counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop", type=int, default=60, help="frames between keyframes (phones and cameras: 30-60)")
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--precision", default="auto", help="auto (bf16 where the CPU has it), fp32, ...")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from mmcli.embedding.video import embed_video
    from mmcli.media.video import sample_video
    from mmcli.models import load_encoder, parse_model_spec

    cache = Path(tempfile.gettempdir()) / "mmcli-bench-video"
    cache.mkdir(exist_ok=True)
    t = time.perf_counter()
    clip = make_clip(cache / f"clip_{args.seconds}s_{args.fps}fps_gop{args.gop}.mp4", args.seconds, args.fps,
                     (1920, 1080), args.gop)  # fmt: skip
    made = time.perf_counter() - t
    weights = cache / "standin.safetensors"
    if not weights.exists():
        make_weights(cache)
    encoder = load_encoder(parse_model_spec(ARCH, weights), device="cpu", precision=args.precision)
    encoder.encode_images(np.zeros((2, 3, *encoder.preprocess.size), np.float32))  # warm up

    counter = count_decoded()
    samples, models, totals = [], [], []
    for _ in range(args.repeat):
        counter["decoded"] = 0
        t = time.perf_counter()
        moments = list(sample_video(clip, args.every, min_side=encoder.preprocess.min_side))
        samples.append(time.perf_counter() - t)
        decoded = counter["decoded"]

        pixels = np.stack([encoder.preprocess.to_array(m.image) for m in moments])
        t = time.perf_counter()
        for start in range(0, len(pixels), 32):
            encoder.encode_images(pixels[start : start + 32])
        models.append(time.perf_counter() - t)

        t = time.perf_counter()
        result = embed_video(encoder, str(clip), args.every)
        totals.append(time.perf_counter() - t)
        assert not hasattr(result, "reason"), result
    sample_s, model_s, total_s = min(samples), min(models), min(totals)

    res = {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "clip": f"{args.seconds} s, 1920x1080, {args.fps} fps, H.264, keyframe every {args.gop} frames",
        "clip_bytes": clip.stat().st_size,
        "clip_made_s": round(made, 2),
        "precision": encoder.precision,
        "moments": len(moments),
        "frames_decoded": decoded,
        "frames_in_clip": args.seconds * args.fps,
        "sampling_s": round(sample_s, 3),
        "decoded_frames_per_s": round(decoded / sample_s, 1),
        "model_only_s": round(model_s, 3),
        "end_to_end_s": round(total_s, 3),
        "x_real_time": round(args.seconds / total_s, 1),
        "median": {
            "sampling_s": round(float(np.median(samples)), 3),
            "model_only_s": round(float(np.median(models)), 3),
            "end_to_end_s": round(float(np.median(totals)), 3),
            "x_real_time": round(args.seconds / float(np.median(totals)), 1),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(res, indent=2))
    print(
        f"\n{res['clip']}: {decoded} of {res['frames_in_clip']} frames decoded for {len(moments)} moments "
        f"({res['decoded_frames_per_s']} frames/s); sampling {sample_s:.2f} s + model {model_s:.2f} s; "
        f"end to end {total_s:.2f} s = {res['x_real_time']}x real time (best of {args.repeat}; median "
        f"{res['median']['end_to_end_s']} s = {res['median']['x_real_time']}x; load average {res['load_average']})"
    )
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
