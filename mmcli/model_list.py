"""What `mmcli models` shows: aliases, their specs, and whether their weights are on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcli.models import ModelSpec, aliases, find_checkpoint, parse_model_spec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: str
    local: bool
    description: str


def _hf_cached(repo: str, filenames: list[str]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for name in filenames:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return True
    return False


def weights_on_disk(spec: ModelSpec) -> bool:
    """Are this spec's weights already here? Looks in caches only; downloads nothing."""
    if spec.weights is not None:
        return spec.weights.is_file()
    if spec.source and spec.source.startswith("local-dir:"):
        folder = Path(spec.source[10:])
        return folder.is_dir() and find_checkpoint(folder) is not None
    names = ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin"]
    if spec.source:
        return _hf_cached(spec.source[len("hf-hub:"):], names)
    import open_clip

    arch = spec.arch or ""
    if spec.tag == "openai" and f"{arch}-quickgelu" in open_clip.list_models():
        arch = f"{arch}-quickgelu"
    cfg = open_clip.get_pretrained_cfg(arch, spec.tag or "")
    if not cfg:
        return False
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        files = [filename] if filename else names
        if filename.endswith(".bin"):
            files.insert(0, filename[:-4] + ".safetensors")
        return _hf_cached(repo, files)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / Path(url).name).is_file()


def list_models(include_all: bool = False) -> list[ModelEntry]:
    entries = []
    for name, entry in aliases().items():
        spec = parse_model_spec(name)
        entries.append(ModelEntry(name, entry["spec"], weights_on_disk(spec), entry.get("description", "")))
    if include_all:
        import open_clip

        for arch, tag in open_clip.list_pretrained():
            spec = ModelSpec(name=f"{arch}:{tag}", arch=arch, tag=tag)
            entries.append(ModelEntry(f"{arch}:{tag}", f"{arch}:{tag}", weights_on_disk(spec), ""))
    return entries
