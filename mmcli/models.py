"""Model specs, open_clip loading, device/precision choice, and the Encoder that embeds.

Every source ends in the same place: an open_clip architecture built without weights, then one
checkpoint file loaded into it with ``open_clip.load_checkpoint`` (safetensors, or a state dict
through ``torch.load(weights_only=True)``, never arbitrary unpickling).

Spec forms (``--model``):
    ARCH:TAG            open_clip architecture and pretrained tag (downloaded once, then cached)
    ARCH + --weights F  a local checkpoint for that architecture
    hf-hub:ORG/REPO     an open_clip model on the Hugging Face Hub
    local-dir:DIR       a folder with open_clip_config.json and a checkpoint
    ALIAS               a name from configs/models.toml (``mmcli-tiny``, ...)
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.config import configs_dir, default_model, load_toml
from mmcli.errors import ModelError, UsageError
from mmcli.preprocess import Preprocess

if TYPE_CHECKING:
    import torch

HF_WEIGHTS = "open_clip_pytorch_model.bin"  # open_clip's default checkpoint name on the hub
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OFFLINE_HINT = (
    "download the weights once with network access (they are cached), pass ARCH --weights FILE, "
    "set HF_HUB_OFFLINE=1 to use only the local cache, or try --model mmcli-tiny"
)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved ``--model`` value: exactly one of tag / weights / source is set."""

    name: str  # as the user gave it (alias or spec)
    arch: str | None = None
    tag: str | None = None
    weights: Path | None = None
    source: str | None = None  # "hf-hub:ORG/REPO" or "local-dir:/abs/dir"

    @property
    def canonical(self) -> str:
        if self.source:
            return self.source
        if self.weights:
            return f"{self.arch} --weights {self.weights}"
        return f"{self.arch}:{self.tag}"


def aliases() -> dict[str, dict[str, str]]:
    return dict(load_toml("models.toml").get("aliases", {}))


def parse_model_spec(text: str | None, weights: str | os.PathLike[str] | None = None) -> ModelSpec:
    """Turn ``--model`` (and ``--weights``) into a ModelSpec; no model code is imported."""
    name = text or default_model()
    spec_text = name
    alias = aliases().get(name)
    if alias is not None:
        spec_text = alias["spec"]
        if spec_text.startswith("local-dir:") and not Path(spec_text[10:]).is_absolute():
            spec_text = "local-dir:" + str(configs_dir() / spec_text[10:])
    if spec_text.startswith(("hf-hub:", "local-dir:")):
        if weights is not None:
            raise UsageError(f"--weights cannot be combined with {spec_text.split(':')[0]}: models")
        if spec_text.startswith("local-dir:"):
            spec_text = "local-dir:" + str(Path(spec_text[10:]).expanduser().resolve())
        if spec_text.endswith(":"):
            raise UsageError(f"empty model source in {name!r}")
        return ModelSpec(name=name, source=spec_text)
    arch, _, tag = spec_text.partition(":")
    if not arch:
        raise UsageError(f"empty architecture in model spec {name!r}")
    if weights is not None:
        if tag:
            raise UsageError(
                f"model {name!r} names a pretrained tag and --weights a file: give one",
                hint=f"use --model {arch} --weights FILE",
            )
        return ModelSpec(name=name, arch=arch, weights=Path(weights).expanduser().resolve())
    if not tag:
        raise UsageError(
            f"model {name!r} has no pretrained tag and no --weights file",
            hint=f"use --model {arch}:TAG (see `mmcli models --all`) or --model {arch} --weights FILE",
        )
    return ModelSpec(name=name, arch=arch, tag=tag)


# ----------------------------------------------------------------------------------------- device
def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}", hint=f"choose one of: {', '.join(DEVICES)}")
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


# ---------------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class _Resolved:
    model_name: str  # what open_clip.create_model / get_tokenizer take
    checkpoint: Path
    preprocess_overrides: dict[str, Any]


