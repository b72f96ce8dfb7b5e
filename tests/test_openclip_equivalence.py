"""mmcli against open_clip itself, on the default architecture with random stand-in weights.

The weights are saved to a safetensors file and loaded through ``--weights``: the same code path
and cost as real weights. Reference = open_clip's own model + preprocess + formula.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmcli.cli import app
from mmcli.demo.shapes import photo_like

ARCH = "ViT-B-32-256"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    model.eval()
    folder = tmp_path_factory.mktemp("standin")
    weights = folder / "vit-b-32-256-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return model, preprocess, open_clip.get_tokenizer(ARCH), weights


@pytest.fixture(scope="module")
def real_size_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("realsize")
    paths = []
    jpg = folder / "photo.jpg"
    photo_like(1000, 750, seed=1).save(jpg, quality=90)
    png = folder / "photo.png"
    photo_like(640, 480, seed=2).save(png)
    rgba = folder / "opaque_rgba.png"
    photo_like(500, 700, seed=3).convert("RGBA").save(rgba)
    grey = folder / "grey.jpg"
    photo_like(800, 600, seed=4).convert("L").save(grey, quality=90)
    paths += [jpg, png, rgba, grey]
    return paths


def _reference_embeddings(model, preprocess, paths: list[Path]) -> np.ndarray:
    import torch
    from PIL import Image

    with torch.no_grad():
        x = torch.stack([preprocess(Image.open(p)) for p in paths])
        f = model.encode_image(x)
        f = f / f.norm(dim=-1, keepdim=True)
    return f.numpy()


def test_embeddings_match_open_clip(runner, reference, real_size_images: list[Path], tmp_path: Path) -> None:
    model, preprocess, _, weights = reference
    out = tmp_path / "emb.npy"
    result = runner.invoke(
        app,
        [
            "embed",
            *map(str, real_size_images),
            "--model",
            ARCH,
            "--weights",
            str(weights),
            "--precision",
            "fp32",
            "--device",
            "cpu",
            "-o",
            str(out),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.stderr
    ours = np.load(out)
    meta = json.loads((tmp_path / "emb.paths.json").read_text())
    assert meta["paths"] == [str(p) for p in real_size_images]
    ref = _reference_embeddings(model, preprocess, real_size_images)
    cosine = (ours * ref).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_classify_probabilities_match_reference_formula(runner, reference, real_size_images: list[Path]) -> None:
    import torch

    model, preprocess, tokenizer, weights = reference
    labels = ["a cat", "a dog", "a red car", "mountains at dusk"]
    result = runner.invoke(
        app,
        [
            "classify",
            *map(str, real_size_images),
            "--labels",
            *labels,
            "--template",
            "{}",
            "--model",
            ARCH,
            "--weights",
            str(weights),
            "--precision",
            "fp32",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    img = torch.from_numpy(_reference_embeddings(model, preprocess, real_size_images))
    with torch.no_grad():
        txt = model.encode_text(tokenizer(labels))
        txt = txt / txt.norm(dim=-1, keepdim=True)
        probs = (model.logit_scale.exp() * img @ txt.T).softmax(dim=-1).numpy()
    for row, expected in zip(rows, probs):
        got = {x["label"]: x["score"] for x in row["labels"]}
        assert max(abs(got[lab] - expected[i]) for i, lab in enumerate(labels)) <= 1e-4


def test_text_embeddings_match_open_clip(runner, reference) -> None:
    import torch

    model, _, tokenizer, weights = reference
    texts = ["a red car", "a photo of a dog"]
    result = runner.invoke(
        app, ["embed", "--text", *texts, "--model", ARCH, "--weights", str(weights), "--precision", "fp32"]
    )
    assert result.exit_code == 0, result.stderr
    ours = np.array([json.loads(line)["embedding"] for line in result.stdout.splitlines()])
    with torch.no_grad():
        ref = model.encode_text(tokenizer(texts))
        ref = (ref / ref.norm(dim=-1, keepdim=True)).numpy()
    assert ((ours * ref).sum(axis=1) >= 0.9999).all()


def test_jpeg_draft_decoding_agrees_with_full_decoding(reference, tmp_path: Path) -> None:
    """A 12 MP JPEG decoded with DCT scaling embeds like the fully decoded image (cosine >= 0.99)."""
    from mmcli.media.images import load_pixels
    from mmcli.models import load_encoder, parse_model_spec

    _, _, _, weights = reference
    path = tmp_path / "big.jpg"
    photo_like(4000, 3000, seed=5).save(path, quality=90)
    encoder = load_encoder(parse_model_spec(ARCH, weights), device="cpu", precision="fp32")
    fast = load_pixels(path, encoder.preprocess, fast_decode=True)
    full = load_pixels(path, encoder.preprocess, fast_decode=False)
    assert not np.array_equal(fast, full)  # the draft path really ran
    a, b = encoder.encode_images(np.stack([fast, full]))
    assert float(a @ b) >= 0.99


def test_pickle_checkpoint_is_refused_and_never_runs(runner, tmp_path: Path, shapes_dir: Path) -> None:
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    result = runner.invoke(
        app, ["classify", str(shapes_dir / "red_star.jpg"), "--labels", "a", "--model", ARCH, "--weights", str(evil)]
    )
    assert result.exit_code == 1
    assert "refusing to load" in result.stderr
    assert not marker.exists()


def test_weights_of_another_architecture_are_a_clear_error(runner, shapes_dir: Path) -> None:
    from mmcli.config import configs_dir

    tiny = configs_dir() / "mmcli-tiny" / "open_clip_model.safetensors"
    result = runner.invoke(
        app, ["classify", str(shapes_dir / "red_star.jpg"), "--labels", "a", "--model", ARCH, "--weights", str(tiny)]
    )
    assert result.exit_code == 1
    assert "do not fit ViT-B-32-256" in result.stderr


def test_default_model_from_the_hub_cache_works_offline(reference, shapes_dir: Path, tmp_path: Path) -> None:
    """Weights already in the Hugging Face cache are used without touching the network."""
    from conftest import run_mmcli

    _, _, _, weights = reference
    repo = tmp_path / "hub" / "models--laion--CLIP-ViT-B-32-256x256-DataComp-s34B-b86K"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").symlink_to(weights)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"}
    listed = run_mmcli("models", "-f", "jsonl", env=env)
    rows = {r["name"]: r for r in map(json.loads, listed.stdout.decode().splitlines())}
    assert rows["default"]["local"] is True
    proc = run_mmcli("classify", str(shapes_dir / "red_star.jpg"), "--labels", "a", "b", "--precision", "fp32", env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert [x["label"] for x in json.loads(proc.stdout)["labels"]] in (["a", "b"], ["b", "a"])


def test_onnx_towers_match_open_clip(reference, real_size_images: list[Path], tmp_path: Path, monkeypatch) -> None:
    """The towers that small jobs and new queries use without torch give open_clip's embeddings; the text
    tower, run only up to each batch's end-of-text token, on hard strings too (non-Latin, emoji, HTML,
    past the context length), alone and in batches of mixed lengths."""
    import torch
    from test_text_tower import STRINGS

    from mmcli.media.images import load_pixels
    from mmcli.models import parse_model_spec
    from mmcli.models.onnx_export import export_tower
    from mmcli.models.onnx_towers import OnnxImageEncoder, OnnxTextEncoder
    from mmcli.models.tower_files import tower_state

    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / "cache"))
    model, preprocess, tokenizer, weights = reference
    spec = parse_model_spec(ARCH, weights)
    assert export_tower(spec, "text").done and export_tower(spec, "image").done
    assert tower_state(spec).meta["lengths"] == "prefix"
    images = OnnxImageEncoder(spec)
    pixels = np.stack([load_pixels(str(p), images.preprocess) for p in real_size_images])
    ours = images.encode_images(pixels)
    assert ((ours * _reference_embeddings(model, preprocess, real_size_images)).sum(axis=1) >= 0.9999).all()
    texts = ["a red car", "a photo of a dog", "日本語", "", *STRINGS, "🚗" * 100, "word " * 76, "word " * 75]
    with torch.no_grad():
        ref = model.encode_text(tokenizer(texts))
        ref = (ref / ref.norm(dim=-1, keepdim=True)).numpy()
    onnx = OnnxTextEncoder(spec)
    together = onnx.encode_texts(texts)
    alone = np.vstack([onnx.encode_texts([t]) for t in texts])
    assert (together * ref).sum(axis=1).min() >= 0.9999 and (alone * ref).sum(axis=1).min() >= 0.9999
