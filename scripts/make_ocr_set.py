"""Make the labelled set of `mmcli ocr`'s evaluation: pictures with known words, and pictures without.

Seeded, so the same arguments give the same pictures. Kinds:

- ``sign``: one to three lines of words (made-up words with letters and digits, common words, short
  phrases) in several fonts, sizes and colours, slightly rotated, on photo-like backgrounds (gradients,
  noise, blurred blobs), sometimes on a plate.
- ``receipt``: a shop name, items with prices and a total on paper, photographed: perspective, blur,
  JPEG at a low quality, on a background.
- ``turned``: a sign turned by 90, 180 or 270 degrees (a photo taken sideways or upside down).
- ``notext``: shape pictures (``mmcli.demo.shapes``: circles, squares, triangles, stars), photo-like
  textures and blurred blobs: no text at all.

Every picture with text prints one word found in no other picture (its ``unique`` word: the query of
the search measurement) beside words many pictures share. ``labels.jsonl`` holds one line per
picture: ``{"file", "kind", "words", "unique", "fonts", "angle"}``.

Fonts: the repo's own DejaVu Sans subset (``mmcli/cli/fonts``) and Pillow's bundled default font
(Aileron) always; DejaVu Serif/Mono and Liberation when the system has them (``fonts-dejavu``,
``fonts-liberation``). ``--fonts bundled`` uses only the first two (what the tests use).

    python scripts/make_ocr_set.py OUT_DIR [--count 200] [--notext 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageFont

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_FONT = ROOT / "mmcli" / "cli" / "fonts" / "DejaVuSans-mmcli.ttf"
SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Oblique.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
)
COMMON = (
    "OPEN", "SALE", "TOTAL", "EXIT", "WIFI", "PASSWORD", "Coffee", "Receipt", "Parking", "Station",
    "Platform", "Revenue", "Monday", "Friday", "Garden", "Market", "Ticket", "Welcome", "Office", "Hotel",
)  # fmt: skip
SYLLABLES = ("ka", "to", "rm", "li", "ven", "dor", "sa", "qu", "bel", "mi", "zan", "tri", "po", "lex", "fu", "gar")
SHOP_ITEMS = ("Milk", "Bread", "Apples", "Cheese", "Tomato", "Butter", "Rice", "Coffee", "Lemons", "Pasta")
KINDS = ("sign", "sign", "sign", "receipt", "turned")


@dataclass(frozen=True)
class Label:
    """What one picture shows: its words (as printed), the word printed in no other picture, the fonts."""

    file: str
    kind: str
    words: tuple[str, ...]
    unique: str | None
    fonts: tuple[str, ...]
    angle: int = 0


def available_fonts(which: str = "all") -> list[str]:
    """Font files to draw with: "bundled" (in the repo and in Pillow) or "all" (those and the system's)."""
    fonts = [str(BUNDLED_FONT), "pillow-default"]
    if which == "all":
        fonts += [f for f in SYSTEM_FONTS if os.path.exists(f)]
    return fonts


def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    if name == "pillow-default":
        return ImageFont.load_default(size=size)  # type: ignore[return-value]
    return ImageFont.truetype(name, size)


class Words:
    """Made-up words no other picture uses (letters and digits, as in KATORMI54 or sunflower-2024)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set(w.casefold() for w in COMMON)

    def fresh(self) -> str:
        rng = self.rng
        while True:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
            style = rng.random()
            if style < 0.25:
                word = word.upper() + str(rng.randint(10, 99))
            elif style < 0.4:
                word = f"{word}-{rng.randint(1990, 2030)}"
            elif style < 0.7:
                word = word.capitalize()
            elif style < 0.85:
                word = word.upper()
            key = word.casefold()
            if key not in self.used and not any(key in u or u in key for u in self.used if len(u) > 4):
                self.used.add(key)
                return word


def _contrast(rng: random.Random, bg: tuple[int, ...]) -> tuple[int, int, int]:
    lum = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    if lum > 128:
        return (rng.randint(0, 60), rng.randint(0, 60), rng.randint(0, 80))
    return (rng.randint(200, 255), rng.randint(200, 255), rng.randint(190, 255))


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    from PIL import ImageDraw, ImageFilter

    from mmcli.demo.shapes import photo_like

    img = photo_like(w, h, seed=rng.randrange(2**31))
    if rng.random() < 0.5:  # blurred blobs: out-of-focus things behind the sign
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(2, 6)):
            r = rng.randint(min(w, h) // 10, min(w, h) // 3)
            cx, cy = rng.randrange(w), rng.randrange(h)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(rng.randrange(256) for _ in range(3)))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(4, 12)))
    return img


def _text_block(
    lines: list[str], font: ImageFont.FreeTypeFont, fill: tuple[int, int, int], plate: tuple[int, ...] | None
) -> Image.Image:
    from PIL import Image, ImageDraw

    gap = font.size // 3
    boxes = [font.getbbox(line) for line in lines]
    width = max(b[2] - b[0] for b in boxes) + 2 * gap
    height = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) + 1)
    block = Image.new("RGBA", (width, height), (*plate, 235) if plate else (0, 0, 0, 0))
    draw = ImageDraw.Draw(block)
    y = gap
    for line, box in zip(lines, boxes):
        draw.text((gap - box[0], y - box[1]), line, font=font, fill=fill)
        y += box[3] - box[1] + gap
    return block


def put_text(
    img: Image.Image, lines: list[str], font: ImageFont.FreeTypeFont, rng: random.Random, tilt: float = 0.0
) -> None:
    """Print ``lines`` somewhere on ``img`` (tilted by ``tilt`` degrees), in a colour that stands out from
    what is behind it there, on a plate sometimes."""
    from PIL import Image, ImageStat

    plate = tuple(rng.randrange(256) for _ in range(3)) if rng.random() < 0.4 else None
    block = _text_block(lines, font, (0, 0, 0), plate)  # (measured first: its place decides its colour)
    block = block.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True)
    w, h = img.size
    if block.width > w or block.height > h:
        scale = min(w / block.width, h / block.height) * 0.95
        font = font.font_variant(size=max(8, int(font.size * scale)))
        block = _text_block(lines, font, (0, 0, 0), plate).rotate(tilt, Image.Resampling.BICUBIC, expand=True)
    x, y = rng.randint(0, max(0, w - block.width)), rng.randint(0, max(0, h - block.height))
    behind = plate or tuple(int(v) for v in ImageStat.Stat(img.crop((x, y, x + block.width, y + block.height))).mean)
    block = _text_block(lines, font, _contrast(rng, behind), plate)
    block = block.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True)
    img.paste(block, (x, y), block)


def draw_sign(rng: random.Random, words: Words, fonts: list[str], turn: int = 0) -> tuple[Image.Image, Label]:
    """A sign: 1-3 lines on a photo-like background; ``turn``: the whole picture turned (90, 180, 270)."""
    unique = words.fresh()
    line_words = [[unique]]
    if rng.random() < 0.5:
        line_words[0].append(rng.choice(COMMON))
        rng.shuffle(line_words[0])
    for _ in range(rng.randint(0, 2)):
        line_words.append([rng.choice(COMMON) for _ in range(rng.randint(1, 2))])
    font_name = rng.choice(fonts)
    font = load_font(font_name, rng.choice((20, 26, 32, 40, 52, 64)))
    w, h = rng.choice(((640, 480), (800, 600), (480, 640), (1024, 768), (512, 512)))
    img = _background(rng, w, h)
    put_text(img, [" ".join(ws) for ws in line_words], font, rng, rng.uniform(-8, 8))
    if turn:
        img = img.rotate(turn, expand=True)
    printed = tuple(w for ws in line_words for w in ws)
    return img, Label("", "turned" if turn else "sign", printed, unique, (os.path.basename(font_name),), turn)


def _perspective(img: Image.Image, rng: random.Random) -> Image.Image:
    """``img`` as if photographed at an angle: its corners moved by up to 8 % of its size."""
    import numpy as np
    from PIL import Image

    w, h = img.size
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(x + rng.uniform(-0.08, 0.08) * w, y + rng.uniform(-0.08, 0.08) * h) for x, y in src]
    rows = []
    for (x, y), (u, v) in zip(src, dst):  # output (u, v) -> input (x, y), as Image.transform wants
        rows.append([u, v, 1, 0, 0, 0, -x * u, -x * v])
        rows.append([0, 0, 0, u, v, 1, -y * u, -y * v])
    coeffs = np.linalg.solve(np.array(rows, dtype=np.float64), np.array([c for p in src for c in p], float))
    return img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs.tolist(), Image.Resampling.BICUBIC)


def draw_receipt(rng: random.Random, words: Words, fonts: list[str]) -> tuple[Image.Image, Label]:
    """A receipt: shop name, items with prices, a total; photographed at an angle, blurred, JPEG-worn."""
    from PIL import ImageFilter

    unique = words.fresh()
    items = rng.sample(SHOP_ITEMS, rng.randint(2, 4))
    prices = [f"{rng.randint(0, 19)}.{rng.randint(0, 99):02d}" for _ in items]
    lines = [unique.upper() if rng.random() < 0.5 else unique] + [f"{i} {p}" for i, p in zip(items, prices)]
    lines.append(f"TOTAL {sum(float(p) for p in prices):.2f}")
    font_name = rng.choice(fonts)
    font = load_font(font_name, rng.choice((22, 26, 30, 36)))
    paper = _text_block(lines, font, (rng.randint(0, 50),) * 3, (rng.randint(225, 250),) * 3)
    paper = paper.convert("RGB").resize((int(paper.width * 1.1), int(paper.height * 1.15)))
    pw, ph = paper.size
    canvas = _background(rng, int(pw * 1.4), int(ph * 1.3))
    canvas.paste(paper, ((canvas.width - pw) // 2, (canvas.height - ph) // 2))
    img = _perspective(canvas, rng).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    printed = [lines[0]] + [t for line in lines[1:] for t in line.split()]
    return img.convert("RGB"), Label("", "receipt", tuple(printed), lines[0], (os.path.basename(font_name),))


def draw_notext(rng: random.Random, k: int) -> tuple[Image.Image, Label]:
    """No text: a shape picture, a photo-like texture, or blurred blobs (cycled by ``k``)."""
    from PIL import ImageDraw, ImageFilter

    from mmcli.demo.shapes import draw_shape, photo_like, random_spec

    kind = k % 3
    if kind == 0:
        spec = random_spec(rng)
        img, what = draw_shape(spec, size=rng.choice((160, 256, 384)), seed=rng.randrange(2**31)), spec.label
    elif kind == 1:
        img, what = photo_like(rng.choice((512, 640)), rng.choice((384, 480)), seed=rng.randrange(2**31)), "texture"
    else:
        img = photo_like(640, 480, seed=rng.randrange(2**31))
        draw = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 8)):
            x, y, r = rng.randrange(640), rng.randrange(480), rng.randint(20, 120)
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=tuple(rng.randrange(256) for _ in range(3)))
        img, what = img.filter(ImageFilter.GaussianBlur(rng.uniform(1, 5))), "blocks"
    return img, Label("", "notext", (), None, (what,))


def make_set(out: Path, count: int = 200, notext: int = 60, seed: int = 0, fonts: str = "all") -> list[Label]:
    """Write ``count`` pictures with text and ``notext`` without into ``out``, and ``labels.jsonl``."""
    rng = random.Random(seed)
    words = Words(random.Random(seed + 1))
    font_files = available_fonts(fonts)
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(count + notext):
        if i < count:
            kind = KINDS[i % len(KINDS)]
            if kind == "receipt":
                img, label = draw_receipt(rng, words, font_files)
            else:
                img, label = draw_sign(rng, words, font_files, rng.choice((90, 180, 270)) if kind == "turned" else 0)
        else:
            img, label = draw_notext(rng, i - count)
        jpeg = label.kind == "receipt" or rng.random() < 0.6
        name = f"{i:04d}_{label.kind}.{'jpg' if jpeg else 'png'}"
        if jpeg:
            img.save(out / name, quality=rng.randint(45, 85) if label.kind == "receipt" else 88)
        else:
            img.save(out / name)
        labels.append(Label(name, label.kind, label.words, label.unique, label.fonts, label.angle))
    with open(out / "labels.jsonl", "w", encoding="utf-8") as f:
        for label in labels:
            f.write(json.dumps(asdict(label), ensure_ascii=False) + "\n")
    return labels


def read_labels(folder: Path) -> list[Label]:
    with open(folder / "labels.jsonl", encoding="utf-8") as f:
        return [Label(**{**d, "words": tuple(d["words"]), "fonts": tuple(d["fonts"])}) for d in map(json.loads, f)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=200, help="pictures with text (default 200)")
    parser.add_argument("--notext", type=int, default=60, help="pictures without text (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fonts", choices=("all", "bundled"), default="all")
    args = parser.parse_args(argv)
    labels = make_set(args.out, args.count, args.notext, args.seed, args.fonts)
    kinds = {k: sum(1 for lab in labels if lab.kind == k) for k in sorted({lab.kind for lab in labels})}
    print(f"wrote {len(labels)} pictures to {args.out} ({kinds}); fonts: {available_fonts(args.fonts)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
