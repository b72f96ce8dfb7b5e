"""open_clip's inference preprocessing, reimplemented on Pillow + numpy (no torch).

It runs in decoding worker processes, which then need neither torch nor torchvision. For an RGB
image it gives the same pixels as open_clip's ``image_transform(is_train=False)`` (torchvision's
Resize on a PIL image is Pillow's resize; CenterCrop rounds the offsets the same way); the
equivalence is a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


MAX_ASPECT = 8  # beyond this, crop before resizing: a 1 x 100000 strip must not become 256 x 25.6M


def _precrop(img: Image.Image, w: int, h: int, th: int, tw: int) -> tuple[Image.Image, int, int]:
    """Keep the centre part that the centre crop would keep (with a margin), before resizing.

    Resize-then-crop of an extreme strip allocates the whole resized strip; cropping first keeps
    memory bounded and gives the same pixels up to the resampling filter's edge.
    """
    if w > h:
        keep = min(w, max(1, round(h * tw / th)) * 2)
        left = (w - keep) // 2
        img = img.crop((left, 0, left + keep, h))
        return img, keep, h
    keep = min(h, max(1, round(w * th / tw)) * 2)
    top = (h - keep) // 2
    img = img.crop((0, top, w, top + keep))
    return img, w, keep


@dataclass(frozen=True)
class Preprocess:
    """Resize + crop + normalise, as the model was trained to see images."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"  # or "bilinear"
    resize_mode: str = "shortest"  # "shortest" (resize + centre crop), "longest" (resize + pad), "squash"
    fill_color: int = 0

    @classmethod
    def from_open_clip(cls, cfg: dict[str, Any], image_size: Any) -> Preprocess:
        size = cfg.get("size", image_size)
        if isinstance(size, int):
            size = (size, size)
        interpolation = cfg.get("interpolation", "bicubic")
        return cls(
            size=(int(size[0]), int(size[1])),
            mean=tuple(float(v) for v in cfg.get("mean", OPENAI_MEAN)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in cfg.get("std", OPENAI_STD)),  # type: ignore[arg-type]
            interpolation="bilinear" if interpolation == "bilinear" else "bicubic",
            resize_mode=cfg.get("resize_mode", "shortest") or "shortest",
            fill_color=int(cfg.get("fill_color", 0) or 0),
        )

    @property
    def min_side(self) -> int:
        return min(self.size)

    def _resample(self) -> int:
        from PIL import Image

        return Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC

    def resize(self, img: Image.Image) -> Image.Image:
        from PIL import Image

        th, tw = self.size
        w, h = img.size
        if self.resize_mode == "squash":
            return img.resize((tw, th), self._resample())
        if self.resize_mode == "longest":
            scale = min(th / h, tw / w)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            img = img.resize((nw, nh), self._resample())
            canvas = Image.new("RGB", (tw, th), (self.fill_color,) * 3)
            canvas.paste(img, ((tw - nw) // 2, (th - nh) // 2))
            return canvas
        # shortest: torchvision Resize(int) semantics, then CenterCrop
        if max(w, h) > MAX_ASPECT * min(w, h):
            img, w, h = _precrop(img, w, h, th, tw)
        if th == tw:
            short, long_ = (w, h) if w <= h else (h, w)
            new_short, new_long = th, int(th * long_ / short)
            nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            scale = max(th / h, tw / w)
            nw, nh = round(w * scale), round(h * scale)
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), self._resample())
        left = int(round((nw - tw) / 2.0))
        top = int(round((nh - th) / 2.0))
        if left < 0 or top < 0:  # smaller than the crop: pad like torchvision
            canvas = Image.new("RGB", (max(tw, nw), max(th, nh)))
            canvas.paste(img, (max(0, -left), max(0, -top)))
            img, left, top = canvas, max(0, left), max(0, top)
        return img.crop((left, top, left + tw, top + th))

    def to_array(self, img: Image.Image) -> np.ndarray:
        """An RGB image -> (3, H, W) float32, normalised."""
        arr = np.asarray(self.resize(img), dtype=np.float32) / np.float32(255)
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
