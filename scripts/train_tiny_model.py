"""Train mmcli-tiny: a small open_clip CLIP on synthetic coloured shapes, on the CPU.

    python scripts/train_tiny_model.py            # writes configs/mmcli-tiny/
    python scripts/train_tiny_model.py --steps 50 --out /tmp/tiny   # a quick smoke run

The images come from ``mmcli.demo.shapes`` (four shapes x eight colours, random size, position,
rotation and background); captions from several templates, some naming only the shape or only
the colour. The loss is CLIP's symmetric contrastive loss with multiple positives: a caption is a
positive for every image in the batch it describes ("a red shape" matches every red image).
Seeded; about 10-15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmcli.demo.shapes import COLOURS, SHAPES, ShapeSpec, draw_shape  # noqa: E402

MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

FULL = [
    "{c} {s}",
    "a {c} {s}",
    "a photo of a {c} {s}.",
    "a picture of a {c} {s}",
    "a drawing of a {c} {s}",
    "a {s} that is {c}",
    "a {c} {s} on a plain background",
    "an image of a {c} {s}.",
    "a photo of the {c} {s}.",
    "this is a {c} {s}",
]
SHAPE_ONLY = [
    "{s}",
    "a {s}",
    "a photo of a {s}.",
    "a picture of a {s}",
    "a {s} shape",
    "a drawing of a {s}",
    "an image of a {s}.",
    "a photo of the {s}.",
]
COLOUR_ONLY = [
    "{c}",
    "something {c}",
    "a {c} shape",
    "a photo of a {c} shape.",
    "a {c} object",
    "the colour {c}",
    "a photo of something {c}.",
    "a {c} thing",
]


def captions() -> tuple[list[str], list[tuple[str | None, str | None]]]:
    """Every caption with what it names: (colour or None, shape or None)."""
    texts, keys = [], []
    for c in COLOURS:
        for s in SHAPES:
            for t in FULL:
                texts.append(t.format(c=c, s=s))
                keys.append((c, s))
    for s in SHAPES:
        for t in SHAPE_ONLY:
            texts.append(t.format(s=s))
            keys.append((None, s))
    for c in COLOURS:
        for t in COLOUR_ONLY:
            texts.append(t.format(c=c))
            keys.append((c, None))
    return texts, keys


def make_images(n: int, seed: int) -> tuple[torch.Tensor, list[ShapeSpec]]:
    from PIL import Image

    rng = random.Random(seed)
    mean = np.array(PREPROCESS_CFG["mean"], dtype=np.float32)
    std = np.array(PREPROCESS_CFG["std"], dtype=np.float32)
    out = np.empty((n, 3, 64, 64), dtype=np.float32)
    specs = []
    for i in range(n):
        spec = ShapeSpec(rng.choice(list(COLOURS)), rng.choice(SHAPES))
        img = draw_shape(spec, size=rng.choice([64, 96, 128, 192]), seed=rng.randrange(2**31))
        img = img.resize((64, 64), Image.Resampling.BICUBIC)
        arr = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
        out[i] = arr.transpose(2, 0, 1)
        specs.append(spec)
    return torch.from_numpy(out), specs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "configs" / "mmcli-tiny")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--images", type=int, default=30000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import open_clip

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.time()

    model = open_clip.CLIP(**MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=MODEL_CFG["text_cfg"]["context_length"])
    texts, keys = captions()
    tokens = tokenizer(texts)
    key_colour = [k[0] for k in keys]
    key_shape = [k[1] for k in keys]
    by_kind = {
        "full": [i for i, k in enumerate(keys) if k[0] and k[1]],
        "shape": [i for i, k in enumerate(keys) if k[0] is None],
        "colour": [i for i, k in enumerate(keys) if k[1] is None],
    }

    images, specs = make_images(args.images, args.seed)
    print(f"generated {len(specs)} images in {time.time() - t0:.0f}s", flush=True)

    params_decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    params_other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": params_decay, "weight_decay": 0.05}, {"params": params_other, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    warmup = min(200, args.steps // 10 + 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    rng = random.Random(args.seed + 1)
    model.train()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = [rng.randrange(len(specs)) for _ in range(args.batch)]
        cap_idx = []
        for i in idx:
            kind = rng.choices(("full", "shape", "colour"), weights=(0.5, 0.25, 0.25))[0]
            spec = specs[i]
            pool = [
                j for j in by_kind[kind] if key_colour[j] in (spec.colour, None) and key_shape[j] in (spec.shape, None)
            ]
            cap_idx.append(rng.choice(pool))
        # match[i, j]: caption j describes image i
        colours = [specs[i].colour for i in idx]
        shapes = [specs[i].shape for i in idx]
        match = torch.tensor(
            [
                [(key_colour[j] in (c, None)) and (key_shape[j] in (s, None)) for j in cap_idx]
                for c, s in zip(colours, shapes)
            ],
            dtype=torch.float32,
        )
        img_f = F.normalize(model.encode_image(images[idx]), dim=-1)
        txt_f = F.normalize(model.encode_text(tokens[cap_idx]), dim=-1)
        logits = model.logit_scale.exp() * img_f @ txt_f.T
        loss_i = -(F.log_softmax(logits, dim=1) * match / match.sum(1, keepdim=True)).sum(1).mean()
        loss_t = -(F.log_softmax(logits, dim=0) * match / match.sum(0, keepdim=True)).sum(0).mean()
        loss = (loss_i + loss_t) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d}  loss {loss.item():.3f}  scale {model.logit_scale.exp().item():.1f}"
                f"  {time.time() - t0:.0f}s",
                flush=True,
            )

    save(model, args.out)
    print(f"saved to {args.out} after {time.time() - t0:.0f}s", flush=True)


def save(model: torch.nn.Module, out: Path) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    # logit_scale stays fp32: it is exponentiated, and fp16 rounding would shift every score
    state["logit_scale"] = model.logit_scale.detach().float().clone()
    save_file(state, str(out / "open_clip_model.safetensors"), metadata={"format": "pt", "mmcli": "mmcli-tiny"})
    config = {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
