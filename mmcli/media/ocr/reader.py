"""Pictures to text: each file through the safe decoder (``mmcli.media.images``: EXIF orientation, pixel
limit, bombs), sized for the engine, read (detection first; recognition only of the boxes it found, so a
picture without text costs one detection pass), and its lines kept when they are text (``text.is_text``).

Sizes: a picture whose longer side is over ``MAX_SIDE`` is scaled down to it (large JPEGs decoded at a
reduced scale to begin with); one whose shorter side is under ``MIN_SIDE`` is padded with its edge colour,
never stretched. Boxes are given in pixels of the upright picture as the file holds it. A file that
cannot be decoded, or that makes the engine fail, gives ``ImageLoadError`` with the reason; ``read_all``
reports it as a ``FileFailure`` and goes on with the others.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import ImageLoadError
from mmcli.media.ocr.text import is_text
from mmcli.results import FileFailure, PictureText, TextLine

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from mmcli.media.ocr.engine import Engine

# The longer side the engine gets at most. On a 4000 x 3000 photo (one thread, CPU seconds, the detector
# then at RapidOCR's default): 2000 -> 2.9 s, 1600 -> 1.6 s, 1280 -> 0.85 s, 960 -> 0.5 s; a line 44 px high
# in it (11 px at 960) was read at each. With the detector at 960 (engine.DETECTION): 0.75 s, blank 0.41 s.
MAX_SIDE = 1280
MIN_SIDE = 32  # a shorter side is padded up to this
# onnxruntime's threads per process. Measured on 2 cores, 52 pictures (scripts/eval_ocr.py, user CPU): one
# process of 1 thread 21.9 s, of 2 threads 37.1 s (the same work: threads wait spinning), 2 processes of
# 1 thread 21.5 s. So pictures are read in parallel by processes, each model on one thread.
THREADS = 1
_SWAPPED = (5, 6, 7, 8)  # EXIF orientations that turn the picture on its side


def _upright_size(data: bytes | None, path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The picture's size once upright, from its header alone; None when the header cannot be read (the
    decoder then says why)."""
    import io
    import warnings

    from PIL import Image

    from mmcli.media.limits import register_heif, take_over_pixel_limit

    register_heif()
    take_over_pixel_limit()  # (the decoder's own check follows: Pillow's must not warn before it)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data) if data is not None else path) as img:
                w, h = img.size
                turned = img.getexif().get(0x0112, 1) in _SWAPPED
    except Exception:  # any failure here is the decoder's to report, with its own reason
        return None
    return (h, w) if turned else (w, h)


def decode(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """The upright RGB picture, reduced where the JPEG decoder can, and its full upright size. ``data``: the
    file's bytes when the caller has read them (the indexer: one read for its hash, vector and text)."""
    from mmcli.media.files import read_whole
    from mmcli.media.images import load_image

    data = data if data is not None else read_whole(path)
    size = _upright_size(data, path)
    min_side = None
    if size is not None and max(size) > 2 * MAX_SIDE:  # DCT scaling keeps the shorter side >= 2 x min_side
        min_side = math.ceil(MAX_SIDE * min(size) / max(size) / 2)
    img = load_image(path, max_pixels, min_side, data)
    return img, size or img.size


def fit(img: Image.Image) -> tuple[np.ndarray, float]:
    """The (H, W, 3) uint8 array the engine reads, and the factor from its pixels to ``img``'s."""
    import numpy as np
    from PIL import Image

    scale = 1.0
    if max(img.size) > MAX_SIDE:
        scale = max(img.size) / MAX_SIDE
        size = (max(1, round(img.width / scale)), max(1, round(img.height / scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    arr = np.asarray(img, dtype=np.uint8)
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        arr = np.pad(arr, ((0, max(0, MIN_SIDE - h)), (0, max(0, MIN_SIDE - w)), (0, 0)), mode="edge")
    return arr, scale


def _box(points: Any, sx: float, sy: float, size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    w, h = size
    return tuple(
        (min(max(round(float(x) * sx), 0), w - 1), min(max(round(float(y) * sy), 0), h - 1)) for x, y in points
    )


def read_picture(
    path: str | os.PathLike[str],
    engine: Engine | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
) -> PictureText:
    """The text in one picture, or ImageLoadError saying why it could not be read (``data``: its bytes, if
    read already)."""
    from mmcli.media.ocr.engine import load_engine

    name = os.fsdecode(path)
    engine = engine or load_engine(THREADS)
    img, size = decode(path, max_pixels, data)
    arr, scale = fit(img)
    try:
        found = engine.read(arr)
    except MemoryError:
        raise ImageLoadError(name, "out of memory while reading its text") from None
    except Exception as exc:  # the engine's own failures, whatever their type: this file's reason
        raise ImageLoadError(name, f"the OCR engine failed on it: {(str(exc) or type(exc).__name__)[:200]}") from None
    sx, sy = scale * size[0] / img.width, scale * size[1] / img.height
    lines = tuple(TextLine(text, round(score, 4), _box(box, sx, sy, size)) for box, text, score in found)
    kept = tuple(line for line in lines if is_text(line.text, line.score))
    return PictureText(name, "\n".join(line.text for line in kept), kept)


def _read_or_fail(path: str, max_pixels: int, threads: int) -> PictureText | FileFailure:
    from mmcli.faults import fault_point
    from mmcli.media.ocr.engine import load_engine

    fault_point("ocr.read")
    try:
        return read_picture(path, load_engine(threads), max_pixels)
    except ImageLoadError as exc:
        return FileFailure(os.fsdecode(path), exc.reason)


def _start_worker(threads: int) -> None:
    from mmcli.media.ocr.engine import load_engine

    load_engine(threads)  # the models load while the parent hands out the first pictures


def read_all(
    paths: Sequence[str], max_pixels: int = DEFAULT_MAX_PIXELS, workers: int = 1, threads: int = THREADS
) -> Iterator[PictureText | FileFailure]:
    """Each picture's text in input order; a file that cannot be read is a ``FileFailure`` and the others go
    on. ``workers`` > 1: that many processes (spawned: each loads the engine once); each process runs the
    models on ``threads`` onnxruntime threads (0: its default, one per core)."""
    from mmcli.media.ocr.engine import check_installed

    check_installed()
    if workers <= 1 or len(paths) < 2:
        for path in paths:
            yield _read_or_fail(path, max_pixels, threads)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    each = threads or 1  # (processes already share the cores)
    context = multiprocessing.get_context("spawn")  # (not fork: the caller may hold threads, an engine)
    pool = ProcessPoolExecutor(
        min(workers, len(paths)), mp_context=context, initializer=_start_worker, initargs=(each,)
    )
    try:
        futures = [pool.submit(_read_or_fail, path, max_pixels, each) for path in paths]
        for path, future in zip(paths, futures):
            try:
                yield future.result()
            except BrokenProcessPool:  # a process killed (out of memory) or crashed: these files are not read
                yield FileFailure(os.fsdecode(path), "the reading process died (out of memory, or the engine crashed)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
