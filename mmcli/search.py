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
    """The ranked hits of query vector ``q``: FAISS ``index`` over everything, or brute force under ``within``."""
    from mmcli.index import vectors

    excluded = {os.path.realpath(t.value) for t in request.terms if t.is_image}
    want = request.top_k + len(excluded)
    if request.within is not None:
        scores, ids = _brute_force(store, q, want, str(Path(request.within).resolve()))
    else:
        s, i = vectors.search(index, q[None], want, exact=request.exact)
        scores, ids = s[0], i[0]
    cut = request.threshold
    keep = [(float(sc), int(i)) for sc, i in zip(scores, ids) if i >= 0 and (cut is None or sc >= cut)]
    paths = store.paths_for(i for _, i in keep)
    hits = [(sc, paths[i]) for sc, i in keep if i in paths and paths[i] not in excluded][: request.top_k]
    return tuple(Hit(rank, path, score) for rank, (score, path) in enumerate(hits, start=1))


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
