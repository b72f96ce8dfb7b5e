"""What a user asks for: search terms and requests, parsed once, before they reach an engine.

A search query is a weighted sum of unit vectors, renormalised (as rclip combines queries): the
main text (weight 1), ``--image PATH`` (weight 1), ``--add TERM`` (+w) and ``--sub TERM`` (-w). A
TERM is ``[WEIGHT:]TEXT-OR-IMAGE-PATH``: an existing file is an image, anything else text. A video
file stands for all its moments; ``VIDEO#t=SECONDS`` for the one at that time (``split_moment``).

Image paths are made absolute here, in the process that parsed them, so a request means the same
thing in a server started in another folder.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
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
    time: float | None = None  # a moment of a video, in seconds: its indexed vector (else its frame there)


def image_term(path: str, weight: float = 1.0, time: float | None = None) -> Term:
    return Term(weight, os.path.abspath(os.path.expanduser(path)), True, time)


Visible = Callable[[str], bool]  # may this absolute path be looked at? (a server: only under its roots)


def _everywhere(_path: str) -> bool:
    return True


def looks_like_path(value: str) -> bool:
    """A term that names a file rather than a text: a slash, or an image or video file's suffix (before a
    ``#t=`` moment). Nothing is looked up."""
    m = MOMENT_RE.match(value)
    name = m.group(1) if m else value
    return os.sep in value or name.lower().endswith(IMAGE_SUFFIXES + VIDEO_SUFFIXES)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")  # as mmcli.media.images.VIDEO_EXTENSIONS


def split_moment(value: str) -> tuple[str, float | None]:
    """``talk.mp4#t=12.5`` -> (``talk.mp4``, 12.5); a file that exists under the whole name, or a name
    without a fragment -> (value, None)."""
    m = MOMENT_RE.match(value)
    if m is None or os.path.exists(value):
        return value, None
    return m.group(1), float(m.group(2))


def names_a_file(value: str, visible: Visible = _everywhere) -> bool:
    """Is ``value`` an existing file, or a moment (``#t=``) of one? A file ``visible`` refuses is never
    looked at (as if it did not exist)."""
    path = split_moment(value)[0]
    return visible(os.path.abspath(os.path.expanduser(path))) and os.path.isfile(path)


def parse_term(raw: str, sign: float = 1.0, visible: Visible = _everywhere) -> Term:
    """``2:sunset`` -> weight 2, text "sunset"; ``photo.jpg`` (an existing file) -> an image term;
    ``text:a/b`` -> the text "a/b". A term that looks like a path (a slash, an image suffix) but names
    no file is an error rather than quietly a text query. A path ``visible`` refuses is never looked
    at (as if it did not exist), so the answer cannot tell whether it does."""

    def exists(path: str, test: Callable[[str], bool] = os.path.exists) -> bool:
        return visible(os.path.abspath(os.path.expanduser(path))) and test(path)

    weight, value = 1.0, raw
    m = WEIGHT_RE.match(raw)
    if m and not exists(raw):
        weight, value = float(m.group(1)), m.group(2)
    if value.startswith("text:"):
        value = value[5:]
        if not value.strip():
            raise UsageError(f"empty query term {raw!r}")
        return Term(sign * weight, value, False)
    if not value.strip():
        raise UsageError(f"empty query term {raw!r}")
    if names_a_file(value, visible):
        return image_term(value, sign * weight)
    if looks_like_path(value):
        raise UsageError(f"no such image file: {value}", hint=f"to search for it as text, write text:{value}")
    return Term(sign * weight, value, False)