def find_checkpoint(folder: Path) -> Path | None:
    preferred = [
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.safetensors",
        "model.safetensors",
        "open_clip_pytorch_model.bin",
        "pytorch_model.bin",
        "open_clip_pytorch_model.pth",
        "model.pth",
    ]
    for name in preferred:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt*"))
    return found[0] if found else None


def _resolve_local_dir(folder: Path, name: str) -> _Resolved:
    if not folder.is_dir():
        raise ModelError(f"model folder not found: {folder}")
    if not (folder / "open_clip_config.json").is_file():
        raise ModelError(f"{folder} has no open_clip_config.json", hint="a local-dir: model needs its config")
    checkpoint = find_checkpoint(folder)
    if checkpoint is None:
        raise ModelError(f"{folder} holds no checkpoint (*.safetensors, *.bin, *.pt)")
    return _Resolved(name, checkpoint, {})


def _download_failed(what: str, exc: BaseException) -> ModelError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return ModelError(f"cannot get the weights of {what}: {reason}", hint=OFFLINE_HINT)


def _hub_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def _offline_reason() -> str | None:
    """Why the hub cannot be reached right now, or None. Fails in milliseconds, unlike the hub's retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set and they are not in the local cache"
    import socket

    host = _hub_host()
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"no network (cannot resolve {host}) and they are not in the local cache"
    return None


def _hub_candidates(filename: str) -> list[str]:
    if filename == HF_WEIGHTS:  # open_clip's own safetensors name for its default checkpoint
        return ["open_clip_model.safetensors", filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def hub_cached(repo: str, filename: str) -> Path | None:
    """The file from the local Hugging Face cache (safetensors preferred), or None. No network."""
    from huggingface_hub import hf_hub_download

    for name in _hub_candidates(filename):
        try:
            return Path(hf_hub_download(repo, name, local_files_only=True))
        except Exception:  # noqa: BLE001, S112 - not cached under this name
            continue
    return None


def pretrained_location(arch: str, tag: str) -> tuple[str, str, str] | None:
    """(architecture, hub repo, file) or (architecture, "", url) of an open_clip tag; None if unknown."""
    import open_clip

    if tag == "openai" and not arch.endswith("-quickgelu") and f"{arch}-quickgelu" in open_clip.list_models():
        arch = f"{arch}-quickgelu"  # OpenAI's weights were trained with QuickGELU
    pcfg = open_clip.get_pretrained_cfg(arch, tag)
    if not pcfg:
        return None
    hub = pcfg.get("hf_hub", "")
    if hub:
        repo, _, filename = hub.rstrip("/").rpartition("/") if not hub.endswith("/") else (hub.rstrip("/"), "", "")
        return arch, repo, filename or HF_WEIGHTS
    return arch, "", pcfg.get("url", "")


def _hub_file(repo: str, filename: str, what: str) -> Path:
    """A file of a hub repo: from the local cache when there, else downloaded (quietly)."""
    import logging

    from huggingface_hub import hf_hub_download

    cached = hub_cached(repo, filename)
    if cached is not None:
        return cached
    candidates = _hub_candidates(filename)
    reason = _offline_reason()
    if reason:
        raise ModelError(f"cannot get the weights of {what}: {reason}", hint=OFFLINE_HINT)
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)  # no "Retrying in 8s" lines; one error line at the end instead
    try:
        last: Exception | None = None
        for name in candidates:
            try:
                return Path(hf_hub_download(repo, name))
            except Exception as exc:  # noqa: BLE001 - the hub raises many types
                last = exc
        assert last is not None
        raise _download_failed(what, last)
    finally:
        hub_logger.setLevel(level)


def _resolve(spec: ModelSpec) -> _Resolved:
    """Find (downloading if need be) the checkpoint and config source for ``spec``."""
    import open_clip

    if spec.source and spec.source.startswith("local-dir:"):
        return _resolve_local_dir(Path(spec.source[10:]), spec.source)
    if spec.source:  # hf-hub
        repo = spec.source[len("hf-hub:") :]
        config = _hub_file(repo, "open_clip_config.json", spec.source)
        weights = _hub_file(repo, HF_WEIGHTS, spec.source)
        if weights.parent != config.parent:
            raise ModelError(f"{spec.source}: config and weights are not in one snapshot folder")
        return _Resolved("local-dir:" + str(config.parent), weights, {})

    arch = spec.arch or ""
    if spec.weights is not None:
        if arch not in open_clip.list_models():
            raise ModelError(
                f"unknown open_clip architecture {arch!r}", hint="`mmcli models --all` lists architectures and tags"
            )
        if not spec.weights.is_file():
            raise ModelError(f"weights file not found: {spec.weights}")
        return _Resolved(arch, spec.weights, {})
    location = pretrained_location(arch, spec.tag or "")
    if location is None:
        if arch not in open_clip.list_models():
            raise ModelError(
                f"unknown open_clip architecture {arch!r}", hint="`mmcli models --all` lists architectures and tags"
            )
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelError(
            f"unknown pretrained tag {spec.tag!r} for {arch}",
            hint=f"known tags: {', '.join(tags)}" if tags else "pass --weights FILE",
        )
    arch, repo, filename = location
    pcfg = open_clip.get_pretrained_cfg(arch, spec.tag or "")
    overrides = {k: pcfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in pcfg}
    what = f"{arch}:{spec.tag}"
    if repo:
        return _Resolved(arch, _hub_file(repo, filename, what), overrides)
    try:
        checkpoint = Path(open_clip.download_pretrained(pcfg))
    except Exception as exc:  # noqa: BLE001 - urllib / checksum errors
        raise _download_failed(what, exc) from None
    return _Resolved(arch, checkpoint, overrides)


@contextlib.contextmanager
def _skip_random_init() -> Iterator[None]:
    """Build modules without their random initialisation: loaded weights overwrite every parameter.

    ``load_checkpoint(strict=True)`` checks that every parameter is loaded, so nothing stays
    uninitialised. Saves about a second for ViT-B-32 on a CPU.
    """
    import torch

    names = [
        "normal_",
        "uniform_",
        "trunc_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "constant_",
        "zeros_",
        "ones_",
        "orthogonal_",
    ]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    with _INIT_LOCK:
        try:
            for n in names:
                setattr(torch.nn.init, n, lambda tensor, *a, **k: tensor)
            yield
        finally:
            for n, fn in saved.items():
                setattr(torch.nn.init, n, fn)


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """open_clip logs "initialized randomly" on the root logger before we load the weights: hide it."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _assign_safetensors(model: torch.nn.Module, checkpoint: Path, dtype: torch.dtype) -> bool:
    """Fast path: a safetensors file whose keys and shapes are exactly the model's own.

    The loaded tensors become the parameters (``assign=True``): no second copy of the weights in
    memory, no copy time. Anything else (other key names, resized position embeddings) returns
    False and goes through open_clip's converting loader. Tensors are read one at a time and cast
    to the run's ``dtype`` as they come, so a bf16 run never holds the fp32 weights.
    """
    from safetensors import safe_open

    own = model.state_dict()
    state = {}
    with safe_open(str(checkpoint), framework="pt") as f:
        if set(f.keys()) != set(own):
            return False
        for key, mine in own.items():
            tensor = f.get_tensor(key)
            if tensor.shape != mine.shape:
                return False
            state[key] = tensor.to(dtype if mine.is_floating_point() else mine.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return True


def _load_weights(model: torch.nn.Module, checkpoint: Path, what: str, dtype: torch.dtype) -> None:
    import pickle

    import open_clip

    try:
        if checkpoint.suffix == ".safetensors" and _assign_safetensors(model, checkpoint, dtype):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's pickle-protocol chatter
            open_clip.load_checkpoint(model, str(checkpoint), strict=True, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelError(
            f"refusing to load {checkpoint}: it is not a plain tensor state dict ({first})",
            hint="mmcli loads only safetensors or state dicts that torch.load(weights_only=True) accepts",
        ) from None
    except (RuntimeError, AssertionError) as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, AssertionError) or any(
            s in text for s in ("Missing key", "Unexpected key", "size mismatch")
        ):
            raise ModelError(
                f"the weights in {checkpoint} do not fit {what}: {text.splitlines()[0][:200]}",
                hint="check the architecture name given with --model",
            ) from None
        raise ModelError(f"cannot load {checkpoint}: {text.splitlines()[0][:200] if text else exc!r}") from None
    except Exception as exc:  # noqa: BLE001 - safetensors / zip / IO errors
        raise ModelError(f"cannot read weights {checkpoint}: {type(exc).__name__}: {str(exc)[:200]}") from None


def load_encoder(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Encoder:
    """Build the model of ``spec`` on ``device`` in ``precision`` and load its weights."""
    import open_clip
    import torch

    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if dev == "cpu" and prec == "fp16":
        raise UsageError("fp16 is not supported on the CPU", hint="use --precision bf16 or fp32")
    resolved = _resolve(spec)
    try:
        with _skip_random_init(), _quiet_logging():
            model = open_clip.create_model(
                resolved.model_name,
                pretrained=None,
                load_weights=False,
                device="cpu",
                force_preprocess_cfg=resolved.preprocess_overrides,
            )
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"cannot build model {spec.canonical}: {str(exc)[:200]}") from None
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[prec]
    _load_weights(model, resolved.checkpoint, spec.canonical, dtype)
    model.eval().requires_grad_(False)
    model.to(device=dev, dtype=dtype)
    if dev == "cuda":
        model.to(memory_format=torch.channels_last)
    tokenizer = open_clip.get_tokenizer(
        spec.source if spec.source and spec.source.startswith("hf-hub:") else resolved.model_name
    )
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    preprocess = Preprocess.from_open_clip(cfg, model.visual.image_size)
    return Encoder(
        requested=(device, precision),
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        device=dev,
        precision=prec,
        preprocess=preprocess,
        checkpoint=resolved.checkpoint,
    )


def model_fingerprint(spec: ModelSpec, requested: tuple[str, str]) -> str:
    """What identifies a model's embeddings, computed without importing torch or open_clip.

    The spec, the checkpoint file's identity where it is a local file (size, mtime), and the
    device and precision as asked for ("auto" resolves the same way on the same machine). Tagged
    and hub weights are immutable per name. Used as the key of the text-embedding cache, so a
    repeated query or label set needs no model at all.
    """
    checkpoint: Path | None = spec.weights
    if spec.source and spec.source.startswith("local-dir:"):
        checkpoint = find_checkpoint(Path(spec.source[10:]))
    ident = ""
    if checkpoint is not None:
        try:
            st = checkpoint.stat()
            ident = f"{checkpoint.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        except OSError:
            ident = str(checkpoint)
    device, precision = requested
    return f"v1|{spec.canonical}|{ident}|{device}|{precision}"


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
        checkpoint: Path,
    ) -> None:
        self.requested = requested
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.precision = precision
        self.preprocess = preprocess
        self.checkpoint = checkpoint
        self.logit_scale = float(model.logit_scale.float().exp().item())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.float().item()) if bias is not None else None
        self.context_length = int(getattr(tokenizer, "context_length", 77))
        self.embed_dim = (
            int(self.model.text_projection.shape[1])
            if hasattr(self.model, "text_projection")
            and self.model.text_projection is not None
            and self.model.text_projection.ndim == 2
            else None
        )

    @property
    def is_siglip(self) -> bool:
        return self.logit_bias is not None

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and numerics, for caches of embeddings."""
        return model_fingerprint(self.spec, self.requested)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype()

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) preprocessed float32 pixels -> (N, D) unit vectors."""
        import torch

        return self.encode_tensor(torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, self._dtype()))

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
        return int(self.encode_texts(["x"]).shape[1]) if self.embed_dim is None else self.embed_dim


def _unit_rows(feats: torch.Tensor) -> np.ndarray:
    arr = feats.float().cpu().numpy()
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)
