"""Synthetic shape images: the training data of mmcli-tiny, the demo corpus and test fixtures.

Solid shapes (circle, square, triangle, star) in eight colours, of varied size, position and
rotation, on a plain background of another colour. Everything is seeded, so a corpus can be
regenerated exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (140, 40, 170),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}


@dataclass(frozen=True)
class ShapeSpec:
    """What one synthetic image shows."""

    colour: str
    shape: str

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.dist(a, b)


def _background(rng: random.Random, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """A random background far from the shape colour and not itself close to a named colour."""
    while True:
        bg = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if _distance(bg, colour) < 150:
            continue
        if min(_distance(bg, c) for c in COLOURS.values()) < 70:
            continue
        return bg


def _jitter(rng: random.Random, colour: tuple[int, int, int], amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        points = [
            (
                r * 0.8 * math.cos(angle + k * math.pi / 2 + math.pi / 4) * math.sqrt(2) * 0.85,
                r * 0.8 * math.sin(angle + k * math.pi / 2 + math.pi / 4) * math.sqrt(2) * 0.85,
            )
            for k in range(4)
        ]
    elif shape == "triangle":
        points = [
            (
                r * math.cos(angle + k * 2 * math.pi / 3 - math.pi / 2),
                r * math.sin(angle + k * 2 * math.pi / 3 - math.pi / 2),
            )
            for k in range(3)
        ]
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.42
            a = angle + k * math.pi / 5 - math.pi / 2
            points.append((radius * math.cos(a), radius * math.sin(a)))
    else:
        raise ValueError(f"not a polygon shape: {shape}")
    return [(cx + x, cy + y) for x, y in points]


def draw_shape(spec: ShapeSpec, size: int = 128, seed: int = 0, rotate: bool = True) -> Image.Image:
    """Draw one RGB image of ``spec`` at ``size`` x ``size`` pixels (supersampled 2x)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    colour = _jitter(rng, COLOURS[spec.colour])
    canvas = size * 2
    img = Image.new("RGB", (canvas, canvas), _background(rng, COLOURS[spec.colour]))
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.18, 0.42) * canvas
    cx = rng.uniform(r, canvas - r)
    cy = rng.uniform(r, canvas - r)
    if spec.shape == "circle":
        draw.ellipse((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=colour)
    else:
        angle = rng.uniform(-0.5, 0.5) if rotate else 0.0
        draw.polygon(_polygon(spec.shape, cx, cy, r, angle), fill=colour)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def all_specs() -> list[ShapeSpec]:
    return [ShapeSpec(c, s) for c in COLOURS for s in SHAPES]


def random_spec(rng: random.Random) -> ShapeSpec:
    return ShapeSpec(rng.choice(list(COLOURS)), rng.choice(SHAPES))


def write_corpus(
    folder: Path, count: int, seed: int = 0, size: int = 160, fmt: str = "jpg"
) -> list[tuple[Path, ShapeSpec]]:
    """Write ``count`` shape images named ``NNNN_colour_shape.fmt`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    written = []
    for i in range(count):
        spec = random_spec(rng)
        img = draw_shape(spec, size=size, seed=rng.randrange(2**31))
        path = folder / f"{i:04d}_{spec.colour}_{spec.shape}.{fmt}"
        img.save(path, quality=92) if fmt in ("jpg", "jpeg") else img.save(path)
        written.append((path, spec))
    return written


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, blobs of texture and sensor-like noise.

    Not flat colour, so JPEG decoding, resizing and embeddings behave as on real photos.
    """
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), dtype=np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 128 + 80 * np.sin(x / width * fx * 3.14 + phase) * np.cos(y / height * fy * 3.14)
    small = rng.uniform(0, 255, (max(2, height // 64), max(2, width // 64), 3)).astype(np.uint8)
    texture = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    img = 0.6 * img + 0.4 * np.asarray(texture, dtype=np.float32)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(0.6))
