"""Batched embedding of image files: parallel decoding overlapped with the model.

Decoding (Pillow, numpy) runs in worker processes, which scale on CPU cores where threads do not;
the model runs in this process on batches. Results come back in input order, failures in place.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmcli.errors import ImageLoadError
from mmcli.faults import fault_point
from mmcli.media.files import read_facts, read_whole_stat
from mmcli.media.images import DEFAULT_MAX_PIXELS, display_path, load_pixels
from mmcli.results import NOT_A_NUMBER, FileFailure, ImageVector, ProgressFn

if TYPE_CHECKING:
    from mmcli.media.preprocess import Preprocess
    from mmcli.models import Encoder
    from mmcli.models.spec import TextEncoder
    from mmcli.results import Read

Decoded = tuple[str, "np.ndarray | ImageLoadError", "Read | None"]  # path, pixels or why not, hash + date
INLINE_BELOW = 8  # fewer files than this are decoded in-process: a pool costs more than it saves


def default_workers() -> int:
    from mmcli.config import settings

    configured = settings().workers
    if configured is not None:
        return configured
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _decode_one(path: str, preprocess: Preprocess, max_pixels: int, fast_decode: bool, reads: bool = False) -> Decoded:
    """Read the file once and decode those bytes; with ``reads``, also hash them and take the capture
    time from them (what the index stores with the vector)."""
    read = None
    try:
        data, st = read_whole_stat(path)
        if reads:
            read = read_facts(path, data, st.st_mtime)
        return path, load_pixels(path, preprocess, max_pixels, fast_decode, data), read
    except ImageLoadError as exc:
        return path, exc, read
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not kill the batch
        return path, ImageLoadError(path, f"unexpected decoder error: {type(exc).__name__}: {exc}"), read


def _pool(workers: int) -> ProcessPoolExecutor:
    """Decoding processes. On Linux they are forked, as PyTorch's DataLoader does: instant, and a
    script using mmcli needs no ``if __name__ == "__main__"`` guard. The children only run
    Pillow and numpy. Elsewhere they are spawned."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_helper_start, initargs=(os.getpid(),)
    )


def _helper_start(parent: int) -> None:
    """First thing in a decoding helper: die with the parent (SIGKILL, SIGTERM or a crash: Linux's
    parent-death signal), leave Ctrl-C to the parent. (A forked helper holds none of the parent's
    index locks: ``mmcli.index.lock`` closes them in every forked child.)"""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(0)


