"""Model specs: what ``--model`` (and ``--weights``) name, without importing torch or open_clip.

Spec forms (``--model``):
    ARCH:TAG            open_clip architecture and pretrained tag (downloaded once, then cached)
    ARCH + --weights F  a local checkpoint for that architecture
    hf-hub:ORG/REPO     an open_clip model on the Hugging Face Hub
    local-dir:DIR       a folder with open_clip_config.json and a checkpoint
    ALIAS               a name from configs/models.toml (``mmcli-tiny``, ...)

This is the fast path: a repeated query whose text embedding is cached needs a spec and its
fingerprint, and no model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mmcli.config import configs_dir, default_model, load_toml
from mmcli.errors import UnknownModel, UsageError

if TYPE_CHECKING:
    import numpy as np

CHECKPOINT_NAMES = (  # in a model folder, the first of these present is its checkpoint
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.pth",
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

    @property
    def shown(self) -> str:
        """How messages name the model: as the user named it when that was a name (``mmcli-tiny``, an
        alias, ``ViT-B/32``), not the folder it resolves to; else its canonical spec."""
        if self.weights is None and not self.name.startswith(("local-dir:", "hf-hub:")):
            return self.name
        return self.canonical


def aliases() -> dict[str, dict[str, str]]:
    return dict(load_toml("models.toml").get("aliases", {}))


# The names of OpenAI's `clip.load(...)`, as open_clip ARCH:TAG specs.
OPENAI_NAMES = {
    "RN50": "RN50:openai",
    "RN101": "RN101:openai",
    "RN50x4": "RN50x4:openai",
    "RN50x16": "RN50x16:openai",
    "RN50x64": "RN50x64:openai",
    "ViT-B/32": "ViT-B-32:openai",
    "ViT-B/16": "ViT-B-16:openai",
    "ViT-L/14": "ViT-L-14:openai",
    "ViT-L/14@336px": "ViT-L-14-336:openai",
}


def parse_model_spec(text: str | None, weights: str | os.PathLike[str] | None = None) -> ModelSpec:
    """Turn ``--model`` (and ``--weights``) into a ModelSpec; no model code is imported."""
    name = text or default_model()
    spec_text = name
    alias = aliases().get(name)
    if alias is None and name in OPENAI_NAMES:
        spec_text = OPENAI_NAMES[name]
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
        if arch not in architectures():
            raise UnknownModel(f"unknown model {name!r}", hint=did_you_mean(name))
        raise UsageError(
            f"model {name!r} has no pretrained tag and no --weights file",
            hint=f"use --model {arch}:TAG (see `mmcli models --all`) or --model {arch} --weights FILE",
        )
    return ModelSpec(name=name, arch=arch, tag=tag)


def architectures() -> frozenset[str]:
    """open_clip's architecture names, from its model_configs folder (found without importing it)."""
    import importlib.util

    found = importlib.util.find_spec("open_clip")
    if found is None or found.origin is None:
        return frozenset()
    return frozenset(p.stem for p in (Path(found.origin).parent / "model_configs").glob("*.json"))


def did_you_mean(name: str) -> str:
    """A hint naming the aliases, OpenAI names and architectures closest to a misspelled ``name``."""
    import difflib

    known = [*aliases(), *OPENAI_NAMES, *sorted(architectures())]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(close) + "? (`mmcli models` lists the aliases)"
    return "`mmcli models` lists the aliases, `mmcli models --all` every ARCH:TAG"


def find_checkpoint(folder: Path) -> Path | None:
    """The checkpoint of a model folder: a known name first, else the first *.safetensors, *.bin, *.pt*."""
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt*"))
    return found[0] if found else None


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


class TextEncoder(Protocol):
    """What embeds texts: the torch ``Encoder`` or the ONNX ``OnnxTextEncoder``."""

    fingerprint: str
    context_length: int
    logit_scale: float
    logit_bias: float | None

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...

    def too_long(self, text: str) -> bool: ...
