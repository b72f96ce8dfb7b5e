"""What a user asks for: search terms and requests, parsed once, before they reach an engine.

A search query is a weighted sum of unit vectors, renormalised (as rclip combines queries): the
main text (weight 1), ``--image PATH`` (weight 1), ``--add TERM`` (+w) and ``--sub TERM`` (-w). A
TERM is ``[WEIGHT:]TEXT-OR-IMAGE-PATH``: an existing file is an image, anything else text. A video
file stands for all its moments; ``VIDEO#t=SECONDS`` for the one at that time (``split_moment``).

Image paths are made absolute here, in the process that parsed them, so a request means the same
thing in a server started in another folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import UsageError

WEIGHT_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.+)$", re.DOTALL)
MOMENT_RE = re.compile(r"^(.+)#t=(\d+(?:\.\d*)?|\.\d+)$", re.DOTALL)  # a media fragment, as `-f urls` writes
DEFAULT_TEMPLATE = "a photo of a {}."


@dataclass(frozen=True)
class Term:
    """One part of a query: a text, or an image file (absolute path), with its weight."""

    weight: float
    value: str  # a text, or an image file; a video file (all its moments) or VIDEO#t=SECONDS (one moment)
    is_image: bool


def image_term(path: str, weight: float = 1.0) -> Term:
    return Term(weight, os.path.abspath(os.path.expanduser(path)), True)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")  # as mmcli.media.images.VIDEO_EXTENSIONS


def split_moment(value: str) -> tuple[str, float | None]:
    """``talk.mp4#t=12.5`` -> (``talk.mp4``, 12.5); a file that exists under the whole name, or a name
    without a fragment -> (value, None)."""
    m = MOMENT_RE.match(value)
    if m is None or os.path.exists(value):
        return value, None
    return m.group(1), float(m.group(2))


def names_a_file(value: str) -> bool:
    """Is ``value`` an existing file, or a moment (``#t=``) of one?"""
    return os.path.isfile(split_moment(value)[0])


def parse_term(raw: str, sign: float = 1.0) -> Term:
    """``2:sunset`` -> weight 2, text "sunset"; ``photo.jpg`` (an existing file) -> an image term;
    ``text:a/b`` -> the text "a/b". A term that looks like a path (a slash, an image suffix) but names
    no file is an error rather than quietly a text query."""
    weight, value = 1.0, raw
    m = WEIGHT_RE.match(raw)
    if m and not os.path.exists(raw):
        weight, value = float(m.group(1)), m.group(2)
    if value.startswith("text:"):
        value = value[5:]
        if not value.strip():
            raise UsageError(f"empty query term {raw!r}")
        return Term(sign * weight, value, False)
    if not value.strip():
        raise UsageError(f"empty query term {raw!r}")
    if names_a_file(value):
        return image_term(value, sign * weight)
    if os.sep in value or split_moment(value)[0].lower().endswith(IMAGE_SUFFIXES + VIDEO_SUFFIXES):
        raise UsageError(f"no such image file: {value}", hint=f"to search for it as text, write text:{value}")
    return Term(sign * weight, value, False)


def build_terms(
    query: str | None, image: str | None, add: Sequence[str] = (), sub: Sequence[str] = ()
) -> tuple[Term, ...]:
    terms: list[Term] = []
    if query is not None:
        if not query.strip():
            raise UsageError("empty query")
        terms.append(Term(1.0, query, False))
    if image is not None:
        if not names_a_file(image):
            raise UsageError(f"--image: no such file: {image}")
        terms.append(image_term(image))
    terms += [parse_term(t) for t in add] + [parse_term(t, -1.0) for t in sub]
    if not terms:
        raise UsageError("nothing to search for", hint='give a query ("a red car"), --image PATH or --add TERM')
    return tuple(terms)


def describe(terms: Sequence[Term]) -> str:
    """A short title for pages of results: the text, or "like FILE", or "combined query"."""
    if len(terms) == 1:
        t = terms[0]
        return f"like {t.value}" if t.is_image else t.value
    texts = [t.value for t in terms if not t.is_image and t.weight > 0]
    return texts[0] if texts else "combined query"


SORTS = ("score", "date", "-date")


@dataclass(frozen=True)
class SearchRequest:
    """A search against one index. ``within`` is an absolute folder or None; ``after``/``before``
    keep what was taken in [after, before) (unix seconds; ``mmcli.media.taken.period`` reads the dates
    users give); ``sort``: "score" (best first), "date" (oldest first) or "-date" (newest first),
    of the ``top_k`` best matches."""

    terms: tuple[Term, ...]
    top_k: int = 10
    threshold: float | None = None
    within: str | None = None
    exact: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    after: float | None = None
    before: float | None = None
    sort: str = "score"
    all_moments: bool = False  # every matching moment of a video, not only its best

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise UsageError(f"--sort {self.sort}: not one of {', '.join(SORTS)}")

    @staticmethod
    def folder(within: str | None) -> str | None:
        """``--in``: an absolute folder, which must exist."""
        if not within:
            return None
        folder = os.path.abspath(os.path.expanduser(within))
        if not os.path.isdir(folder):
            raise UsageError(f"--in {within}: no such folder")
        return folder


@dataclass(frozen=True)
class ClassifyRequest:
    """Zero-shot classification of image files (paths as the user gave them) against labels."""

    paths: tuple[str, ...]
    labels: tuple[str, ...]
    templates: tuple[str, ...] = (DEFAULT_TEMPLATE,)
    multi_label: bool = False
    top_k: int | None = None
    threshold: float | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    every: float = 2.0  # videos: seconds between samples
    max_frames: int = 2000  # videos: samples per video at most
