"""Device and precision choice, and the Encoder: images and texts in, unit vectors out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.errors import ModelError, UsageError
from mmcli.media.preprocess import Preprocess
from mmcli.models.spec import ModelSpec, model_fingerprint

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_names(device: str, precision: str) -> None:
    """Refuse a device or precision this build does not know (a usage error), without torch."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}", hint=f"choose one of: {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", hint=f"choose one of: {', '.join(PRECISIONS)}")


def resolve_device(device: str) -> str:
    check_names(device, "auto")
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: no CUDA device is available", hint="use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("--device mps: MPS is not available", hint="use --device cpu")
    return device


def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic (AVX512-BF16 or AMX): where bf16 was measured faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}", hint=f"choose one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device in ("cuda", "mps"):
        return "fp16"
    # CPU: bf16 only where the CPU computes it natively (see README, "Precision").
    from mmcli.config import settings

    return "bf16" if cpu_has_bf16() and settings().cpu_bf16 else "fp32"


@dataclass(frozen=True)
class EncoderShape:
    """What a driver that sends the images elsewhere needs of a model: its input transform and vector size."""

    preprocess: Preprocess
    dim: int


def describe_encoder(spec: ModelSpec) -> EncoderShape:
    """The input transform and vector size of ``spec``'s model, from its configuration, built on the
    meta device: no weights are loaded (they are resolved, so a missing checkpoint fails here, early)."""
    from mmcli.models.build import build_shapes
    from mmcli.models.weights import resolve

    resolved = resolve(spec)
    try:
        model = build_shapes(resolved, spec.shown)
    except ModelError:
        model = None
    projection = getattr(model, "text_projection", None)
    out = getattr(getattr(model, "visual", None), "output_dim", None)
    if projection is not None and getattr(projection, "ndim", 0) == 2:
        dim = int(projection.shape[1])
    elif isinstance(out, int):
        dim = out
    else:  # not built on meta, or no vector size in its shapes: the ordinary load says it (or why not)
        encoder = load_encoder(spec, device="cpu", precision="fp32")
        return EncoderShape(encoder.preprocess, encoder.dim)
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    return EncoderShape(Preprocess.from_open_clip(cfg, model.visual.image_size), dim)


def load_encoder(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Encoder:
    """Build the model of ``spec`` on ``device`` in ``precision`` and load its weights."""
    from mmcli.models.weights import check_reachable, resolve

    check_names(device, precision)  # a usage error first, then weights that cannot be had now:
    check_reachable(spec)  # both before seconds of importing torch
    import torch

    from mmcli.models.build import build_model

    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if dev == "cpu" and prec == "fp16":
        raise UsageError("fp16 is not supported on the CPU", hint="use --precision bf16 or fp32")
    resolved = resolve(spec)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
    model = build_model(resolved, spec.shown, dtype)
    model.eval().requires_grad_(False)
    model.to(device=dev, dtype=dtype)
    if dev == "cuda":
        model.to(memory_format=torch.channels_last)
    tokenizer_name = spec.source if spec.source and spec.source.startswith("hf-hub:") else resolved.model_name
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    preprocess = Preprocess.from_open_clip(cfg, model.visual.image_size)
    return Encoder(
        requested=(device, precision),
        spec=spec,
        model=model,
        tokenizer=tokenizer_name,
        device=dev,
        precision=prec,
        preprocess=preprocess,
    )


class Encoder:
    """A loaded model: images and texts in, L2-normalised float32 vectors out."""

    def __init__(
        self,
        requested: tuple[str, str],
        spec: ModelSpec,
        model: Any,
        tokenizer: Any,
        device: str,
        precision: str,
        preprocess: Preprocess,
    ) -> None:
        """``tokenizer``: an open_clip tokenizer, or the name to get one by when texts first come
        (image-only jobs never load it: SigLIP's comes from the Hugging Face hub, via transformers)."""
        self.requested = requested
        self.spec = spec
        self.model = model
        self._tokenizer = tokenizer if not isinstance(tokenizer, str) else None
        self._tokenizer_name = tokenizer if isinstance(tokenizer, str) else None
        self.device = device
        self.precision = precision
        self.preprocess = preprocess
        self.logit_scale = float(model.logit_scale.float().exp().item())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.float().item()) if bias is not None else None
        context = getattr(model, "context_length", None) or getattr(self._tokenizer, "context_length", 77)
        self.context_length = int(context)
        self.embed_dim = (
            int(self.model.text_projection.shape[1])
            if hasattr(self.model, "text_projection")
            and self.model.text_projection is not None
            and self.model.text_projection.ndim == 2
            else None
        )

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = _get_tokenizer(str(self._tokenizer_name), self.spec.shown)
        return self._tokenizer

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and numerics, for caches of embeddings."""
        return model_fingerprint(self.spec, self.requested)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) preprocessed float32 pixels -> (N, D) unit vectors."""
        import torch

        return self.encode_tensor(torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, self.dtype))

    def encode_tensor(self, x: torch.Tensor) -> np.ndarray:
        """A preprocessed batch already on the device -> (N, D) unit vectors."""
        import torch

        if self.device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            feats = self.model.encode_image(x)
        return _unit_rows(feats)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> (N, D) unit vectors (texts longer than the context are truncated)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            feats = self.model.encode_text(tokens)
        return _unit_rows(feats)

    def too_long(self, text: str) -> bool:
        """Would ``text`` be truncated to fit the text tower's context?"""
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return False
        return len(encode(text)) + 2 > self.context_length

    @property
    def dim(self) -> int:
        if self.embed_dim is None:  # (no text projection matrix: ask the image tower, which needs no tokenizer)
            side = self.preprocess.size
            probe = np.zeros((1, 3, side[0], side[1]), dtype=np.float32)
            self.embed_dim = int(self.encode_images(probe).shape[1])
        return self.embed_dim


def _get_tokenizer(name: str, model: str) -> Any:
    import open_clip

    try:
        return open_clip.get_tokenizer(name)
    except ImportError as exc:
        raise ModelError(
            f"the text tower of {model} needs a tokenizer from a package that is not installed ({exc.name})",
            hint="pip install transformers sentencepiece  (image-only commands work without it)",
        ) from None
    except OSError as exc:  # the hub could not be reached and the tokenizer is not in its cache
        raise ModelError(
            f"the tokenizer of {model} could not be loaded: {str(exc).splitlines()[0][:200]}",
            hint="it downloads from the Hugging Face hub once; run once with network access",
        ) from None


def _unit_rows(feats: torch.Tensor) -> np.ndarray:
    arr = feats.float().cpu().numpy()
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)
