"""Frozen dataclasses that cross module boundaries (JSON output comes from ``asdict``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class FileFailure:
    """An input that could not be used, with the reason (one stderr line each)."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class ImageVector:
    """An image's unit embedding (float32, C-contiguous)."""

    path: str
    vector: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """One image's label scores, highest first."""

    path: str
    labels: tuple[LabelScore, ...]


@dataclass(frozen=True)
class Hit:
    """One search result; ``time``: the moment of a video in seconds (None for an image)."""

    rank: int
    path: str
    time: float | None
    score: float


@dataclass(frozen=True)
class Segment:
    """A stretch of a video classified as one label: ``score`` is its mean over the samples in it."""

    path: str
    start: float
    end: float
    label: str
    score: float


@dataclass(frozen=True)
class SearchResult:
    """Ranked hits, and warnings for people (a truncated query, a server that did not answer)."""

    hits: tuple[Hit, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Health:
    """What an engine says about itself (``GET /health`` of a server)."""

    status: str
    model: str
    index: str
    pid: int
    version: str
    served: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexInfo:
    """What `mmcli info` shows."""

    folder: str
    model: str
    model_spec: str
    dim: int
    ok: int
    failed: int
    missing: int
    size_bytes: int
    created: str
    updated: str
    format_version: int
    vectors: str


@dataclass(frozen=True)
class IndexEntry:
    """One line of `mmcli indexes`."""

    name: str
    folder: str
    roots: tuple[str, ...]
    model: str
    images: int
    missing: int
    size_bytes: int
    updated: str
    state: str  # "ok", or why it could not be read


@dataclass(frozen=True)
class DupeGroup:
    """Near-duplicate images: ``min_score`` is the lowest similarity among the pairs that link them."""

    group: int
    paths: tuple[str, ...]
    min_score: float


@dataclass(frozen=True)
class Cluster:
    """A k-means cluster of an index: its size, the images nearest its centre, its best labels."""

    cluster: int
    size: int
    samples: tuple[str, ...]
    labels: tuple[LabelScore, ...]