def decode_stream(
    paths: Sequence[str],
    preprocess: Preprocess,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast_decode: bool = True,
    lookahead: int = 64,
    reads: bool = False,
) -> Iterator[Decoded]:
    """Decode ``paths`` into model input arrays, in order, with up to ``lookahead`` in flight
    (``reads``: with each file's content hash and capture time, from the same read)."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(paths) < INLINE_BELOW:
        for p in paths:
            yield _decode_one(p, preprocess, max_pixels, fast_decode, reads)
        return
    with _pool(workers) as pool:
        pending: deque[Future[Decoded]] = deque()
        it = iter(paths)
        for p in it:
            pending.append(pool.submit(_decode_one, p, preprocess, max_pixels, fast_decode, reads))
            if len(pending) >= lookahead:
                break
        try:
            while pending:
                decoded = pending.popleft().result()
                fault_point("index.decoding")  # here, in the parent, while the decoding processes run
                yield decoded
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(_decode_one, nxt, preprocess, max_pixels, fast_decode, reads))
        finally:  # stopped early (an error, Ctrl-C, a prefetch not used): the files not started are dropped
            for future in pending:
                future.cancel()


class Prefetch:
    """Decoding started before the model is loaded, with the input transform known without it (from
    an index's meta or a model's exported image tower): the decoding processes work through the
    first files while this process imports torch and loads the weights (seconds on a CPU)."""

    def __init__(
        self, paths: Sequence[str], preprocess: Preprocess, workers: int | None, max_pixels: int, lookahead: int
    ) -> None:
        self.names, self.preprocess, self.max_pixels = [display_path(p) for p in paths], preprocess, max_pixels
        self._stream = decode_stream(self.names, preprocess, workers, max_pixels, True, lookahead, reads=True)
        self._first = next(self._stream, None)  # the processes start here and keep ``lookahead`` files in flight

    def fits(self, names: list[str], preprocess: Preprocess, max_pixels: int) -> bool:
        return names == self.names and preprocess == self.preprocess and max_pixels == self.max_pixels

    def __iter__(self) -> Iterator[Decoded]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._stream

    def close(self) -> None:
        """Stop the decoding processes (a load that failed, a model that wants another transform)."""
        self._stream.close()


def default_batch_size(device: str) -> int:
    """Images per model batch when ``-b`` is not given: 256 on CUDA (on an H200 the model alone ran
    24,900 images/s at 256 against 8,900 at 32), 32 elsewhere (on 2 CPU cores a larger batch only
    delays the first results and holds more decoded images)."""
    return 256 if device.startswith("cuda") else 32


def embed_stream(
    encoder: Encoder,
    paths: Sequence[str | Path],
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fast_decode: bool = True,
    on_progress: ProgressFn | None = None,
    reads: bool = False,
    prefetch: Prefetch | None = None,
) -> Iterator[ImageVector | FileFailure]:
    """Embed image files in batches; yields results in input order, a FileFailure for each bad file.

    Each file is read once; with ``reads`` every result carries the SHA-256 of the bytes that were
    decoded (the index's content hash) and the capture time in them. ``batch_size`` None:
    ``default_batch_size``. ``prefetch``: their decoding, started before the model was loaded (used
    when it decodes these paths as this model wants, else stopped and done again here).
    """
    batch_size = default_batch_size(str(encoder.device)) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    names = [display_path(p) for p in paths]
    same = prefetch is not None and reads and fast_decode and prefetch.fits(names, encoder.preprocess, max_pixels)
    if prefetch is not None and (use_device_decoding(encoder) or not same):
        prefetch.close()
        prefetch = None
    if use_device_decoding(encoder):
        yield from _device_stream(encoder, names, batch_size, max_pixels, on_progress, reads)
        return
    total = len(names)
    done = 0
    held: list[Decoded] = []

    def flush() -> Iterator[ImageVector | FileFailure]:
        nonlocal done
        good = [(i, arr) for i, (_, arr, _) in enumerate(held) if isinstance(arr, np.ndarray)]
        vectors = encoder.encode_images(np.stack([a for _, a in good])) if good else None
        row = {i: k for k, (i, _) in enumerate(good)}
        for i, (name, item, read) in enumerate(held):
            if isinstance(item, ImageLoadError):
                yield FileFailure(name, item.reason, read)
            else:
                assert vectors is not None
                yield _result(name, vectors[row[i]], read)
        done += len(held)
        held.clear()
        if on_progress:
            on_progress(done, total)

    n_arrays = 0
    lookahead = max(2 * batch_size, 16)
    stream = prefetch or decode_stream(names, encoder.preprocess, workers, max_pixels, fast_decode, lookahead, reads)
    for decoded in stream:
        held.append(decoded)
        n_arrays += isinstance(decoded[1], np.ndarray)
        if n_arrays >= batch_size:
            yield from flush()
            n_arrays = 0
    if held:
        yield from flush()


def _result(name: str, vector: np.ndarray, read: Read | None) -> ImageVector | FileFailure:
    """A file's vector, or its failure where the model gave NaN or infinite values (never stored or shown)."""
    return ImageVector(name, vector, read) if np.isfinite(vector).all() else FileFailure(name, NOT_A_NUMBER, read)


def use_device_decoding(encoder: Encoder) -> bool:
    """On CUDA, decode JPEGs on the GPU (``MMCLI_DEVICE_DECODE=0`` turns it off)."""
    from mmcli.config import settings

    return encoder.device == "cuda" and settings().device_decode


def _device_stream(
    encoder: Encoder,
    names: list[str],
    batch_size: int,
    max_pixels: int,
    on_progress: ProgressFn | None,
    reads: bool,
) -> Iterator[ImageVector | FileFailure]:
    from mmcli.media.gpu_decode import device_decode_stream

    done = 0
    for out in device_decode_stream(encoder, names, batch_size, max_pixels, reads):
        found = {p: out.vectors[i] for i, p in enumerate(out.order)} if out.vectors is not None else {}
        failed = dict(out.failures)
        chunk = names[done : done + batch_size]
        for name in chunk:
            read = out.reads.get(name)
            if name in found:
                yield _result(name, found[name], read)
            else:
                yield FileFailure(name, failed[name].reason if name in failed else "not decoded", read)
        done += len(chunk)
        if on_progress:
            on_progress(done, len(names))


def embed_texts(encoder: TextEncoder, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Unit text vectors (rows in order) and a warning for each text the model had to truncate."""
    notes = [
        f"text {t[:40]!r}... is longer than the model's context ({encoder.context_length} tokens) and was truncated"
        for t in texts
        if encoder.too_long(t)
    ]
    return encoder.encode_texts(list(texts)), notes
