"""Decoding rules: EXIF orientation, modes, alpha, animations, bombs, bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcli.demo.shapes import photo_like
from mmcli.errors import ImageLoadError
from mmcli.media.images import expand_inputs, load_image, walk_images


def _png_with_header_only(path: Path, width: int, height: int) -> None:
    """A PNG claiming width x height whose pixel data is absent (a bomb's header costs nothing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_image(tmp_path: Path, orientation: int) -> None:
    upright = photo_like(120, 80, seed=1)
    # what a camera stores for each orientation: the inverse of the transform that makes it upright
    stored = {
        1: upright,
        2: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        3: upright.transpose(Image.Transpose.ROTATE_180),
        4: upright.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        5: upright.transpose(Image.Transpose.TRANSPOSE),
        6: upright.transpose(Image.Transpose.ROTATE_90),
        7: upright.transpose(Image.Transpose.TRANSVERSE),
        8: upright.transpose(Image.Transpose.ROTATE_270),
    }
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored[orientation].save(path, exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.size == upright.size
    assert np.array_equal(np.asarray(loaded), np.asarray(upright))


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (0, 0, 255, 255))
    img.save(tmp_path / "a.png")
    arr = np.asarray(load_image(tmp_path / "a.png"))
    assert tuple(arr[5, 5]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (0, 0, 255)


def test_palette_with_transparency_and_la(tmp_path: Path) -> None:
    p = Image.new("P", (8, 8), 0)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.save(tmp_path / "p.png", transparency=0)
    arr = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[1, 1]) == (255, 0, 0)
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    assert tuple(np.asarray(load_image(tmp_path / "la.png"))[0, 0]) == (255, 255, 255)


def test_16bit_greyscale_is_scaled_not_white(tmp_path: Path) -> None:
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I")
    img.save(tmp_path / "g16.png")
    arr = np.asarray(load_image(tmp_path / "g16.png"))[..., 0]
    assert arr.tolist() == [[0, 64, 128, 255]]


def test_cmyk_jpeg_and_greyscale(tmp_path: Path) -> None:
    photo_like(64, 48).convert("CMYK").save(tmp_path / "cmyk.jpg")
    photo_like(64, 48).convert("L").save(tmp_path / "l.jpg")
    for name in ("cmyk.jpg", "l.jpg"):
        img = load_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (64, 48)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = np.asarray(load_image(tmp_path / "anim.gif"))
    assert arr[8, 8, 0] > 200 and arr[8, 8, 1] < 50


def test_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    _png_with_header_only(tmp_path / "bomb.png", 40000, 40000)
    with pytest.raises(ImageLoadError, match="too large: 40000x40000"):
        load_image(tmp_path / "bomb.png")


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    photo_like(100, 100).save(tmp_path / "x.png")
    with pytest.raises(ImageLoadError, match="exceeds the limit of 5,000"):
        load_image(tmp_path / "x.png", max_pixels=5000)
    assert load_image(tmp_path / "x.png", max_pixels=10_000).size == (100, 100)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"hello, not a jpeg", "not an image"),
        ("header.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image|corrupt"),
    ],
)
def test_bad_files_have_reasons(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        load_image(tmp_path / name)


def test_truncated_jpeg_and_png(tmp_path: Path) -> None:
    for fmt in ("jpg", "png"):
        photo_like(300, 200).save(tmp_path / f"full.{fmt}")
        data = (tmp_path / f"full.{fmt}").read_bytes()
        (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(ImageLoadError, match="truncated|corrupt"):
            load_image(tmp_path / f"cut.{fmt}")


def test_directory_named_like_an_image_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").mkdir()
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path / "x.jpg")
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_walk_finds_images_skips_hidden_and_junk(tmp_path: Path) -> None:
    for rel in ("a.jpg", "sub/b.PNG", "sub/c.txt", ".hidden/d.jpg", "@eaDir/e.jpg", "node_modules/f.jpg", ".g.jpg"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in walk_images(tmp_path))
    assert found == ["a.jpg", "sub/b.PNG"]
    with_hidden = sorted(p.relative_to(tmp_path).as_posix() for p in walk_images(tmp_path, include_hidden=True))
    assert ".hidden/d.jpg" in with_hidden and ".g.jpg" in with_hidden
    # a file given explicitly is used whatever its extension
    assert list(expand_inputs([str(tmp_path / "sub/c.txt")])) == [tmp_path / "sub/c.txt"]
