"""What `mmcli models` shows: aliases, their specs, and whether their weights are on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmcli.models.spec import ModelSpec, aliases, find_checkpoint, parse_model_spec
from mmcli.models.weights import HF_WEIGHTS, hub_cached, pretrained_location


@dataclass(frozen=True)
class ModelEntry:
    name: str
    spec: str
    local: bool
    description: str


def weights_on_disk(spec: ModelSpec) -> bool:
    """Are this spec's weights already here? Looks in caches only; downloads nothing."""
    if spec.weights is not None:
        return spec.weights.is_file()
    if spec.source and spec.source.startswith("local-dir:"):
        folder = Path(spec.source[10:])
        return folder.is_dir() and find_checkpoint(folder) is not None
    if spec.source:
        return hub_cached(spec.source[len("hf-hub:") :], HF_WEIGHTS) is not None
    location = pretrained_location(spec.arch or "", spec.tag or "")
    if location is None:
        return False
    _, repo, filename = location
    if repo:
        return hub_cached(repo, filename) is not None
    return bool(filename) and (Path.home() / ".cache" / "clip" / Path(filename).name).is_file()


def list_models(include_all: bool = False) -> list[ModelEntry]:
    """The aliases (no open_clip import: their hub repos are in models.toml) and, with
    ``include_all``, every open_clip ARCH:TAG."""
    entries = []
    for name, entry in aliases().items():
        spec = parse_model_spec(name)
        hub = entry.get("hub")
        local = hub_cached(hub, HF_WEIGHTS) is not None if hub else weights_on_disk(spec)
        entries.append(ModelEntry(name, entry["spec"], local, entry.get("description", "")))
    if include_all:
        import open_clip

        for arch, tag in open_clip.list_pretrained():
            spec = ModelSpec(name=f"{arch}:{tag}", arch=arch, tag=tag)
            entries.append(ModelEntry(f"{arch}:{tag}", f"{arch}:{tag}", weights_on_disk(spec), ""))
    return entries
