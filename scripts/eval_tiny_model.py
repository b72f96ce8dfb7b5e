"""Zero-shot accuracy of mmcli-tiny (or any model) on freshly generated shape images.

    python scripts/eval_tiny_model.py                  # 400 new images, seed 12345
    python scripts/eval_tiny_model.py --count 1000 --seed 99 --model mmcli-tiny

Images are written as JPEG files and go through mmcli's own decoding, prompts and scoring
(the classify core), with these prompts:
    colour:        "a photo of a {} shape."  over the 8 colours
    shape:         "a photo of a {}."        over the 4 shapes
    colour+shape:  "a photo of a {}."        over the 32 "colour shape" labels
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmcli.demo.shapes import COLOURS, SHAPES, all_specs, write_corpus  # noqa: E402
from mmcli.engine.classify import build_label_set, classify_stream  # noqa: E402
from mmcli.models import load_encoder, parse_model_spec  # noqa: E402
from mmcli.results import Classification  # noqa: E402

TASKS = {
    "colour": (list(COLOURS), "a photo of a {} shape.", lambda spec: spec.colour),
    "shape": (list(SHAPES), "a photo of a {}.", lambda spec: spec.shape),
    "colour+shape": ([s.label for s in all_specs()], "a photo of a {}.", lambda spec: spec.label),
}


def evaluate(model: str, count: int, seed: int, folder: Path) -> dict[str, float]:
    written = write_corpus(folder, count, seed=seed)
    truth = {str(p): spec for p, spec in written}
    encoder = load_encoder(parse_model_spec(model), device="cpu", precision="fp32")
    accuracy = {}
    for task, (labels, template, answer) in TASKS.items():
        label_set = build_label_set(encoder, labels, [template], cache=None)
        results = [
            r for r in classify_stream(encoder, list(truth), label_set, top_k=1) if isinstance(r, Classification)
        ]
        correct = sum(r.labels[0].label == answer(truth[r.path]) for r in results)
        accuracy[task] = correct / count
    return accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mmcli-tiny")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        accuracy = evaluate(args.model, args.count, args.seed, Path(tmp))
    for task, acc in accuracy.items():
        print(f"{task:>13}: {acc:6.1%}")
    print(
        json.dumps(
            {
                "model": args.model,
                "count": args.count,
                "seed": args.seed,
                "accuracy": accuracy,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
