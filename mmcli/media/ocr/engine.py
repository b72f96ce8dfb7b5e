"""The OCR engine: RapidOCR (PaddleOCR's PP-OCRv6 text detection and recognition models as ONNX, inside its
wheel, run by onnxruntime), loaded once per process and imported only here, when a picture is first read.

What it reads: the recognition model's 18,708 characters are Chinese (simplified and traditional),
Japanese (kanji and kana), Latin letters with their accents (English and the other Latin-script
languages), digits, some Greek, and punctuation and symbols. Other scripts are not read: Cyrillic and
Arabic lines are not even found; Hebrew and Armenian come back as Latin and Greek look-alikes
(``fwptL`` for Բարեւ) scoring 0.7-0.9, where real text read off a poor photo scores too (no cut by
score drops them; ``text.MIN_SCORE`` stays PP-OCR's 0.5).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from mmcli.errors import OcrUnavailable

if TYPE_CHECKING:
    import numpy as np

SURE = 0.98  # a line read this well as it stands is not read upside down too
# The detector's input: its longer side brought down to 960 pixels (the reader has brought it to 1280 at
# most; the lines found are read from that). Measured on the labelled set (scripts/eval_ocr.py, one thread):
# RapidOCR's default, the shorter side brought to 736 (small pictures enlarged), read 0.995 of the words and
# nothing on every text-free picture for a median 0.47 CPU s a picture with text and 0.42 s without; this
# reads 0.991, nothing on 59 of 60, for 0.25 s and 0.17 s.
DETECTION: dict[str, Any] = {"Det.limit_type": "max", "Det.limit_side_len": 960}


def install_hint() -> str:
    """How to install the engine: this copy of mmcli with its ``ocr`` extra (RapidOCR, models included)."""
    from mmcli.config import install_command

    return f"install the OCR engine: {install_command('ocr')} (RapidOCR; its models come in the package)"


def check_installed() -> None:
    """OcrUnavailable unless the engine's package is installed (found, not imported)."""
    import importlib.util

    if importlib.util.find_spec("rapidocr") is None:
        raise OcrUnavailable("reading text needs the OCR engine, which is not installed", install_hint())


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
            raise OcrUnavailable(message, install_hint()) from None
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_preprocess_img": False,  # the reader sizes the picture (reader.fit)
            "Global.use_cls": False,  # the direction: both readings compared instead (``read``)
            "Global.text_score": 0.0,  # every line, so that one read upside down can be read the other way
            **DETECTION,
        }
        if threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
            params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
        try:
            self._ocr = RapidOCR(params=params)
        except Exception as exc:  # a broken install: its models missing or unreadable
            raise OcrUnavailable(f"the OCR engine could not start: {exc}", install_hint()) from None
        self._lock = threading.Lock()  # one picture at a time through one instance (its sessions are shared)

    def read(self, rgb: np.ndarray) -> list[tuple[Any, str, float]]:
        """The lines in an (H, W, 3) uint8 RGB array: (4 corner points clockwise from the text's top left, text,
        score), top to bottom. Raises whatever the engine raises on a picture it cannot handle (the reader
        turns that into a reason).

        The direction of each line: its crop is read as it stands (a standing crop turned a quarter first)
        and, unless that reading scores ``SURE`` or more, upside down too; the better-scoring reading wins.
        On the labelled set this read every line of the pictures turned 90, 180 and 270 degrees that the
        direction classifier (PP-OCR's, ``cls``) got wrong, and none of its false flips (``nuuuəq`` for
        ``Lexqufuqu``), at the cost of a second recognition of the doubtful lines only."""
        import numpy as np

        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # it wants OpenCV's BGR
        with self._lock:
            out = self._ocr(bgr)
            if out.boxes is None or out.txts is None or out.scores is None:
                return []
            lines = [(box, str(text), float(score)) for box, text, score in zip(out.boxes, out.txts, out.scores)]
            doubtful = [i for i, (_, _, score) in enumerate(lines) if score < SURE]
            flipped = 0
            if doubtful:
                turned = self._upside_down(bgr, [lines[i][0] for i in doubtful])
                for i, (text, score) in zip(doubtful, turned):
                    if score > lines[i][2]:
                        lines[i] = (np.roll(lines[i][0], 2, axis=0), text, score)  # its top left is across
                        flipped += 1
        return lines[::-1] if 2 * flipped > len(lines) else lines  # an upside-down picture: its last line first

    def _upside_down(self, bgr: np.ndarray, boxes: list[Any]) -> list[tuple[str, float]]:
        """The readings of the lines in ``boxes`` turned 180 degrees."""
        import numpy as np
        from rapidocr.utils.process_img import get_rotate_crop_image

        crops = [np.ascontiguousarray(get_rotate_crop_image(bgr, np.array(b, np.float32))[::-1, ::-1]) for b in boxes]
        try:
            rec = self._ocr.recognize_txt(crops)
        except Exception as exc:  # RapidOCRError: nothing recognised; anything else is the engine's failure
            if type(exc).__name__ == "RapidOCRError":
                return [("", 0.0)] * len(boxes)
            raise
        return [(str(t), float(s)) for t, s in zip(rec.txts or (), rec.scores or ())]
