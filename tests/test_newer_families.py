"""The newer model families behind the `siglip2-*` and `mobileclip2-*` aliases, with random stand-in
weights saved to a file (the real weights need the hub): mmcli's embeddings equal open_clip's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmcli.cli import app
from mmcli.demo.shapes import photo_like

pytestmark = pytest.mark.slow


def _standin(arch: str, folder: Path):
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(arch)
    model.eval()
    weights = folder / f"{arch}-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return model, preprocess, weights


@pytest.mark.parametrize(("arch", "texts"), [("MobileCLIP2-S0", True), ("ViT-B-32-SigLIP2-256", False)])
def test_stand_in_weights_embed_like_open_clip(runner, tmp_path: Path, arch: str, texts: bool) -> None:
    """(SigLIP 2's tokenizer comes from the Hugging Face hub, so only its image tower runs offline.)"""
    import torch
    from PIL import Image

    model, preprocess, weights = _standin(arch, tmp_path)
    photos = []
    for i, (w, h) in enumerate(((300, 220), (180, 260))):
        photos.append(tmp_path / f"photo{i}.png")
        photo_like(w, h, seed=i).save(photos[-1])
    out = tmp_path / "v.npy"
    args = ["embed", *map(str, photos), "--model", arch, "--weights", str(weights), "--precision", "fp32"]
    r = runner.invoke(app, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    ours = np.load(out)
    assert json.loads(out.with_suffix(".paths.json").read_text())["paths"] == [str(p) for p in photos]
    with torch.no_grad():
        ref = model.encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in photos]))
        ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    assert ((ours * ref).sum(axis=1) > 0.999).all()
    text_args = ["embed", "--text", "a red car", "--model", arch, "--weights", str(weights), "-o", str(out)]
    if not texts:  # a clear error naming what is missing, not a traceback
        r = runner.invoke(app, text_args)
        assert r.exit_code == 1 and "tokenizer" in r.output and "Traceback" not in r.output, r.output
    if texts:
        import open_clip

        words = ["a red car", "two dogs on a beach"]
        r = runner.invoke(app, ["embed", "--text", *words, "--model", arch, "--weights", str(weights), "-o", str(out)])
        assert r.exit_code == 0, r.output
        with torch.no_grad():
            ref = model.encode_text(open_clip.get_tokenizer(arch)(words))
            ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
        assert ((np.load(out) * ref).sum(axis=1) > 0.999).all()
