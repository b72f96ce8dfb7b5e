"""What one `mmcli index` run is asked to do (``IndexJob``): built once from what the user gave, by the
command line, the Python API (``Index.add``) and the watcher (``index --watch``) alike, and handed to
``run_index(folder, job)``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import UsageError
from mmcli.queries.requests import MAX_PIXELS, MAX_SECONDS, real, whole
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
    """One `mmcli index` run: ``roots`` (folders and files, as given: made absolute and resolved here,
    where they were given), the model for a new index (``model``, ``weights``; an index keeps its own unless
    ``rebuild``), how to run it, and who hears of it (``on_progress``, ``on_failure``, ``on_note``: told,
    for people, of a stage that takes a while). ``ray``: embed on a Ray cluster (planning stays here).
    ``keep``: the model kept between runs (`--watch`), filled on first need. The values are checked here:
    a usage error before any work."""

    roots: Sequence[str | os.PathLike[str]]  # (held as a tuple of absolute, resolved Paths)
    model: str | None = None
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    rebuild: bool = False
    include_hidden: bool = False
    exclude: Sequence[str] = ()
    batch_size: int | None = None  # None: chosen for the device
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    prune: bool = False
    every: float = 2.0  # videos: seconds between sampled frames
    max_frames: int = 2000  # videos: samples per video at most
    ray: RayOptions | None = None
    keep: KeptModel | None = None
    on_progress: ProgressFn | None = None
    on_failure: Callable[[FileFailure], None] | None = None
    on_note: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.roots, (str, os.PathLike)):
            raise UsageError("an index job's roots are a list of folders and files")
        if not self.roots:
            raise UsageError("no folders or files to index")
        resolved = tuple(Path(os.fspath(r)).expanduser().resolve() for r in self.roots)
        object.__setattr__(self, "roots", resolved)  # (frozen: set once, here)
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.weights is not None:
            object.__setattr__(self, "weights", os.fspath(self.weights))
        for name, low in (("batch_size", 1), ("workers", 0)):
            if getattr(self, name) is not None:
                whole(name, getattr(self, name), low)
        whole("max_pixels", self.max_pixels, 1, MAX_PIXELS)
        real("every", self.every, 0.0, MAX_SECONDS, above=True)
        whole("max_frames", self.max_frames, 1)


@dataclass
class LoadedModel:
    """The torch model a run loaded (if it did), for the towers written after it."""

    spec: ModelSpec | None = None
    encoder: Encoder | None = None

    def take(self) -> Encoder | None:
        """The model if the towers' export can use it (CPU, fp32); dropped either way (memory)."""
        encoder, self.encoder = self.encoder, None
        return encoder if encoder is not None and (encoder.device, encoder.precision) == ("cpu", "fp32") else None
