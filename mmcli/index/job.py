"""What one `mmcli index` run was asked to do, besides the index and the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.results import FileFailure, ProgressFn

if TYPE_CHECKING:
    from mmcli.embedding.ray_driver import RayOptions
    from mmcli.models import Encoder, ModelSpec


@dataclass
class KeptModel:
    """The model of an indexer that runs again and again (`mmcli index --watch`): loaded on first need
    by a run, handed to the next runs while the index's model stays the same."""

    spec: ModelSpec | None = None
    encoder: Encoder | None = None
    loads: int = 0  # how many times a model was loaded into it

    def get(self, spec: ModelSpec) -> Encoder | None:
        same = self.spec is not None and (self.spec.canonical, self.spec.weights) == (spec.canonical, spec.weights)
        return self.encoder if same else None

    def put(self, spec: ModelSpec, encoder: Encoder) -> None:
        if self.get(spec) is not encoder:
            self.spec, self.encoder, self.loads = spec, encoder, self.loads + 1


@dataclass(frozen=True)
class IndexJob:
    """What one `mmcli index` run was asked to do, besides the index and the model."""

    roots: tuple[Path, ...]
    device: str = "auto"
    precision: str = "auto"
    include_hidden: bool = False
    exclude: tuple[str, ...] = ()
    batch_size: int | None = None  # None: chosen for the device
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_progress: ProgressFn | None = None
    on_failure: Callable[[FileFailure], None] | None = None
    prune: bool = False
    every: float = 2.0  # videos: seconds between sampled frames
    max_frames: int = 2000  # videos: samples per video at most
    ray: RayOptions | None = None  # embed on a Ray cluster (planning stays here)
    keep: KeptModel | None = None  # the model kept between runs (`--watch`), filled on first need
    on_note: Callable[[str], None] | None = None  # for people: a stage that takes a while (the towers' export)


@dataclass
class LoadedModel:
    """The torch model a run loaded (if it did), for the towers written after it."""

    spec: ModelSpec | None = None
    encoder: Encoder | None = None

    def take(self) -> Encoder | None:
        """The model if the towers' export can use it (CPU, fp32); dropped either way (memory)."""
        encoder, self.encoder = self.encoder, None
        return encoder if encoder is not None and (encoder.device, encoder.precision) == ("cpu", "fp32") else None
