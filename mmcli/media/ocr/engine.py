"""The OCR engine: RapidOCR (PP-OCR's text detection, direction and recognition models as ONNX, run by
onnxruntime), loaded once per process and imported only here, when a picture is first read.

What it reads: the recognition model's characters are Chinese (simplified and traditional), Japanese kana,
Latin letters with their accents (English and the other Latin-script languages), digits, Greek, and
common punctuation and symbols. Other scripts (Cyrillic words, Arabic, Hebrew, Devanagari, Thai, Korean
Hangul, ...) are not read: their lines come back as Latin look-alikes with low scores, or not at all,
and ``text.is_text`` drops what scores low.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from mmcli.errors import OcrUnavailable

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = 'install the OCR engine: pip install "mmcli[ocr]" (rapidocr, its models are in the package)'


def check_installed() -> None:
    """OcrUnavailable unless the engine's package is installed (found, not imported)."""
    import importlib.util

    if importlib.util.find_spec("rapidocr") is None:
        raise OcrUnavailable("reading text needs the OCR engine, which is not installed", INSTALL_HINT)


@functools.cache
def load_engine(threads: int = 0) -> Engine:
    """The engine of this process (one per ``threads``: onnxruntime's threads per model, 0 = its default,
    one per core)."""
    return Engine(threads)


class Engine:
    """One RapidOCR instance: ``read`` an RGB array, get (box, text, score) per detected line."""

    def __init__(self, threads: int = 0) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            message = f"reading text needs the OCR engine, which is not installed ({exc})"
            raise OcrUnavailable(message, INSTALL_HINT) from None
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_preprocess_img": False,  # the reader sizes the picture (reader.fit)
        }
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        try:
            self._ocr = RapidOCR(params=params)
        except Exception as exc:  # a broken install: its models missing or unreadable
            raise OcrUnavailable(f"the OCR engine could not start: {exc}", INSTALL_HINT) from None
        self._lock = threading.Lock()  # one picture at a time through one instance (its sessions are shared)

    def read(self, rgb: np.ndarray) -> list[tuple[Any, str, float]]:
        """The lines in an (H, W, 3) uint8 RGB array: (4 corner points, text, score), top to bottom. Raises
        whatever the engine raises on a picture it cannot handle (the reader turns that into a reason)."""
        with self._lock:
            out = self._ocr(rgb[:, :, ::-1].copy())  # it wants OpenCV's BGR
        boxes, texts, scores = out.boxes, out.txts, out.scores
        if boxes is None or texts is None or scores is None:
            return []
        return [(box, str(text), float(score)) for box, text, score in zip(boxes, texts, scores)]
