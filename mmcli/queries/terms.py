"""Search terms: what a query is made of, parsed once, in the process that parsed the command.

A search query is a weighted sum of unit vectors, renormalised (as rclip combines queries): the
main text (weight 1), ``--image PATH`` (weight 1), ``--add TERM`` (+w) and ``--sub TERM`` (-w). A
TERM is ``[WEIGHT:]TEXT-OR-IMAGE-PATH``: an existing file is an image, anything else text. A video
file stands for all its moments; ``VIDEO#t=SECONDS`` for the one at that time (``split_moment``).

Image paths are made absolute here, in the process that parsed them, so a request means the same
thing in a server or a helper started in another folder.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmcli.errors import UsageError

WEIGHT_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.+)$", re.DOTALL)
MOMENT_RE = re.compile(r"^(.+)#t=(\d+(?:\.\d*)?|\.\d+)$", re.DOTALL)  # a media fragment, as `-f urls` writes
MAX_WEIGHT = 1e6  # a term's weight lies in [-MAX_WEIGHT, MAX_WEIGHT]
MAX_MOMENT = 1e9  # seconds into a video


@dataclass(frozen=True)
class Term:
    """One part of a query: a text, or an image file (absolute path), with its weight."""

    weight: float
    value: str  # a text, or an image file; a video file (all its moments) or VIDEO#t=SECONDS (one moment)
    is_image: bool
    time: float | None = None  # a moment of a video, in seconds: its indexed vector (else its frame there)

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise UsageError(f"a term's weight is a number, not {self.weight!r}")
        if not (math.isfinite(self.weight) and abs(self.weight) <= MAX_WEIGHT):
            raise UsageError(f"a term's weight lies in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}], not {self.weight}")
        if not isinstance(self.value, str) or not self.value:
            raise UsageError("a term is a text or an image path, not empty")
        if self.time is not None:
            if not self.is_image:
                raise UsageError("a moment (time) goes with an image term: a video's path")
            if isinstance(self.time, bool) or not isinstance(self.time, (int, float)):
                raise UsageError(f"a moment is a number of seconds, not {self.time!r}")
            if not (math.isfinite(self.time) and 0 <= self.time <= MAX_MOMENT):
                raise UsageError(f"a moment lies in [0, {MAX_MOMENT:g}] seconds, not {self.time}")


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


def names_a_video(path: str) -> bool:
    """Is ``path`` a video's name (its suffix; nothing is looked up)? As ``mmcli.media.video.is_video``."""
    return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


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