def build_terms(
    query: str | None,
    image: str | None,
    add: Sequence[str] = (),
    sub: Sequence[str] = (),
    visible: Visible = _everywhere,
) -> tuple[Term, ...]:
    terms: list[Term] = []
    if query is not None:
        if not query.strip():
            raise UsageError("empty query")
        terms.append(Term(1.0, query, False))
    if image is not None:
        if not names_a_file(image, visible):
            raise UsageError(f"--image: no such file: {image}")
        terms.append(image_term(image))
    terms += [parse_term(t, 1.0, visible) for t in add] + [parse_term(t, -1.0, visible) for t in sub]
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
AUTO = "auto"  # --threshold auto: a cut-off chosen per query (mmcli.engine.cutoff)
RERANK_K = 100  # --rerank: how many of the index's best hits the second model re-scores


def parse_threshold(text: str | None) -> float | str | None:
    """``--threshold``: a cosine similarity, or "auto"."""
    if text is None:
        return None
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--threshold {text}: not a number or 'auto'", hint="e.g. --threshold 0.25") from None
    if not -1.0 <= value <= 1.0:
        raise UsageError(f"--threshold {text}: a cosine similarity lies in [-1, 1]")
    return value


@dataclass(frozen=True)
class SearchRequest:
    """A search against one index. ``within`` is an absolute folder or None; ``after``/``before``
    keep what was taken in [after, before) (unix seconds; ``mmcli.media.taken.period`` reads the dates
    users give); ``sort``: "score" (best first), "date" (oldest first) or "-date" (newest first),
    of the ``top_k`` best matches. ``threshold``: a minimum score, or "auto" (chosen per query).
    ``rerank``: a second model (spec or alias; ``rerank_weights`` its checkpoint where the spec needs one)
    that re-scores the index's best ``rerank_k`` hits (at least ``top_k``) and orders them; a numeric
    threshold then applies to its scores. ``explain``: each hit carries each term's part in its score."""

    terms: tuple[Term, ...]
    top_k: int = 10
    threshold: float | str | None = None
    within: str | None = None
    exact: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    after: float | None = None
    before: float | None = None
    sort: str = "score"
    all_moments: bool = False  # every matching moment of a video, not only its best
    rerank: str | None = None
    rerank_weights: str | None = None
    rerank_k: int = RERANK_K
    explain: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise UsageError(f"--sort {self.sort}: not one of {', '.join(SORTS)}")
        if isinstance(self.threshold, str) and self.threshold != AUTO:
            raise UsageError(f"--threshold {self.threshold}: not a number or 'auto'")
        if self.rerank_k < 1:
            raise UsageError("--rerank-k must be at least 1")
        if self.rerank_weights is not None and self.rerank is None:
            raise UsageError("--rerank-weights needs --rerank MODEL")

    @property
    def min_score(self) -> float | None:
        """The fixed threshold, if one was given (None for none and for "auto")."""
        return None if self.threshold is None or isinstance(self.threshold, str) else float(self.threshold)

    @property
    def auto_threshold(self) -> bool:
        return self.threshold == AUTO

    @staticmethod
    def model_here(spec: str | None) -> str | None:
        """``--rerank``: a ``local-dir:`` folder made absolute here, so a server reads the same one."""
        if spec is None or not spec.startswith("local-dir:"):
            return spec
        return "local-dir:" + os.path.abspath(os.path.expanduser(spec[10:]))

    @staticmethod
    def file_here(path: str | None) -> str | None:
        """``--rerank-weights``: made absolute here."""
        return None if path is None else os.path.abspath(os.path.expanduser(path))

    @staticmethod
    def folder(within: str | None, visible: Visible = _everywhere) -> str | None:
        """``--in``: an absolute folder, which must exist (one ``visible`` refuses is not looked at: it
        only narrows the index's paths)."""
        if not within:
            return None
        if "\0" in within:
            raise UsageError(f"--in {within!r}: not a folder name (a NUL character)")
        folder = os.path.abspath(os.path.expanduser(within))
        if not visible(folder):
            return folder
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

    def __post_init__(self) -> None:
        if not (math.isfinite(self.every) and self.every > 0) or self.max_frames < 1:
            raise UsageError("--every must be a number of seconds above 0 and --max-frames at least 1")
