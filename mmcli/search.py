"""Search an open index: terms -> one query vector -> ranked hits (``mmcli.queries`` parses terms).

The query vector is ``normalise(sum of weight x unit vector)``. Cached texts and indexed, unchanged
query images need no model. Query images are left out of the results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.errors import ImageLoadError, UsageError
from mmcli.index.store import Store
from mmcli.queries import SearchRequest, Term
from mmcli.results import Hit

if TYPE_CHECKING:
    from mmcli.engine import LocalEngine


def _stored_vector(store: Store, path: str) -> np.ndarray | None:
    """The indexed vector of ``path`` if the file is unchanged since it was indexed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    raw = store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns)
    return np.frombuffer(raw, dtype=np.float32) if raw is not None else None


def query_vector(
    store: Store, terms: Sequence[Term], engine: LocalEngine, max_pixels: int, notes: list[str] | None = None
) -> np.ndarray:
    """The combined query vector. Cached texts and indexed images need no model; other texts need
    only the engine's text encoder (no torch where the model has an ONNX text tower)."""
    from mmcli.images import load_pixels
    from mmcli.textcache import TextCache, encode_texts_cached

    total = None
    cache = TextCache()
    cached = cache.get(engine.text_fingerprint, [t.value for t in terms if not t.is_image])
    for term in terms:
        if term.is_image:
            vec = _stored_vector(store, os.path.realpath(term.value))
        else:
            vec = cached.get(term.value)
        if vec is None and term.is_image:
            encoder = engine.image_encoder(1)
            try:
                pixels = load_pixels(term.value, encoder.preprocess, max_pixels)
            except ImageLoadError as exc:
                raise UsageError(f"query image {exc.path}: {exc.reason}") from None
            vec = encoder.encode_images(pixels[None])[0]
        elif vec is None:
            texts = engine.text_encoder()
            if notes is not None and texts.too_long(term.value):
                notes.append(
                    f"query {term.value[:40]!r}... is longer than the model's text context "
                    f"({texts.context_length} tokens) and was truncated"
                )
            vec = encode_texts_cached(texts, [term.value], cache)[0]
        total = term.weight * vec if total is None else total + term.weight * vec
    assert total is not None
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query terms cancel out", hint="change the --add / --sub weights")
    return (total / norm).astype(np.float32)


def top_hits(store: Store, index: Any, q: np.ndarray, request: SearchRequest) -> tuple[Hit, ...]:
    """The ranked hits of query vector ``q``: FAISS ``index`` over everything, or brute force under ``within``.

    A video's moments are vectors of their own; unless ``all_moments``, a video gives one hit, its best
    moment, so more neighbours are fetched until ``top_k`` distinct files are found (or none are left).
    """
    from mmcli.index import vectors

    excluded = {os.path.realpath(t.value) for t in request.terms if t.is_image}
    want = request.top_k + len(excluded)
    k = want if request.all_moments else want * 4
    while True:
        if request.within is not None:
            scores, ids = _brute_force(store, q, k, str(Path(request.within).resolve()))
        else:
            s, i = vectors.search(index, q[None], k, exact=request.exact)
            scores, ids = s[0], i[0]
        hits = _distinct(store, scores, ids, request, excluded)
        found = int((ids >= 0).sum())
        if len(hits) >= request.top_k or found < k or (request.threshold is not None and _below(scores, request)):
            break
        k *= 4
    return tuple(Hit(rank, path, t, score) for rank, (score, path, t) in enumerate(hits[: request.top_k], start=1))


def _below(scores: np.ndarray, request: SearchRequest) -> bool:
    """Have the scores fetched gone under the threshold (nothing further can qualify)?"""
    return len(scores) > 0 and float(scores[-1]) < float(request.threshold or 0.0)


def _distinct(
    store: Store, scores: np.ndarray, ids: np.ndarray, request: SearchRequest, excluded: set[str]
) -> list[tuple[float, str, float | None]]:
    cut = request.threshold
    keep = [(float(sc), int(i)) for sc, i in zip(scores, ids) if i >= 0 and (cut is None or sc >= cut)]
    where = store.locate(i for _, i in keep)
    hits, seen = [], set()
    for sc, i in keep:
        found = where.get(i)
        if found is None or found.path in excluded:
            continue
        if found.time is not None and not request.all_moments:
            if found.path in seen:
                continue
            seen.add(found.path)
        hits.append((sc, found.path, found.time))
    return hits


def _brute_force(store: Store, q: np.ndarray, k: int, under: str) -> tuple[np.ndarray, np.ndarray]:
    best_s, best_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for ids, vecs in store.vectors(under=under):
        s = vecs @ q
        best_s, best_i = np.concatenate([best_s, s]), np.concatenate([best_i, ids])
        if len(best_s) > k:
            top = np.argpartition(-best_s, k)[:k]
            best_s, best_i = best_s[top], best_i[top]
    order = np.argsort(-best_s, kind="stable")[:k]
    return best_s[order], best_i[order]
