"""Video files: sampling frames (PyAV, imported lazily); ``mmcli.embedding.video`` embeds them as moments.

Sampling rules (documented in the README):
- A frame every ``every`` seconds of presentation time (the first frame at or after 0, every, 2 x
  every, ...): times come from each frame's own timestamp, so variable frame rates work, and the
  container's claimed duration is never trusted (sampling stops where the frames stop).
- To reach a sample the reader seeks to the keyframe before it and decodes forward from there when
  a keyframe surely lies between (the longest keyframe spacing seen has passed since the last one),
  else it decodes on: a keyframe every second or two costs about one decoded frame per sample, a
  long one (x264's default of 250 frames) a sequential decode, never more.
- Where two consecutive samples differ sharply (tiny colour thumbnails), the frame after the largest
  jump between them is sampled as well: the moment of the cut. Where the reader decoded on to the
  sample it has seen those frames already (their thumbnails are kept as it goes); where it seeked,
  it goes back and decodes the frames between.
- At most ``max_frames`` samples per video. Rotation metadata (the display matrix) and non-square
  pixels (sample aspect ratio) are applied: a frame looks as a player shows it.
- A header claiming more than ``max_pixels`` per frame is refused before any frame is decoded;
  empty, truncated, audio-only and undecodable files are refused with the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS, install_command
from mmcli.errors import ImageLoadError
from mmcli.media.files import media_stat
from mmcli.media.images import VIDEO_EXTENSIONS
from mmcli.media.limits import oversize
from mmcli.media.regular import pinned

if TYPE_CHECKING:
    from PIL import Image


DEFAULT_EVERY = 2.0  # seconds between samples
DEFAULT_MAX_FRAMES = 2000  # samples per video
CUT = 0.1  # mean absolute difference (0..1) of thumbnails that counts as a sharp change (a pan: ~0.03)
THUMB = (16, 9)  # blocks of the Y, U, V thumbnails compared for change detection (Y alone misses blue -> green)
INSTALL_HINT = f"PyAV is not installed, which video needs: {install_command('video')}"


def is_video(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fsdecode(path))[1].lower() in VIDEO_EXTENSIONS


def av_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True, eq=False)
class VideoVectors:
    """A video's sampled moments: times in seconds (ascending) and their unit vectors (rows)."""

    path: str
    times: tuple[float, ...]
    vectors: np.ndarray = field(repr=False)  # (N, D) float32


@dataclass(frozen=True)
class Moment:
    """A decoded sample: its time in seconds and the picture as a player shows it."""

    time: float
    image: Image.Image


def _av(name: str) -> Any:
    try:
        import av
    except ImportError:
        raise ImageLoadError(name, INSTALL_HINT) from None
    return av


def _check_file(name: str) -> None:
    media_stat(name)


