"""Classify's labels written as keywords into each picture's XMP sidecar (``mmcli.xmp.keywords``), as the
results arrive: the one body behind ``mmcli classify --write-xmp`` and ``mmcli.classify(write_xmp=...)``.

Which labels become keywords:

- An image: the labels classify keeps (``--top-k``, ``--threshold``, ``--multi-label``'s threshold). A
  plain single-label run (none of these) keeps a score for every label; its keyword is the best label.
- A video: the labels of its whole timeline that hold for at least ``MIN_SHARE`` (a fifth) of it: a
  label's segments add up to that share of the classified timeline (from the first segment's start to
  the last one's end: the whole sampled video in a single-label run). Most time first; ``--top-k K``
  keeps the K that hold longest. A video with no segment (no label above the threshold anywhere) has
  none.

Sidecars are written in the user's process, never by a server: the keywords land beside the user's
files with the user's permissions, and a server that wrote files on request would hand its callers a
way to write beside any picture it can see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmcli.queries import ClassifyRequest
from mmcli.results import Classification, FileFailure, Segment
from mmcli.xmp.keywords import DEFAULT_PREFIX, SidecarChange, check_keyword, check_prefix, check_style, write_keywords

MIN_SHARE = 0.2  # a video's label: at least this share of its classified timeline


@dataclass(frozen=True)
class XmpOptions:
    """``--write-xmp`` and its companions: the sidecar style, the keyword prefix, whether our keywords
    not given now are taken out (``replace``), and whether anything is written (``dry_run``)."""

    style: str = "darktable"
    prefix: str = DEFAULT_PREFIX
    replace: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_style(self.style)
        check_prefix(self.prefix)


def check_labels(labels: Sequence[str]) -> None:
    """Before any work: every label can be an XMP keyword (a usage error otherwise)."""
    for label in labels:
        if label.strip():
            check_keyword(label.strip())


def image_keywords(item: Classification, request: ClassifyRequest) -> list[str]:
    """An image's keywords: the labels kept (see the module's docstring)."""
    labels = [ls.label for ls in item.labels]
    plain = request.top_k is None and request.threshold is None and not request.multi_label
    return labels[:1] if plain else labels


def video_keywords(segments: Sequence[Segment], top_k: int | None = None) -> list[str]:
    """A video's keywords from its timeline (see the module's docstring)."""
    if not segments:
        return []
    span = max(s.end for s in segments) - min(s.start for s in segments)
    held: dict[str, float] = {}
    for s in segments:
        held[s.label] = held.get(s.label, 0.0) + max(0.0, s.end - s.start)
    if span <= 0:
        return []
    kept = [label for label, time in held.items() if time >= MIN_SHARE * span - 1e-9]
    kept.sort(key=lambda label: -held[label])  # stable: first seen first among equals
    return kept[:top_k] if top_k else kept


@dataclass
class SidecarWriter:
    """Feed it classify's items in order (``add``); it writes each file's sidecar once that file's
    results are complete (a video's segments come one after another) and returns what it did.
    ``finish`` writes the last one."""

    request: ClassifyRequest
    options: XmpOptions
    _video: str | None = None
    _segments: list[Segment] = field(default_factory=list)

    def add(self, item: Classification | Segment | FileFailure) -> list[SidecarChange]:
        done = [] if isinstance(item, Segment) and item.path == self._video else self.finish()
        if isinstance(item, Segment):
            self._video = item.path
            self._segments.append(item)
        elif isinstance(item, Classification):
            from mmcli.media.video import is_video

            keywords = [] if is_video(item.path) else image_keywords(item, self.request)
            done.append(self._write(item.path, keywords))
        return done

    def finish(self) -> list[SidecarChange]:
        if self._video is None:
            return []
        path, segments = self._video, self._segments
        self._video, self._segments = None, []
        return [self._write(path, video_keywords(segments, self.request.top_k))]

    def _write(self, path: str, keywords: list[str]) -> SidecarChange:
        o = self.options
        return write_keywords(path, keywords, style=o.style, prefix=o.prefix, replace=o.replace, dry_run=o.dry_run)
