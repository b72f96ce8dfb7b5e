"""The model's towers without torch: exported once per model to ONNX, run with ONNX Runtime.

Importing torch and open_clip costs more than a whole query. So the text tower (and, for small image
jobs, the image tower) is exported once per model in fp32 (``mmcli.models.onnx_export``; where and
how it is stored and checked: ``mmcli.models.tower_files``), and from then on ``OnnxTextEncoder``
and ``OnnxImageEncoder`` embed in a process that never imports torch. ``mmcli.models.towers``
decides when to export and what to do when that cannot be done.

Loading costs little: the graph was optimised at export and its weights are memory-mapped from
their own file (no copy, no repacking), so only the pages a query touches are read, and the rows
of the token embedding table that a query's tokens name. A causal text tower with end-of-text
pooling (CLIP's) was exported with a sequence axis of any length and runs on the tokens up to the
end of the longest text in the batch, rounded up to ``BUCKET``, instead of the whole context.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.models.spec import ModelSpec, model_fingerprint
from mmcli.models.tower_files import TowerDamaged, check_files, tower_paths, tower_state

if TYPE_CHECKING:
    from mmcli.models.tokenizer import Tokenizer

TOWERS = ("text", "image")
SMALL_JOB = 16  # images: fewer are embedded by the ONNX image tower when it can be used
BUCKET = 8  # a text batch runs on a multiple of this many tokens (few distinct shapes)


def onnx_fingerprint(spec: ModelSpec) -> str:
    """What identifies the embeddings the ONNX towers give (the text cache's key for them)."""
    return model_fingerprint(spec, ("onnx", "fp32"))


def runtime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def cpu_fp32_ok(device: str, precision: str) -> bool:
    """Will a job asked for on ``device`` in ``precision`` run on the CPU at a precision fp32 stands for?
    Known without importing torch (no NVIDIA device node, not a Mac: no GPU ``auto`` would pick)."""
    no_gpu = not (os.path.exists("/dev/nvidiactl") or sys.platform == "darwin")
    return precision in ("auto", "fp32") and (device == "cpu" or (device == "auto" and no_gpu))


class _Tower:
    def __init__(self, spec: ModelSpec, tower: str, meta: dict[str, Any] | None = None, threads: int = 0) -> None:
        """Open ``spec``'s exported ``tower`` (``meta``: its sidecar, else read); TowerDamaged when its
        files are not those exported or ONNX Runtime cannot load them; ValueError when none is recorded.
        ``threads``: ONNX Runtime's threads for one operator (0: one per core).

        The weights are used as they are mapped, never repacked for the CPU's matrix kernels: that would
        make a warm process's queries ~2x faster (ViT-B/32's text tower: 41 against 83 ms on 2 busy
        cores) but cost a cold one ~0.2 s to load, and the vectors differ in the last bits between the
        two (2.6e-6), while `mmcli search` gives the same bytes through a server as in its own process."""
        import onnxruntime

        paths = tower_paths(spec, tower)
        meta = meta if meta is not None else tower_state(spec, tower).meta
        if meta is None:
            raise ValueError(f"no exported {tower} tower for {spec.name}")
        self.meta: dict[str, Any] = meta
        check_files(paths, self.meta)
        self.spec = spec
        self.fingerprint = onnx_fingerprint(spec)
        self.logit_scale = float(self.meta["logit_scale"])
        self.logit_bias = None if self.meta.get("logit_bias") is None else float(self.meta["logit_bias"])
        self.dim = int(self.meta["dim"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # done at export
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.disable_prepacking", "1")  # the mapped weights as they are
        try:
            self.session = onnxruntime.InferenceSession(
                str(paths.folder / self.meta["model"]), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...)
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise TowerDamaged(f"ONNX Runtime cannot load it ({first})") from None

    def _run(self, name: str, batch: np.ndarray) -> np.ndarray:
        if not len(batch):
            return np.zeros((0, self.dim), dtype=np.float32)
        (features,) = self.session.run(None, {name: batch})
        features = features.astype(np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(features / norms, dtype=np.float32)


class OnnxTextEncoder(_Tower):
    """Texts in, unit float32 vectors out, like ``Encoder.encode_texts``, with no torch in the process."""

    def __init__(self, spec: ModelSpec, meta: dict[str, Any] | None = None, warm: bool = False) -> None:
        # warm: a process that runs many queries (a server). A cold query's few tokens run on one thread
        # (no pool to start; measured faster than two on 2 cores); the vectors are the same bits either way.
        super().__init__(spec, "text", meta, threads=0 if warm else 1)
        self.context_length = int(self.meta["context_length"])
        self.prefix = self.meta.get("lengths") == "prefix"
        self._tokenizer: Tokenizer | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            from mmcli.models.tokenizer import Tokenizer

            self._tokenizer = Tokenizer(self.context_length, self.meta.get("clean", "lower"))
        return self._tokenizer

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer.tokenize(texts)
        if self.prefix:  # a causal tower pooled at the end-of-text token: what follows it changes nothing
            end = int(ids.argmax(axis=1).max()) + 1
            ids = np.ascontiguousarray(ids[:, : min(self.context_length, -(-end // BUCKET) * BUCKET)])
        return self._run("ids", ids)

    def too_long(self, text: str) -> bool:
        return self.tokenizer.count(text) + 2 > self.context_length


class OnnxImageEncoder(_Tower):
    """Preprocessed pixels in, unit vectors out, like ``Encoder.encode_images`` (CPU, fp32, no torch)."""

    device = "cpu"

    def __init__(self, spec: ModelSpec, meta: dict[str, Any] | None = None) -> None:
        from mmcli.media.preprocess import Preprocess

        super().__init__(spec, "image", meta)
        self.preprocess = Preprocess.from_dict(self.meta["preprocess"])

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self._run("pixels", np.ascontiguousarray(pixels, dtype=np.float32))