def sample_video(
    path: str | os.PathLike[str],
    every: float = DEFAULT_EVERY,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Iterator[Moment]:
    """The sampled moments of a video, in time order; raises ImageLoadError with the reason (before the
    first moment for a file that cannot be opened, later for data that turns out corrupt)."""
    name = os.fsdecode(path)
    if not (math.isfinite(every) and every > 0):
        raise ValueError("every must be a number of seconds above 0")
    av = _av(name)
    _check_file(name)
    errors = (getattr(av, "FFmpegError", None) or av.AVError, OSError, ValueError, MemoryError)
    try:
        with pinned(name) as safe:  # the regular file media_stat saw, never a FIFO swapped in since
            container = av.open(safe, metadata_errors="ignore")
    except errors as exc:
        raise ImageLoadError(name, f"not a video, or a truncated or corrupt one ({_text(exc)})") from None
    try:
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "nothing a player could show"
            raise ImageLoadError(name, f"no video stream ({what})")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        too_large = oversize(name, w, h, max_pixels)
        if too_large is not None:
            raise too_large
        if w <= 0 or h <= 0:
            raise ImageLoadError(name, f"invalid frame size {w}x{h}")
        stream.thread_type = "AUTO"
        shape = _shape_of(stream, min_side)
        reader = _Reader(container, stream)
        yielded = 0
        for moment in _moments(reader, shape, every, max_frames):
            yielded += 1
            yield moment
        if not yielded:
            raise ImageLoadError(name, "no decodable video frames")
    except ImageLoadError:
        raise
    except errors as exc:
        raise ImageLoadError(name, f"truncated or corrupt video data ({_text(exc)})") from None
    finally:
        container.close()


def _text(exc: BaseException) -> str:
    """FFmpeg's reason, without the file name (the report names the file already)."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(reason)[:200]


@dataclass(frozen=True)
class _Shape:
    """How a decoded frame becomes a picture: stored size, pixel aspect, the smallest side wanted."""

    width: int
    height: int
    sar: Fraction
    min_side: int | None
    rotation: int = 0  # from the stream's "rotate" tag, where the frame does not say (older PyAV)

    def size(self) -> tuple[int, int]:
        dw, dh = self.width * float(self.sar), float(self.height)
        scale = 1.0
        if self.min_side:
            scale = min(1.0, 2 * self.min_side / min(dw, dh))
        return max(1, round(dw * scale)), max(1, round(dh * scale))


def _shape_of(stream: Any, min_side: int | None) -> _Shape:
    cc = stream.codec_context
    sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
    try:
        tag = round(float(stream.metadata.get("rotate", 0))) % 360
    except (TypeError, ValueError):
        tag = 0
    return _Shape(cc.width, cc.height, Fraction(sar) if sar and sar > 0 else Fraction(1), min_side, (-tag) % 360)


def _picture(frame: Any, shape: _Shape) -> Image.Image:
    from PIL import Image

    w, h = shape.size()
    img = frame.reformat(width=w, height=h, format="rgb24").to_image()
    rotation = shape.rotation
    try:
        rotation = round(float(frame.rotation)) % 360  # PyAV >= 13: the frame's display matrix
    except (AttributeError, TypeError, ValueError):
        pass
    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    if rotation in turns:  # degrees counter-clockwise, as FFmpeg's display matrix gives them
        img = img.transpose(turns[rotation])
    elif rotation:
        img = img.rotate(rotation, expand=True)
    return img


def _thumb(frame: Any) -> np.ndarray:
    """A tiny picture of ``frame`` (16x9 blocks of each of Y, U, V in 0..1): read straight from the planes
    of 8-bit 4:2:0 frames (most video; microseconds), through swscale for anything else (milliseconds)."""
    if frame.format.name in ("yuv420p", "yuvj420p"):
        w, h = frame.width, frame.height
        sizes = ((w, h), ((w + 1) // 2, (h + 1) // 2), ((w + 1) // 2, (h + 1) // 2))
        return np.concatenate([_blocks(frame.planes[i], pw, ph) for i, (pw, ph) in enumerate(sizes)])
    small = frame.reformat(width=THUMB[0], height=THUMB[1], format="yuv444p", interpolation="AREA")
    return np.concatenate([_blocks(small.planes[i], THUMB[0], THUMB[1]) for i in range(3)])


def _blocks(plane: Any, w: int, h: int) -> np.ndarray:
    """The mean of each of 16x9 blocks of a plane, from a grid of at most ~128x72 of its pixels."""
    pixels = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
    step = max(1, min(h // (8 * THUMB[1]), w // (8 * THUMB[0])))
    grid = pixels[::step, ::step].astype(np.float32)
    bh, bw = grid.shape[0] // THUMB[1], grid.shape[1] // THUMB[0]
    if bh and bw:
        blocks = grid[: bh * THUMB[1], : bw * THUMB[0]].reshape(THUMB[1], bh, THUMB[0], bw).mean(axis=(1, 3))
    else:  # a frame smaller than 16x9: its pixels, repeated
        rows = np.linspace(0, grid.shape[0] - 1, THUMB[1]).astype(int)
        cols = np.linspace(0, grid.shape[1] - 1, THUMB[0]).astype(int)
        blocks = grid[rows][:, cols]
    return blocks.ravel() / 255.0


def _differs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


class _Reader:
    """Frames at or after given times: seeks to the keyframe before a time, or decodes on."""

    def __init__(self, container: Any, stream: Any) -> None:
        self.container, self.stream = container, stream
        self.frames: Iterator[Any] | None = None
        self.position = -1.0  # time of the last frame decoded
        self.gop = 0.0  # the longest keyframe spacing seen
        self.last_key: float | None = None
        self.seekable = True  # False once a seek failed: decode on from then on
        # since the last sample (``mark``): were all frames seen, and the sharpest jump between two of them
        self.unbroken = False
        self.last_thumb: np.ndarray | None = None
        self.jump, self.after_jump = 0.0, None
        self.current: Any = None

    def _seek(self, t: float) -> bool:
        """Go to the keyframe at or before ``t``; False (nothing changed) where the file cannot seek."""
        if not self.seekable:
            return False
        start = self.stream.start_time or 0
        try:
            self.container.seek(int(t / self.stream.time_base) + start, stream=self.stream, backward=True)
        except Exception:  # noqa: BLE001 - FFmpeg's error for a file without an index varies
            self.seekable = False
            return False
        self.frames = self.container.decode(self.stream)
        self.last_key = None
        self.unbroken = False
        return True

    def mark(self, thumb: np.ndarray) -> None:
        """A sample was taken here: watch the frames decoded on from it for the sharpest change."""
        self.unbroken, self.last_thumb, self.jump, self.after_jump = True, thumb, 0.0, None

    def next(self) -> Any | None:
        assert self.frames is not None
        for frame in self.frames:
            if frame.time is None:
                continue
            if frame.key_frame:
                if self.last_key is not None and frame.time > self.last_key:
                    self.gop = max(self.gop, frame.time - self.last_key)
                self.last_key = frame.time
            self.position = frame.time
            if self.unbroken and self.last_thumb is not None:
                thumb = _thumb(frame)
                jump = _differs(self.last_thumb, thumb)
                if jump > self.jump:
                    self.jump, self.after_jump = jump, frame
                self.last_thumb = thumb
            return frame
        return None

    def at(self, t: float) -> Any | None:
        """The first frame whose time is >= ``t``, or None after the last frame."""
        if self.frames is None:
            if not (t > 0 and self._seek(t)):
                self.frames = self.container.decode(self.stream)
        elif t <= self.position or (self.gop > 0 and self.last_key is not None and t >= self.last_key + self.gop):
            self._seek(t)  # back, or past a keyframe: decoding from the keyframe before t is the cheapest
            # (an unseekable file decodes on: only forward requests reach here then, see ``between``)
        while True:
            frame = self.next()
            if frame is None or frame.time >= t - 1e-6:
                return frame

    def between(self, t0: float, t1: float) -> list[Any]:
        """Every frame with ``t0`` < time < ``t1`` (decoding from the keyframe before ``t0``); none where the
        file cannot seek back (the change is then known only at the sample after it)."""
        if not self._seek(t0):
            return []
        found = []
        while (frame := self.next()) is not None and frame.time < t1 - 1e-6:
            if frame.time > t0 + 1e-6:
                found.append(frame)
        self.current = frame  # the frame at ``t1``, where the reader now is
        return found


def _moments(reader: _Reader, shape: _Shape, every: float, max_frames: int) -> Iterator[Moment]:
    prev: tuple[float, np.ndarray] | None = None
    count, k = 0, 0
    while count < max_frames:
        frame = reader.at(k * every)
        if frame is None:
            return
        t, thumb = float(frame.time), _thumb(frame)
        k = max(k + 1, int(t / every) + 1)  # a frame far past its target (a gap in the video) skips targets
        if prev is not None and _differs(prev[1], thumb) > CUT and count + 1 < max_frames:
            if reader.unbroken:  # every frame since the last sample was seen on the way here
                cut = reader.after_jump if reader.jump > CUT else None
            else:
                cut = _cut_between(reader, prev, t)  # the reader is at ``t`` again afterwards
            if cut is not None and cut.time < t - 1e-6:  # (the sharpest jump into ``t``: the sample is the cut)
                yield Moment(float(cut.time), _picture(cut, shape))
                count += 1
        yield Moment(t, _picture(frame, shape))
        count += 1
        prev = (t, thumb)
        reader.mark(thumb)


def _cut_between(reader: _Reader, prev: tuple[float, np.ndarray], t: float) -> Any | None:
    """The frame just after the sharpest change between the sample at ``prev`` and the one at ``t``."""
    frames = reader.between(prev[0], t)
    if not frames:
        return None
    best, best_jump, last = None, 0.0, prev[1]
    for frame in [*frames, *([reader.current] if reader.current is not None else [])]:
        thumb = _thumb(frame)
        jump = _differs(last, thumb)
        if jump > best_jump:
            best, best_jump = frame, jump
        last = thumb
    return best if best_jump > CUT else None


def frame_at(path: str, time: float, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """The picture of ``path`` at ``time`` seconds as sampling saw it (the first frame at or after that
    time, as a player shows it): a moment of the index, embedded again by another model. Raises
    ImageLoadError with the reason."""
    name = os.fsdecode(path)
    av = _av(name)
    _check_file(name)
    errors = (getattr(av, "FFmpegError", None) or av.AVError, OSError, ValueError, MemoryError)
    try:
        with av.open(name, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ImageLoadError(name, "no video stream")
            stream = container.streams.video[0]
            cc = stream.codec_context
            too_large = oversize(name, cc.width, cc.height, max_pixels)
            if too_large is not None:
                raise too_large
            frame = _Reader(container, stream).at(time)
            if frame is None:
                raise ImageLoadError(name, f"no frame at {time:.3f} s")
            return _picture(frame, _shape_of(stream, min_side))
    except ImageLoadError:
        raise
    except errors as exc:
        raise ImageLoadError(name, f"truncated or corrupt video data ({_text(exc)})") from None


def frame_picture(path: str, time: float, size: int = 256) -> Image.Image | None:
    """The picture of ``path`` at ``time`` seconds (for pages of results), or None if it cannot be had."""
    try:
        av = _av(path)
        _check_file(path)
        with pinned(path) as safe, av.open(safe, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            cc = stream.codec_context
            if oversize(path, cc.width, cc.height, DEFAULT_MAX_PIXELS) or not cc.width or not cc.height:
                return None
            shape = _shape_of(stream, size // 2)
            frame = _Reader(container, stream).at(time)
            return _picture(frame, shape) if frame is not None else None
    except Exception:  # noqa: BLE001 - a picture that cannot be had is shown as missing
        return None


def format_time(seconds: float | None) -> str:
    """``12.0 s`` under a minute, else ``1:02:03`` / ``2:03``; empty for None (an image)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def media_url(path: str, time: float | None) -> str:
    """``file:///...`` with a media fragment ``#t=SECONDS`` for a moment of a video."""
    from pathlib import Path

    url = Path(os.path.abspath(path)).as_uri()
    return url if time is None else f"{url}#t={round(time, 3)}"
