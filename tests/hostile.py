"""A corpus of hostile inputs, generated here (nothing is downloaded).

``make_corpus(folder)`` writes the files and returns what a run over them must do with each:
``good`` files must be processed; ``bad`` files must be reported once, with a reason matching the
given pattern; ``unlisted`` entries are not images to a folder walk (symlink loops, dangling links, an SVG) and are
reported only when named explicitly; ``folders`` (a directory named x.jpg) are walked, finding nothing.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mmcli.demo.shapes import ShapeSpec, draw_shape, photo_like


@dataclass
class Corpus:
    good: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # path -> regex of the reason
    unlisted: dict[str, str] = field(default_factory=dict)  # path -> regex of the reason when named
    folders: list[str] = field(default_factory=list)  # directories named like images: walked, empty


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int) -> None:
    """A real PNG of side x side black greyscale pixels: tiny on disk, huge when decoded."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
    )


def scan_bomb_jpeg(path: Path, repeats: int = 300) -> None:
    """A small progressive JPEG whose scans are repeated: thousands of passes over the image to decode
    (the real ones, 8192 x 8192, cost 13 s each). mmcli must refuse it from its markers."""
    img = Image.fromarray((np.random.default_rng(3).random((64, 64, 3)) * 255).astype("uint8"))
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    first, end = data.index(b"\xff\xda"), data.rindex(b"\xff\xd9")
    path.write_bytes(data[:first] + data[first:end] * repeats + b"\xff\xd9")


def header_only_png(path: Path, width: int, height: int) -> None:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b""))


def exif_jpeg(path: Path, upright: Image.Image, orientation: int) -> None:
    """Store ``upright`` the way a camera would for ``orientation`` (EXIF tag 0x0112)."""
    t = Image.Transpose
    stored = {
        1: upright,
        2: upright.transpose(t.FLIP_LEFT_RIGHT),
        3: upright.transpose(t.ROTATE_180),
        4: upright.transpose(t.FLIP_TOP_BOTTOM),
        5: upright.transpose(t.TRANSPOSE),
        6: upright.transpose(t.ROTATE_90),
        7: upright.transpose(t.TRANSVERSE),
        8: upright.transpose(t.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


def make_corpus(folder: Path) -> Corpus:
    folder.mkdir(parents=True, exist_ok=True)
    c = Corpus()

    def good(name: str | bytes) -> Path:
        p = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
        c.good.append(str(p))
        return p

    def bad(name: str, reason: str) -> Path:
        p = folder / name
        c.bad[str(p)] = reason
        return p

    shape = draw_shape(ShapeSpec("red", "star"), size=160, seed=1)
    photo = photo_like(320, 240, seed=2)
    shape.save(good("plain.jpg"), quality=92)
    photo.convert("CMYK").save(good("cmyk.jpg"))
    Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257).save(good("grey16.png"))
    pal = shape.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(good("palette_transparent.png"), transparency=0)
    shape.convert("LA").save(good("la.png"))
    frames = [draw_shape(ShapeSpec(col, "circle"), size=64, seed=i) for i, col in enumerate(("blue", "green"))]
    frames[0].save(good("animated.gif"), save_all=True, append_images=frames[1:], duration=40, loop=0)
    frames[0].save(good("animated.webp"), save_all=True, append_images=frames[1:], duration=40)
    frames[0].save(good("multipage.tif"), save_all=True, append_images=frames[1:])
    shape.save(good("bitmap.bmp"))
    Image.new("RGB", (1, 100_000), (200, 30, 30)).save(good("strip.png"))
    Image.fromarray(np.linspace(-5, 5, 64 * 48, dtype=np.float32).reshape(48, 64), mode="F").save(good("float.tif"))
    for o in range(1, 9):
        exif_jpeg(good(f"exif_{o}.jpg"), shape, o)
    shape.save(good("name with spaces.jpg"))
    shape.save(good("new\nline.jpg"))
    shape.save(good(b"latin1_\xe9\xff.jpg"))
    shape.save(good("-leading-dash.jpg"))

    bad("empty.jpg", "empty file").write_bytes(b"")
    bad("text.jpg", "not an image").write_text("just some text\n")
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    bad("truncated.jpg", "truncated|corrupt").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    bad("truncated.png", "truncated|corrupt").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    bad("corrupt_header.jpg", "not an image|corrupt|truncated").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(64)))
    header_only_png(bad("bomb_header.png", "too large: 40000x40000"), 40000, 40000)
    bomb_png(bad("bomb.png", "too large: 20000x20000"), 20000)
    scan_bomb_jpeg(bad("scan_bomb.jpg", "scans"))

    svg = folder / "drawing.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    c.unlisted[str(svg)] = "not an image"
    loop_a, loop_b = folder / "loop_a.jpg", folder / "loop_b.jpg"
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    c.unlisted[str(loop_a)] = "symbolic links|no such file"
    dangling = folder / "dangling.jpg"
    os.symlink(folder / "nowhere.jpg", dangling)
    c.unlisted[str(dangling)] = "no such file"
    (folder / "dir.jpg").mkdir()
    c.folders.append(str(folder / "dir.jpg"))
    return c


MAX_PIXELS = 100_000_000  # the runs use this limit, so the 20000 x 20000 bomb is refused
