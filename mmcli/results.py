"""Frozen dataclasses that cross module boundaries (JSON output comes from ``asdict``)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ProgressFn = Callable[[int, int], None]  # (done, total): progress callbacks of long jobs
NOT_A_NUMBER = "the model gave a vector that is not a number (NaN or infinite)"  # a file's failure


@dataclass(frozen=True)
class Taken:
    """When a picture was taken: unix seconds, where that came from, and the camera's UTC offset
    (seconds east of UTC; ``exif`` only)."""

    when: float
    source: str
    offset: int | None = None

    def iso(self) -> str:
        return iso(self.when, self.source, self.offset)


def iso(when: float, source: str | None, offset: int | None = None) -> str:
    """The ISO 8601 form of a stored date (the table in ``mmcli.media.taken``)."""
    if source == "exif" and offset is not None:
        tz = dt.timezone(dt.timedelta(seconds=offset))
        return dt.datetime.fromtimestamp(when, tz).isoformat(timespec="seconds")
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    return stamp if source == "exif-local" else stamp + "Z"


@dataclass(frozen=True)
class Camera:
    """What took a picture, as its EXIF header (or a video's metadata) names it: ``make`` and ``model``
    (IFD0 Make, Model), ``lens`` and ``lens_make`` (Exif LensModel, LensMake); None where absent. The
    text is the file's, stripped of NULs and spaces at its ends (``mmcli.media.camera``)."""

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    lens_make: str | None = None

    @property
    def label(self) -> str:
        """``Canon EOS R5``: the model, after the make unless the model already starts with it."""
        make, model = self.make or "", self.model or ""
        first = make.split()[0].casefold() if make.split() else ""
        if not model:
            return make
        return model if not first or model.casefold().startswith(first) else f"{make} {model}"


@dataclass(frozen=True)
class Position:
    """Where a picture was taken: WGS 84 degrees, north and east positive (``mmcli.media.camera``)."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Place:
    """A place of the offline gazetteer (``mmcli.media.places``: GeoNames' cities): ``country`` is the
    ISO 3166-1 alpha-2 code, ``admin1`` the first-level division's code (a US state: ``TX``)."""

    name: str
    country: str
    lat: float
    lon: float
    population: int = 0
    admin1: str = ""

    @property
    def label(self) -> str:
        """``Innsbruck, AT``; ``Paris, TX, US`` (a US city names its state)."""
        if self.country == "US" and self.admin1:
            return f"{self.name}, {self.admin1}, US"
        return f"{self.name}, {self.country}"


@dataclass(frozen=True)
class Near:
    """``--near``: the pictures taken within ``km`` of (``lat``, ``lon``); ``place`` is the gazetteer's
    label when the user named a place (None for coordinates)."""

    lat: float
    lon: float
    km: float
    place: str | None = None


@dataclass(frozen=True)
class Header:
    """What one read of a file's header gives: when it was taken, by what, where (None: not recorded,
    or not usable)."""

    taken: Taken
    camera: Camera | None = None
    position: Position | None = None


@dataclass(frozen=True)
class Read:
    """What one read of a file gives: its content hash (SHA-256) and when it was taken."""

    digest: str
    taken: Taken


@dataclass(frozen=True)
class FileFailure:
    """An input that could not be used, with the reason (one stderr line each)."""

    path: str
    reason: str
    read: Read | None = None  # content hash and capture time, when asked for and the file could be read


@dataclass(frozen=True, eq=False)
class ImageVector:
    """An image's unit embedding (float32, C-contiguous)."""

    path: str
    vector: np.ndarray = field(repr=False)
    read: Read | None = None  # content hash and capture time of the bytes decoded, when asked for


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
class TermScore:
    """One query term's part in a hit's score (``--explain``): ``cosine`` is the hit's vector . the term's
    unit vector; the score is the sum of weight x cosine over the terms, over the length of the weighted
    sum of the terms' vectors. ``term``: the text, or the image's path."""

    term: str
    weight: float
    cosine: float


@dataclass(frozen=True)
class Hit:
    """One search result. ``time``: the moment of a video in seconds (None for an image).
    ``taken``: when the picture was taken, ISO 8601 (``mmcli.media.taken``: with the camera's offset,
    without one when it recorded none, ``Z`` for a file's mtime); ``taken_source``: "exif",
    "exif-local" or "mtime"; both None when the index has no date for it. ``explain``: each term's
    part, when asked for (None otherwise, and then left out of JSON)."""

    rank: int
    path: str
    time: float | None
    score: float
    taken: str | None = None
    taken_source: str | None = None
    explain: tuple[TermScore, ...] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.score):  # the last line of defence: no NaN in any output (issue 28.5)
            raise not_a_number(self.path)


def not_a_number(path: str) -> Exception:
    """The error for a score that is not a number: a damaged vector in the index (or a cache)."""
    from mmcli.errors import NotANumber

    return NotANumber(
        f"the score of {path} is not a number: the index holds a damaged vector",
        hint="`mmcli index --rebuild PATH...` embeds everything again",
    )


@dataclass(frozen=True)
class Segment:
    """A stretch of a video classified as one label: ``score`` is its mean over the samples in it."""

    path: str
    start: float
    end: float
    label: str
    score: float


@dataclass(frozen=True)
class TextLine:
    """One line of text read from a picture: the recogniser's mean confidence (0-1), and its box: four
    corners (x, y), clockwise from the top left of the text, in pixels of the upright picture (EXIF
    orientation applied)."""

    text: str
    score: float
    box: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PictureText:
    """The text read from one picture (`mmcli ocr`): its lines top to bottom, ``text`` those joined by
    newlines; no lines and ``text == ""`` for a picture without text."""

    path: str
    text: str
    lines: tuple[TextLine, ...]


@dataclass(frozen=True)
class SearchResult:
    """Ranked hits, and warnings for people (a truncated query, a server that did not answer)."""

    hits: tuple[Hit, ...]
    warnings: tuple[str, ...] = ()
    threshold: float | None = None  # ``--threshold auto``: the cut-off it chose for this query
    cutoff: str | None = None  # ``--threshold auto``: why that cut-off, in words ("a gap after the 1st best")


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
    taken_oldest: str | None = None  # ISO 8601, as Hit.taken
    taken_newest: str | None = None
    taken_from_mtime: int = 0  # searchable images whose date is their file's mtime (no EXIF date)
    taken_unknown: int = 0  # searchable images with no date yet (an older index; `mmcli index` reads them)
    videos: int = 0  # of ``ok``, the videos (their moments are searched, not the file)
    moments: int = 0  # the sampled moments of those videos


@dataclass(frozen=True)
class IndexEntry:
    """One line of `mmcli indexes`."""

    name: str
    folder: str
    roots: tuple[str, ...]
    model: str
    images: int  # images searches see (videos are counted apart)
    missing: int
    size_bytes: int  # as `mmcli info` counts it (``mmcli.index.open.index_size``)
    updated: str
    state: str  # "ok", or why it could not be read
    videos: int = 0
    moments: int = 0  # the sampled moments of those videos


@dataclass(frozen=True)
class DupeGroup:
    """Near-duplicate images: ``min_score`` is the lowest similarity among the pairs that link them."""

    group: int
    paths: tuple[str, ...]
    min_score: float
    times: tuple[float | None, ...] = ()  # per path: a video's moment that matched (seconds), None for an image


@dataclass(frozen=True)
class Cluster:
    """A k-means cluster of an index: its size, the images nearest its centre, its best labels."""

    cluster: int
    size: int  # points: images and moments of videos
    samples: tuple[str, ...]
    labels: tuple[LabelScore, ...]
    images: int = 0
    videos: int = 0  # the videos whose moments are among the points
    moments: int = 0
