"""Our Pillow+numpy preprocessing against open_clip's own transform."""

from __future__ import annotations

import numpy as np
import pytest

from mmcli.demo.shapes import photo_like
from mmcli.media.preprocess import Preprocess


@pytest.mark.parametrize("mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("size", [(640, 480), (300, 900), (97, 131), (256, 256), (120, 100)])
def test_matches_open_clip_transform(mode: str, size: tuple[int, int]) -> None:
    from open_clip.transform import image_transform

    img = photo_like(*size, seed=sum(size))
    ours = Preprocess(size=(224, 224), resize_mode=mode).to_array(img)
    ref = image_transform(224, is_train=False, resize_mode=mode)(img).numpy()
    assert ours.shape == ref.shape == (3, 224, 224)
    assert np.abs(ours - ref).max() < 1e-5


def test_bilinear_and_custom_stats() -> None:
    from open_clip.transform import image_transform

    img = photo_like(333, 222, seed=3)
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    ours = Preprocess(size=(256, 256), mean=mean, std=std, interpolation="bilinear").to_array(img)
    ref = image_transform(256, is_train=False, mean=mean, std=std, interpolation="bilinear")(img).numpy()
    assert np.abs(ours - ref).max() < 1e-5
