"""Zero-shot classification: label prompts -> label vectors -> probabilities (pure numpy).

Single-label (default): softmax over the labels of ``logit_scale * cosine (+ logit_bias)``; with
the template "{}" this is exactly open_clip's ``(logit_scale * img @ txt.T).softmax(-1)``.

Multi-label (``--multi-label``): an independent score per label.
- SigLIP models (they have a ``logit_bias``): ``sigmoid(logit_scale * cosine + logit_bias)``, the
  model's own trained per-pair probability.
- CLIP models: a two-way softmax of the label against a neutral prompt (the same templates filled
  with "something"): ``sigmoid(logit_scale * (cos(img, label) - cos(img, neutral)))``. A label
  scores above 0.5 when the image is closer to it than to a generic description.

Videos give a timeline (``Segment``s): their sampled moments are scored like images, consecutive
moments with the same best label are merged into one segment (its score: the mean over them), and
a segment ends where the next one starts (the last one a sampling step after its last moment).
With ``multi_label`` each label has its own segments: runs of moments scoring at least the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.errors import UsageError
from mmcli.queries.requests import check_templates  # noqa: F401  (the rule lives with the request)
from mmcli.results import Classification, FileFailure, ImageVector, LabelScore, Segment

if TYPE_CHECKING:
    from mmcli.embedding.textcache import TextCache
    from mmcli.models import Encoder
    from mmcli.models.spec import TextEncoder

NEUTRAL_LABEL = "something"


@dataclass(frozen=True, eq=False)
class LabelSet:
    """Labels with their unit vectors (templates averaged), ready to score images against."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    vectors: np.ndarray = field(repr=False)  # (L, D)
    neutral: np.ndarray = field(repr=False)  # (D,)
    warnings: tuple[str, ...] = ()


def fill(template: str, label: str) -> str:
    """Put ``label`` into ``template`` at "{}" (plain replacement: braces in labels are kept)."""
    return template.replace("{}", label)


def clean_labels(raw: Sequence[str]) -> tuple[list[str], list[str]]:
    """Strip labels, drop empty ones and duplicates; returns (labels, warnings)."""
    labels: list[str] = []
    notes: list[str] = []
    for item in raw:
        label = item.strip().lstrip("\ufeff").strip()
        if not label:
            notes.append("ignored an empty label")
        elif label in labels:
            notes.append(f"ignored duplicate label {label!r}")
        else:
            labels.append(label)
    return labels, notes


def build_label_set(
    encoder: TextEncoder,
    labels: Sequence[str],
    templates: Sequence[str],
    cache: TextCache | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> LabelSet:
    """Embed every (label, template) prompt, average per label, renormalise."""
    from mmcli.embedding.textcache import encode_texts_cached

    clean, notes = clean_labels(labels)
    if not clean:
        raise UsageError("no labels given", hint="e.g. --labels cat dog, or --labels-file FILE")
    templates = check_templates(templates)
    long_ = [lab for lab in clean if any(encoder.too_long(fill(t, lab)) for t in templates)]
    notes += [
        f"label {lab[:40]!r}{'...' if len(lab) > 40 else ''} is longer than the model's text context "
        f"({encoder.context_length} tokens) and was truncated"
        for lab in long_
    ]
    prompts = [fill(t, lab) for lab in clean for t in templates] + [fill(t, NEUTRAL_LABEL) for t in templates]
    vecs = encode_texts_cached(encoder, prompts, cache, on_progress=on_progress)
    per_label = vecs.reshape(len(clean) + 1, len(templates), -1).mean(axis=1)
    per_label /= np.linalg.norm(per_label, axis=1, keepdims=True)
    per_label = np.ascontiguousarray(per_label, dtype=np.float32)
    return LabelSet(tuple(clean), tuple(templates), per_label[:-1], per_label[-1], tuple(notes))


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def score(
    image_vectors: np.ndarray,
    label_set: LabelSet,
    logit_scale: float,
    logit_bias: float | None,
    multi_label: bool = False,
) -> np.ndarray:
    """(N, D) unit image vectors -> (N, L) scores."""
    cos = image_vectors.astype(np.float64) @ label_set.vectors.astype(np.float64).T
    if not multi_label:
        return softmax(logit_scale * cos + (logit_bias or 0.0))
    if logit_bias is not None:
        return sigmoid(logit_scale * cos + logit_bias)
    neutral = image_vectors.astype(np.float64) @ label_set.neutral.astype(np.float64)
    return sigmoid(logit_scale * (cos - neutral[:, None]))


def rank(
    path: str, scores: np.ndarray, labels: Sequence[str], top_k: int | None, threshold: float | None
) -> Classification:
    order = np.argsort(-scores, kind="stable")
    items = [LabelScore(labels[i], float(scores[i])) for i in order if threshold is None or scores[i] >= threshold]
    return Classification(path, tuple(items[:top_k] if top_k else items))


def classify_stream(
    encoder: Encoder,
    paths: Sequence[str | Path],
    label_set: LabelSet,
    *,
    multi_label: bool = False,
    top_k: int | None = None,
    threshold: float | None = None,
    every: float = 2.0,
    max_frames: int = 2000,
    **embed_options: Any,
) -> Iterator[Classification | Segment | FileFailure]:
    """Classify image files (a Classification each) and videos (their Segments); yields in input order,
    a FileFailure for each file that failed."""
    from mmcli.embedding.video import embed_media
    from mmcli.media.video import VideoVectors

    for item in embed_media(encoder, paths, every=every, max_frames=max_frames, **embed_options):
        if isinstance(item, ImageVector):
            s = score(item.vector[None, :], label_set, encoder.logit_scale, encoder.logit_bias, multi_label)[0]
            yield rank(item.path, s, label_set.labels, top_k, threshold)
        elif isinstance(item, VideoVectors):
            s = score(item.vectors, label_set, encoder.logit_scale, encoder.logit_bias, multi_label)
            segments = timeline(item.path, item.times, s, label_set.labels, every, multi_label, threshold)
            yield from segments or [Classification(item.path, ())]  # no label above the threshold anywhere
        else:
            yield item


def timeline(
    path: str,
    times: Sequence[float],
    scores: np.ndarray,
    labels: Sequence[str],
    every: float,
    multi_label: bool = False,
    threshold: float | None = None,
) -> list[Segment]:
    """(N,) sample times and (N, L) scores -> segments (see the module's docstring), in time order."""
    n = len(times)
    ends = [times[i + 1] if i + 1 < n else times[i] + every for i in range(n)]
    runs: list[tuple[int, int, int]] = []  # (label, first sample, last sample)
    if multi_label:
        cut = 0.5 if threshold is None else threshold
        for j in range(len(labels)):
            on = scores[:, j] >= cut
            i = 0
            while i < n:
                if on[i]:
                    k = i
                    while k + 1 < n and on[k + 1]:
                        k += 1
                    runs.append((j, i, k))
                    i = k
                i += 1
    else:
        best = np.argmax(scores, axis=1)
        i = 0
        while i < n:
            k = i
            while k + 1 < n and best[k + 1] == best[i]:
                k += 1
            runs.append((int(best[i]), i, k))
            i = k + 1
    segments = [
        Segment(path, float(times[a]), float(ends[b]), labels[j], float(scores[a : b + 1, j].mean()))
        for j, a, b in runs
    ]
    if threshold is not None and not multi_label:
        segments = [s for s in segments if s.score >= threshold]
    return sorted(segments, key=lambda s: (s.start, -s.score))
