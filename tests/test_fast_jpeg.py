"""The libjpeg-turbo path for JPEGs (mmcli.media.jpeg, simplejpeg) against Pillow alone: the same
pixels at every DCT scale, the same vectors, the same errors; what it does not take goes to Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from hostile import exif_jpeg, make_corpus
from PIL import Image

from mmcli.demo.shapes import photo_like
from mmcli.embedding.batch import embed_stream
from mmcli.errors import ImageLoadError
from mmcli.media import jpeg
from mmcli.media.images import load_image
from mmcli.models import load_encoder, parse_model_spec
from mmcli.results import ImageVector


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """Photo-like content at an odd size (not a multiple of the 16 px MCU): 2401 x 1799."""
    return photo_like(480, 360, seed=7).resize((2401, 1799), Image.Resampling.BICUBIC)


def _both(path: Path, min_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    fast = np.asarray(load_image(path, min_side=min_side, data=data))
    pillow = np.asarray(load_image(path, min_side=min_side, data=data, turbo=False))
    return fast, pillow


def _taken(path: Path) -> bool:
    """Whether the fast path decodes ``path`` (rather than leaving it to Pillow)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        return jpeg.decode(img, data, 1) is not None


def test_simplejpeg_is_installed() -> None:
    assert jpeg.available()  # a runtime dependency: without it every JPEG silently goes to Pillow


@pytest.mark.parametrize(
    "kind", ["420", "444", "422", "progressive", "grey", "rgb_no_transform", "mpo", "small", "exif_quality"]
)
@pytest.mark.parametrize("min_side", [None, 256, 150, 64])  # DCT scale 1, 2, 4, 8 for 2401 x 1799
def test_same_pixels_as_pillow_at_every_scale(photo: Image.Image, tmp_path: Path, kind: str, min_side) -> None:
    path = tmp_path / f"{kind}.jpg"
    if kind == "420":
        photo.save(path, quality=92)
    elif kind == "444":
        photo.save(path, quality=92, subsampling=0)
    elif kind == "422":
        photo.save(path, quality=92, subsampling=1)
    elif kind == "progressive":
        photo.save(path, quality=85, progressive=True)
    elif kind == "grey":
        photo.convert("L").save(path, quality=90)
    elif kind == "rgb_no_transform":
        photo.save(path, quality=90, keep_rgb=True)
    elif kind == "mpo":
        photo.save(path, "MPO", save_all=True, append_images=[photo.rotate(90)], quality=90)
    elif kind == "small":
        photo.resize((333, 250)).save(path, quality=90)
    else:
        exif = Image.Exif()
        exif[0x0132] = "2026:05:01 12:00:00"
        photo.save(path, quality=97, exif=exif.tobytes())
    assert _taken(path)
    fast, pillow = _both(path, min_side)
    assert fast.shape == pillow.shape and fast.dtype == pillow.dtype == np.uint8
    assert np.array_equal(fast, pillow)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_same_as_pillow(photo: Image.Image, tmp_path: Path, orientation: int) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    exif_jpeg(path, photo, orientation)
    assert _taken(path)
    for min_side in (None, 150):
        fast, pillow = _both(path, min_side)
        assert np.array_equal(fast, pillow)
        assert (fast.shape[1] > fast.shape[0]) == (photo.width > photo.height)  # upright


def test_cmyk_goes_to_pillow(photo: Image.Image, tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    photo.convert("CMYK").save(path, quality=90)
    assert not _taken(path)
    fast, pillow = _both(path, 150)
    assert fast.shape[2] == 3 and np.array_equal(fast, pillow)


def _outcome(path: Path, turbo: bool, **kw) -> str | np.ndarray:
    """What ``load_image`` makes of ``path``: its pixels, or the reason it gives."""
    try:
        return np.asarray(load_image(path, data=path.read_bytes(), turbo=turbo, **kw))
    except ImageLoadError as exc:
        return exc.reason


def test_hostile_jpegs_give_the_same_errors(photo: Image.Image, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "hostile")
    jpegs = [Path(p) for p in corpus.bad if p.endswith(".jpg")]
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90, progressive=True)
    whole = buf.getvalue()
    for name, keep in (("cut_progressive.jpg", 0.5), ("cut_late.jpg", 0.98)):
        (tmp_path / name).write_bytes(whole[: int(len(whole) * keep)])
        jpegs.append(tmp_path / name)
    middle = len(whole) // 2
    (tmp_path / "garbage.jpg").write_bytes(whole[:middle] + b"\xff\x00" * 32 + whole[middle + 64 :])
    jpegs.append(tmp_path / "garbage.jpg")
    errors = 0
    for path in jpegs:
        for min_side in (None, 150):
            pillow, fast = _outcome(path, False, min_side=min_side), _outcome(path, True, min_side=min_side)
            if isinstance(pillow, str):
                assert fast == pillow, path
                errors += 1
            else:  # Pillow tolerates it (libjpeg warnings): the fast path leaves it to Pillow, same pixels
                assert isinstance(fast, np.ndarray) and np.array_equal(fast, pillow), path
    assert errors >= 12  # empty, text, truncated, corrupt header, scan bomb, cut progressive: both sizes
    big = tmp_path / "big.jpg"
    photo.save(big, quality=90)
    too_large = _outcome(big, True, max_pixels=1_000_000)
    assert too_large == _outcome(big, False, max_pixels=1_000_000)
    assert "too large: 2401x1799" in too_large


def test_pipeline_takes_the_fast_path_with_the_same_vectors(
    photo: Image.Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``embed_stream`` (what ``mmcli index`` runs) decodes through simplejpeg, and its vectors are those
    of Pillow-decoded images (cosine >= 0.999; the pixels are the same, so 1 up to float rounding)."""
    paths = []
    for i, (w, h) in enumerate([(2401, 1799), (640, 480), (1799, 2401)]):
        p = tmp_path / f"p{i}.jpg"
        exif_jpeg(p, photo.resize((w, h)), (1, 6, 3)[i])
        paths.append(p)
    photo.convert("L").save(tmp_path / "grey.jpg", quality=90)
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    paths += [tmp_path / "grey.jpg", tmp_path / "cmyk.jpg"]
    taken: list[bool] = []
    real = jpeg.decode

    def counting(img, data, scale):  # noqa: ANN001, ANN202
        out = real(img, data, scale)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(jpeg, "decode", counting)
    encoder = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    got = list(embed_stream(encoder, [str(p) for p in paths], batch_size=2, workers=1))
    assert taken == [True, True, True, True, False]  # CMYK goes to Pillow
    assert all(isinstance(v, ImageVector) for v in got)
    pre = encoder.preprocess
    ref = encoder.encode_images(
        np.stack([pre.to_array(load_image(p, min_side=pre.min_side, turbo=False)) for p in paths])
    )
    cos = (np.stack([v.vector for v in got]) * ref).sum(axis=1)  # type: ignore[union-attr]
    assert cos.min() >= 0.999, cos
