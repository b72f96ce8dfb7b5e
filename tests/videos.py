"""Test videos written with PyAV: shapes the tiny model knows, shown one after another.

``write_video`` draws each scene with ``mmcli.demo.shapes.draw_shape`` on a canvas of its background
colour, so the picture changes only at the scene boundaries.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmcli.demo.shapes import ShapeSpec, draw_shape

# (start second, what shows): red circle 0-4 s, blue square 4-8 s, green star 8-10 s
SCENES: tuple[tuple[float, ShapeSpec], ...] = (
    (0.0, ShapeSpec("red", "circle")),
    (4.0, ShapeSpec("blue", "square")),
    (8.0, ShapeSpec("green", "star")),
)


def scene_picture(spec: ShapeSpec, width: int, height: int, seed: int) -> np.ndarray:
    from PIL import Image

    side = min(width, height)
    shape = draw_shape(spec, size=side, seed=seed)
    canvas = Image.new("RGB", (width, height), shape.getpixel((0, 0)))
    canvas.paste(shape, ((width - side) // 2, (height - side) // 2))
    return np.asarray(canvas)


def write_video(
    path: Path,
    codec: str = "libx264",
    seconds: float = 10.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    scenes: Sequence[tuple[float, ShapeSpec]] = SCENES,
    times: Sequence[float] | None = None,
    gop: int | None = None,
    sar: Fraction | None = None,
) -> Path:
    """A video of ``scenes``; ``times`` gives each frame's own time (a variable frame rate)."""
    import av

    width, height = size
    pictures = [scene_picture(spec, width, height, seed=17 + i) for i, (_, spec) in enumerate(scenes)]
    stamps = list(times) if times is not None else [i / fps for i in range(int(seconds * fps))]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if gop:
            stream.codec_context.gop_size = gop
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        for t in stamps:
            scene = max(i for i, (start, _) in enumerate(scenes) if start <= t + 1e-9)
            frame = av.VideoFrame.from_ndarray(pictures[scene], format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def rotate_mp4(src: Path, dst: Path) -> Path:
    """A copy of an MP4 whose track says: show me turned 90 degrees clockwise (a phone held upright)."""
    data = bytearray(src.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    turned = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0, "no track header matrix found"
    data[at : at + 36] = turned
    dst.write_bytes(bytes(data))
    return dst


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def lie_about_duration(src: Path, dst: Path, seconds: float = 100_000.0) -> Path:
    """A copy of a Matroska/WebM file whose Segment Info claims ``seconds`` of duration."""
    data = bytearray(src.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration element, an 8-byte float
    if at >= 0:
        scale = 1_000_000  # TimecodeScale default: ms
        data[at + 3 : at + 11] = struct.pack(">d", seconds * 1e9 / scale)
    else:
        at = data.find(b"\x44\x89\x84")  # a 4-byte float
        assert at >= 0, "no Duration element"
        data[at + 3 : at + 7] = struct.pack(">f", seconds * 1000)
    dst.write_bytes(bytes(data))
    return dst
