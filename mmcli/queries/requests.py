"""The requests an engine takes, and the one rule of what each may hold.

``SearchRequest`` and ``ClassifyRequest`` check their values when they are made (``__post_init__``): a
value out of range, not finite or of the wrong type is a ``UsageError`` naming the option, whichever
way the request came in (the command line, the fast path, the helper, the server, MCP, the Python
API). They are built from what users type by ``mmcli.queries.build``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import UsageError
from mmcli.queries.terms import Term, Visible, _everywhere

DEFAULT_TEMPLATE = "a photo of a {}."
SORTS = ("score", "date", "-date")
AUTO = "auto"  # --threshold auto: a cut-off chosen per query (mmcli.engine.cutoff)
RERANK_K = 100  # --rerank: how many of the index's best hits the second model re-scores
MAX_K = 1_000_000  # --top-k, --rerank-k
MAX_PIXELS = 10**12
MAX_SECONDS = 1e6  # --every


def option_of(name: str) -> str:
    """The command line's name for a request field: ``top_k`` -> ``--top-k`` (messages name it so)."""
    return {"within": "--in"}.get(name, "--" + name.replace("_", "-"))


def whole(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` as the whole number ``name`` must be, in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{option_of(name)} {value!r}: not a whole number")
    if value < low or (high is not None and value > high):
        upper = f" and at most {high:,}" if high is not None else ""
        raise UsageError(f"{option_of(name)} {value}: must be at least {low}{upper}")
    return value


def real(name: str, value: Any, low: float, high: float, *, above: bool = False) -> float:
    """``value`` as the finite number ``name`` must be, in [low, high] (``above``: over ``low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option_of(name)} {value!r}: not a number")
    if not math.isfinite(value) or value > high or value < low or (above and value == low):
        raise UsageError(f"{option_of(name)} {value}: not a finite number in {'(' if above else '['}{low:g}, {high:g}]")
    return float(value)


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{option_of(name)} {value!r}: not true or false")


def _text(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{option_of(name)} {value!r}: not text")


@dataclass(frozen=True)
class SearchRequest:
    """A search against one index. ``within`` is an absolute folder or None; ``after``/``before``
    keep what was taken in [after, before) (unix seconds; ``mmcli.queries.dates.period`` reads the dates
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
        if not isinstance(self.terms, tuple) or not all(isinstance(t, Term) for t in self.terms):
            raise UsageError("a search's terms are Terms")
        if not self.terms:
            raise UsageError("nothing to search for", hint='give a query ("a red car"), --image PATH or --add TERM')
        whole("top_k", self.top_k, 1, MAX_K)
        if isinstance(self.threshold, str):
            if self.threshold != AUTO:
                raise UsageError(f"--threshold {self.threshold}: not a number or 'auto'", hint="e.g. --threshold 0.25")
        elif self.threshold is not None:
            real("threshold", self.threshold, -1.0, 1.0)  # a cosine similarity
        _text("within", self.within)
        if self.within is not None and ("\0" in self.within or not os.path.isabs(self.within)):
            raise UsageError(f"--in {self.within!r}: not an absolute folder name")
        whole("max_pixels", self.max_pixels, 1, MAX_PIXELS)
        for name in ("exact", "all_moments", "explain"):
            _flag(name, getattr(self, name))
        for name in ("after", "before"):
            if getattr(self, name) is not None:
                _instant(name, getattr(self, name))
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise UsageError("--after and --before leave no time between them")
        if self.sort not in SORTS:
            raise UsageError(f"--sort {self.sort}: not one of {', '.join(SORTS)}")
        _text("rerank", self.rerank)
        _text("rerank_weights", self.rerank_weights)
        if self.rerank == "":
            raise UsageError("--rerank: give a model (a spec or an alias)")
        whole("rerank_k", self.rerank_k, 1, MAX_K)
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


def _instant(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{option_of(name)} {value!r}: not an instant")


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
        for name in ("paths", "labels", "templates"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"a classification's {name} are texts")
        if not self.paths:
            raise UsageError("nothing to classify", hint="give image files or folders")
        if not any(label.strip() for label in self.labels):
            raise UsageError("no labels given", hint="e.g. --labels cat dog, --labels cat,dog or --labels-file FILE")
        check_templates(self.templates)
        _flag("multi_label", self.multi_label)
        if self.top_k is not None:
            whole("top_k", self.top_k, 1, MAX_K)
        if self.threshold is not None:
            real("threshold", self.threshold, 0.0, 1.0)  # a probability
        whole("max_pixels", self.max_pixels, 1, MAX_PIXELS)
        real("every", self.every, 0.0, MAX_SECONDS, above=True)
        whole("max_frames", self.max_frames, 1)


def check_templates(templates: tuple[str, ...] | list[str]) -> list[str]:
    """Prompt templates: at least one, each with ``{}`` where the label goes."""
    if not templates:
        raise UsageError("no prompt template given")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise UsageError(f"template {bad[0]!r} has no {{}} for the label", hint='e.g. --template "a photo of a {}."')
    return list(templates)
