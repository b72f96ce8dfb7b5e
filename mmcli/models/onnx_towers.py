"""The model's towers without torch: exported once per model to ONNX, run with ONNX Runtime.

Importing torch and open_clip costs more than a whole query. So the first time a model's text
tower (or, for small image jobs, its image tower) is needed, with torch at hand, it is exported in
fp32 to ``$MMCLI_CACHE/onnx/<tower>-<key>.onnx`` (written atomically, stored as ONNX Runtime
optimises it) with a JSON sidecar: how to tokenize (``mmcli.models.tokenizer``, open_clip's ids without
torch) or preprocess, and the model's logit scale and bias. From then on ``OnnxTextEncoder`` and
``OnnxImageEncoder`` embed in a process that never imports torch. A model whose tokenizer is not
open_clip's plain BPE (SigLIP's, Hugging Face's), or whose export fails, keeps the torch path; the
sidecar records why, so nobody tries again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.models.spec import ModelSpec, model_fingerprint

if TYPE_CHECKING:
    from mmcli.models.encoder import Encoder

FORMAT = 1
OPSET = 17
TOWERS = ("text", "image")


def tower_files(spec: ModelSpec, tower: str = "text") -> tuple[Path, Path]:
    """(model.onnx, sidecar.json) of one of ``spec``'s towers in the cache."""
    from mmcli.config import cache_dir

    key = hashlib.sha256(model_fingerprint(spec, ("cpu", "fp32")).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    folder = cache_dir() / "onnx"
    return folder / f"{tower}-{key}.onnx", folder / f"{tower}-{key}.json"


def onnx_fingerprint(spec: ModelSpec) -> str:
    """What identifies the embeddings the ONNX towers give (the text cache's key for them)."""
    return model_fingerprint(spec, ("onnx", "fp32"))


@dataclass(frozen=True)
class TowerState:
    ready: bool  # an exported tower is there
    refused: str | None  # why this model keeps the torch path (recorded by an earlier export)


def tower_state(spec: ModelSpec, tower: str = "text") -> TowerState:
    model, sidecar = tower_files(spec, tower)
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return TowerState(False, None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return TowerState(False, None)
    if meta.get("refused"):
        return TowerState(False, str(meta["refused"]))
    return TowerState(model.is_file(), None)


def runtime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class _Tower:
    def __init__(self, spec: ModelSpec, tower: str) -> None:
        import onnxruntime

        model, sidecar = tower_files(spec, tower)
        self.meta: dict[str, Any] = json.loads(sidecar.read_text())
        self.spec = spec
        self.fingerprint = onnx_fingerprint(spec)
        self.logit_scale = float(self.meta["logit_scale"])
        self.logit_bias = None if self.meta.get("logit_bias") is None else float(self.meta["logit_bias"])
        self.dim = int(self.meta["dim"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # done at export
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

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

    def __init__(self, spec: ModelSpec) -> None:
        from mmcli.models.tokenizer import Tokenizer

        super().__init__(spec, "text")
        self.context_length = int(self.meta["context_length"])
        self.tokenizer = Tokenizer(self.context_length, self.meta.get("clean", "lower"))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._run("ids", self.tokenizer.tokenize(texts) if texts else np.zeros((0, 1), np.int64))

    def too_long(self, text: str) -> bool:
        return self.tokenizer.count(text) + 2 > self.context_length


class OnnxImageEncoder(_Tower):
    """Preprocessed pixels in, unit vectors out, like ``Encoder.encode_images`` (CPU, fp32, no torch)."""

    device = "cpu"

    def __init__(self, spec: ModelSpec) -> None:
        from mmcli.media.preprocess import Preprocess

        super().__init__(spec, "image")
        p = self.meta["preprocess"]
        self.preprocess = Preprocess(**{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self._run("pixels", np.ascontiguousarray(pixels, dtype=np.float32))


def export_tower(spec: ModelSpec, tower: str = "text") -> str | None:
    """Export one of ``spec``'s towers (fp32, CPU); None when done, else the reason it keeps torch."""
    from mmcli.atomic import atomic_write_bytes

    model_file, sidecar = tower_files(spec, tower)
    try:
        outcome = _export(spec, tower, model_file)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: keep torch
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        outcome = f"the ONNX export failed ({type(exc).__name__}: {first})"
    meta = {"format": FORMAT, "refused": outcome} if isinstance(outcome, str) else {"format": FORMAT, **outcome}
    atomic_write_bytes(sidecar, json.dumps(meta).encode())
    return outcome if isinstance(outcome, str) else None


def export_text_tower(spec: ModelSpec) -> str | None:
    return export_tower(spec, "text")


def _export(spec: ModelSpec, tower: str, target: Path) -> dict[str, Any] | str:
    import torch
    from open_clip.tokenizer import SimpleTokenizer

    from mmcli.models import load_encoder

    encoder: Encoder = load_encoder(spec, device="cpu", precision="fp32")
    meta: dict[str, Any] = {
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
        "dim": encoder.dim,
        "spec": spec.canonical,
    }
    if tower == "text":
        clean = _clean_mode(encoder.tokenizer, SimpleTokenizer)
        if clean is None:
            return "its tokenizer is not open_clip's plain BPE tokenizer"
        meta |= {"context_length": encoder.context_length, "clean": clean}
        example, name, method = encoder.tokenizer(["a photo of a cat.", "two"]).to(torch.long), "ids", "encode_text"
    else:
        meta["preprocess"] = asdict(encoder.preprocess)
        height, width = encoder.preprocess.size
        example, name, method = torch.zeros(2, 3, height, width), "pixels", "encode_image"

    class Tower(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return getattr(self.model, method)(x)

    _write(Tower(encoder.model).eval(), example, name, target)
    return meta


def _write(module: Any, example: Any, name: str, target: Path) -> None:
    import tempfile

    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX form
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), _silenced():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            torch.onnx.export(
                module,
                (example,),
                tmp,
                input_names=[name],
                output_names=["features"],
                dynamic_axes={name: {0: "n"}, "features": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        _optimize(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, tmp + ".opt"):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        raise
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """The exporter prints (graphs, diagnostics) on stdout and stderr, from Python and C++: stdout is
    the command's data, so both descriptors point at /dev/null meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _optimize(path: str) -> None:
    """Store the graph as ONNX Runtime optimises it (fusions; nothing specific to this CPU), so loading
    it for a query skips that work."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = path + ".opt"
    onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    os.replace(path + ".opt", path)


def _clean_mode(tokenizer: Any, simple: type) -> str | None:
    """ "lower" / "whitespace" for open_clip's SimpleTokenizer with those cleaners and no reduction."""
    if type(tokenizer) is not simple or getattr(tokenizer, "reduction_fn", None) is not None:
        return None
    name = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
    return {"_clean_lower": "lower", "_clean_whitespace": "whitespace"}.get(name)
