"""The text tower without torch: exported once per model to ONNX, run with ONNX Runtime.

A new text query or label set needs the text tower, and importing torch and open_clip costs more
than the whole query. So the first time a model's text tower is needed (with torch at hand) it is
exported, in fp32, to ``$MMCLI_CACHE/onnx/<key>.onnx`` (written atomically) with a JSON sidecar
saying how to tokenize (``mmcli.tokenizer``, open_clip's ids without torch) and the model's logit
scale and bias. From then on texts are embedded by ``OnnxTextEncoder`` in a process that never
imports torch. Models whose tokenizer is not open_clip's plain BPE (SigLIP's, Hugging Face's) or
that fail to export keep the torch path; the sidecar records why, so nobody tries again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.models.spec import ModelSpec, model_fingerprint

if TYPE_CHECKING:
    from mmcli.models.encoder import Encoder

FORMAT = 1
OPSET = 17


def tower_files(spec: ModelSpec) -> tuple[Path, Path]:
    """(model.onnx, sidecar.json) of ``spec``'s text tower in the cache."""
    from mmcli.config import cache_dir

    key = hashlib.sha256(model_fingerprint(spec, ("cpu", "fp32")).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    folder = cache_dir() / "onnx"
    return folder / f"text-{key}.onnx", folder / f"text-{key}.json"


def onnx_fingerprint(spec: ModelSpec) -> str:
    """What identifies the embeddings the ONNX tower gives (the text cache's key for them)."""
    return model_fingerprint(spec, ("onnx", "fp32"))


@dataclass(frozen=True)
class TowerState:
    ready: bool  # an exported tower is there
    refused: str | None  # why this model keeps the torch path (recorded by an earlier export)


def tower_state(spec: ModelSpec) -> TowerState:
    model, sidecar = tower_files(spec)
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


class OnnxTextEncoder:
    """Texts in, unit float32 vectors out, like ``Encoder.encode_texts``, with no torch in the process."""

    def __init__(self, spec: ModelSpec) -> None:
        import onnxruntime

        from mmcli.tokenizer import Tokenizer

        model, sidecar = tower_files(spec)
        meta = json.loads(sidecar.read_text())
        self.spec = spec
        self.fingerprint = onnx_fingerprint(spec)
        self.context_length = int(meta["context_length"])
        self.logit_scale = float(meta["logit_scale"])
        self.logit_bias = None if meta.get("logit_bias") is None else float(meta["logit_bias"])
        self.dim = int(meta["dim"])
        self.tokenizer = Tokenizer(self.context_length, meta.get("clean", "lower"))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # done at export
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        (features,) = self.session.run(None, {"ids": self.tokenizer.tokenize(texts)})
        features = features.astype(np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(features / norms, dtype=np.float32)

    def too_long(self, text: str) -> bool:
        return self.tokenizer.count(text) + 2 > self.context_length


def export_text_tower(spec: ModelSpec) -> str | None:
    """Export ``spec``'s text tower (fp32, CPU); None when done, else the reason it keeps torch."""
    from mmcli.atomic import atomic_write_bytes

    model_file, sidecar = tower_files(spec)
    try:
        reason = _export(spec, model_file)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means: keep torch
        reason = f"the ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"
    if isinstance(reason, str):
        atomic_write_bytes(sidecar, json.dumps({"format": FORMAT, "refused": reason}).encode())
        return reason
    atomic_write_bytes(sidecar, json.dumps({"format": FORMAT, **reason}).encode())
    return None


def _export(spec: ModelSpec, target: Path) -> dict[str, Any] | str:
    import tempfile

    import torch
    from open_clip.tokenizer import SimpleTokenizer

    from mmcli.models import load_encoder

    encoder: Encoder = load_encoder(spec, device="cpu", precision="fp32")
    clean = _clean_mode(encoder.tokenizer, SimpleTokenizer)
    if clean is None:
        return "its tokenizer is not open_clip's plain BPE tokenizer"

    class TextTower(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(ids)

    ids = encoder.tokenizer(["a photo of a cat.", "two"]).to(torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            torch.onnx.export(
                TextTower(encoder.model).eval(),
                (ids,),
                tmp,
                input_names=["ids"],
                output_names=["features"],
                dynamic_axes={"ids": {0: "n"}, "features": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        _optimize(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return {
        "context_length": encoder.context_length,
        "clean": clean,
        "logit_scale": encoder.logit_scale,
        "logit_bias": encoder.logit_bias,
        "dim": encoder.dim,
        "spec": spec.canonical,
    }


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
