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

Box = tuple[int, int, int, int]  # (left, top, right, bottom), as Pillow's crop takes it


@dataclass(frozen=True)
class Geometry:
    """Where an image's pixels go, computed from its size alone: the Pillow and tensor paths share it.

    Applied in order: ``precrop`` (a box in the source), resize to ``resized`` (width, height), then
    either ``crop`` (a box in the resized image) or ``paste`` (the resized image's top-left corner
    on a canvas of the model's size). Neither is set for "squash", which resizes to the model's size.
    """

    precrop: Box | None
    resized: tuple[int, int]
    crop: Box | None = None
    paste: tuple[int, int] | None = None


def _precrop_box(w: int, h: int, th: int, tw: int) -> Box:
    """The centre part of an extreme strip that the centre crop would keep (with a margin).

    Resize-then-crop of an extreme strip allocates the whole resized strip; cropping first keeps
    memory bounded and gives the same pixels up to the resampling filter's edge.
    """
    if w > h:
        keep = min(w, max(1, round(h * tw / th)) * 2)
        left = (w - keep) // 2
        return left, 0, left + keep, h
    keep = min(h, max(1, round(w * th / tw)) * 2)
    top = (h - keep) // 2
    return 0, top, w, top + keep


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
    def from_dict(cls, fields: dict[str, Any]) -> Preprocess:
        """From ``dataclasses.asdict`` of one, read back from JSON (an index's meta, a tower's sidecar)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

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

    def geometry(self, w: int, h: int) -> Geometry:
        """The geometry of a ``w`` x ``h`` image: open_clip's ``image_transform(is_train=False)``."""
        th, tw = self.size
        if self.resize_mode == "squash":
            return Geometry(None, (tw, th))
        if self.resize_mode == "longest":
            scale = min(th / h, tw / w)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            return Geometry(None, (nw, nh), paste=((tw - nw) // 2, (th - nh) // 2))
        # shortest: torchvision Resize(int) semantics, then CenterCrop (never smaller than the crop)
        precrop = _precrop_box(w, h, th, tw) if max(w, h) > MAX_ASPECT * min(w, h) else None
        if precrop is not None:
            w, h = precrop[2] - precrop[0], precrop[3] - precrop[1]
        if th == tw:
            short, long_ = (w, h) if w <= h else (h, w)
            new_short, new_long = th, int(th * long_ / short)
            nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            scale = max(th / h, tw / w)
            nw, nh = round(w * scale), round(h * scale)
        left, top = int(round((nw - tw) / 2.0)), int(round((nh - th) / 2.0))
        return Geometry(precrop, (nw, nh), crop=(left, top, left + tw, top + th))

    def resize(self, img: Image.Image) -> Image.Image:
        from PIL import Image

        g = self.geometry(*img.size)
        if g.precrop is not None:
            img = img.crop(g.precrop)
        if g.resized != img.size:
            img = img.resize(g.resized, self._resample())
        if g.paste is not None:
            th, tw = self.size
            canvas = Image.new("RGB", (tw, th), (self.fill_color,) * 3)
            canvas.paste(img, g.paste)
            return canvas
        return img.crop(g.crop) if g.crop is not None else img

    def to_array(self, img: Image.Image) -> np.ndarray:
        """An RGB image -> (3, H, W) float32, normalised."""
        return self.normalise(np.asarray(self.resize(img), dtype=np.uint8))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """Resized uint8 pixels, (H, W, 3) or (N, H, W, 3) -> float32 (3, H, W) or (N, 3, H, W): scaled to
        [0, 1], less the mean, over the std (one arithmetic for local, Ray and single images)."""
        arr = pixels.astype(np.float32) / np.float32(255)
        arr = (arr - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(np.moveaxis(arr, -1, -3))
