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
