"""The CUDA decoding path (torchvision decode_jpeg + tensor preprocessing), run on the CPU here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

from mmcli.demo.shapes import photo_like
from mmcli.media.gpu_decode import decode_batch, resize_crop_normalise
from mmcli.media.images import load_pixels
from mmcli.media.preprocess import Preprocess
from mmcli.models import load_encoder, parse_model_spec


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
def test_tensor_preprocessing_matches_pillow(mode: str) -> None:
    img = photo_like(640, 480, seed=3)
    pre = Preprocess(size=(224, 224), resize_mode=mode)
    ours = resize_crop_normalise([torch.from_numpy(np.array(img)).permute(2, 0, 1)], pre, torch.float32)[0]
    ref = pre.to_array(img)
    assert ours.shape == ref.shape
    assert float(np.abs(ours.numpy() - ref).mean()) < 0.02  # torch vs Pillow bicubic: rounding-level


def test_device_batch_embeds_like_the_cpu_path(tmp_path: Path, shapes_dir: Path) -> None:
    enc = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_like(300, 200, seed=1).transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif.tobytes())
    png = tmp_path / "shape.png"
    Image.open(shapes_dir / "red_star.jpg").save(png)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    paths = [str(shapes_dir / "blue_circle.jpg"), str(rotated), str(png), str(bad)]
    batch, order, failures = decode_batch(paths, enc.preprocess, "cpu", torch.float32)
    assert order == paths[:3]
    assert [p for p, _ in failures] == [str(bad)]
    device_vecs = enc.encode_tensor(batch)
    cpu_vecs = enc.encode_images(np.stack([load_pixels(p, enc.preprocess) for p in order]))
    assert ((device_vecs * cpu_vecs).sum(axis=1) >= 0.99).all()


def test_embed_stream_device_path_keeps_order_and_failures(
    monkeypatch: pytest.MonkeyPatch, random_corpus, tmp_path: Path
) -> None:
    import mmcli.embedding.batch as embed
    from mmcli.results import FileFailure

    enc = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    paths = [str(p) for p, _ in random_corpus[:9]]
    paths.insert(4, str(tmp_path / "missing.jpg"))
    reference = list(embed.embed_stream(enc, paths, batch_size=4, workers=1))
    monkeypatch.setattr(embed, "use_device_decoding", lambda encoder: True)
    device = list(embed.embed_stream(enc, paths, batch_size=4, workers=1))
    assert [r.path for r in device] == paths
    assert isinstance(device[4], FileFailure) and device[4].reason == "no such file"
    for a, b in zip(reference, device):
        if not isinstance(a, FileFailure):
            assert float(a.vector @ b.vector) >= 0.99
