"""Search an open index: terms -> one query vector -> ranked hits (``mmcli.queries`` parses terms).

The query vector is ``normalise(sum of weight x unit vector)``. Cached texts and indexed, unchanged
query images need no model. Query images are left out of the results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmcli.errors import ImageLoadError, UsageError
from mmcli.index.store import Store
from mmcli.queries import SearchRequest, Term
from mmcli.results import Hit

if TYPE_CHECKING:
    from mmcli.models import Encoder
    from mmcli.models.onnx_towers import OnnxImageEncoder
    from mmcli.models.spec import TextEncoder


class Encoders(Protocol):
    """What a search needs of an engine: the fingerprint its cached texts are filed under, and encoders
    loaded on first need (``mmcli.engine.local.LocalEngine`` is one)."""

    @property
    def text_fingerprint(self) -> str: ...

    def text_encoder(self) -> TextEncoder: ...

    def image_encoder(self, images: int) -> Encoder | OnnxImageEncoder: ...


def _stored_vector(store: Store, path: str) -> np.ndarray | None:
    """The indexed vector of ``path`` if the file is unchanged since it was indexed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    raw = store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns)
    return np.frombuffer(raw, dtype=np.float32) if raw is not None else None


def query_vector(
    store: Store, terms: Sequence[Term], engine: Encoders, max_pixels: int, notes: list[str] | None = None
) -> np.ndarray:
    """The combined query vector. Cached texts and indexed images need no model; other texts need
    only the engine's text encoder (no torch where the model has an ONNX text tower)."""
    from mmcli.embedding.textcache import TextCache, encode_texts_cached

    total = None
    cache = TextCache()
    cached = cache.get(engine.text_fingerprint, [t.value for t in terms if not t.is_image])
    for term in terms:
        if term.is_image:
            vec = _stored_vector(store, os.path.realpath(term.value))
        else:
            vec = cached.get(term.value)
        if vec is None and term.is_image:
            from mmcli.media.images import load_pixels

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
    """The ranked hits of query vector ``q``: FAISS ``index`` over everything, or brute force under
    ``within`` and over dates narrower than ``BRUTE_MAX`` vectors (exact either way); a wider date
    filter asks FAISS for more and more until ``top_k`` of its hits pass it.

    A video's moments are vectors of their own; unless ``all_moments``, a video gives one hit, its best
    moment, so more neighbours are fetched until ``top_k`` distinct files are found (or none are left).
    """
    from mmcli.index import vectors

    excluded = {os.path.realpath(t.value) for t in request.terms if t.is_image}
    want = request.top_k + len(excluded)
    under = str(Path(request.within).resolve()) if request.within is not None else None
    after, before = request.after, request.before
    dated = after is not None or before is not None
    brute = under is not None or index is None or (dated and store.count_where(None, after, before) <= BRUTE_MAX)
    allowed = store.ids_where(None, after, before) if dated and not brute else None
    k = want if request.all_moments else want * 4
    while True:
        if brute:
            scores, ids = _brute_force(store, q, k, under, after, before)
        elif allowed is not None:
            scores, ids = _filtered(index, q, k, allowed, request)
        else:
            s, i = vectors.search(index, q[None], k, exact=request.exact)
            scores, ids = s[0], i[0]
        hits = _distinct(store, scores, ids, request, excluded)
        found = int((ids >= 0).sum())
        if len(hits) >= request.top_k or found < k or (request.threshold is not None and _below(scores, request)):
            break
        k *= 4
    best = hits[: request.top_k]
    dates = store.taken_for(i for _, i, _, _ in best)
    if request.sort != "score":
        sign = 1 if request.sort == "date" else -1  # undated ones last either way
        best.sort(key=lambda hit: (hit[1] not in dates, sign * dates[hit[1]].when if hit[1] in dates else 0.0))
    return tuple(
        Hit(rank, path, t, sc, dates[i].iso() if i in dates else None, dates[i].source if i in dates else None)
        for rank, (sc, i, path, t) in enumerate(best, start=1)
    )


def _below(scores: np.ndarray, request: SearchRequest) -> bool:
    """Have the scores fetched gone under the threshold (nothing further can qualify)?"""
    return len(scores) > 0 and float(scores[-1]) < float(request.threshold or 0.0)


def _distinct(
    store: Store, scores: np.ndarray, ids: np.ndarray, request: SearchRequest, excluded: set[str]
) -> list[tuple[float, int, str, float | None]]:
    """(score, vector id, path, moment) of the hits that pass the threshold, a video once unless
    ``all_moments``, the query's own images left out."""
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
        hits.append((sc, i, found.path, found.time))
    return hits


def undated_notes(store: Store, request: SearchRequest) -> list[str]:
    """A note when dates matter to this search and some images have none yet (an older index)."""
    if request.after is None and request.before is None and request.sort == "score":
        return []
    n = store.undated_count()
    if not n:
        return []
    return [
        f"{n} indexed image{'s have' if n != 1 else ' has'} no date yet (indexed before mmcli read dates): "
        "left out of --after/--before, last in --sort date; `mmcli index` reads them"
    ]


BRUTE_MAX = 20_000  # a date filter keeping at most this many images is searched exactly, over just those
COLD_BRUTE_MAX = 100_000  # a search in a process of its own: numpy over SQLite's vectors up to this many


def _brute_force(
    store: Store, q: np.ndarray, k: int, under: str | None, after: float | None = None, before: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    best_s, best_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for ids, vecs in store.vectors(under=under, batch=16384, after=after, before=before):  # (32 MB at a time)
        s = vecs @ q
        best_s, best_i = np.concatenate([best_s, s]), np.concatenate([best_i, ids])
        if len(best_s) > k:
            top = np.argpartition(-best_s, k)[:k]
            best_s, best_i = best_s[top], best_i[top]
    order = np.argsort(-best_s, kind="stable")[:k]
    return best_s[order], best_i[order]


def _filtered(
    index: Any, q: np.ndarray, k: int, allowed: set[int], request: SearchRequest
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of FAISS's hits whose ids are ``allowed``: ask for 4x more each time until ``k``
    pass, every vector was seen, or the scores fell below the threshold."""
    from mmcli.index import vectors

    n = max(4 * k, 256)
    while True:
        s, i = vectors.search(index, q[None], n, exact=request.exact)
        s, i = s[0], i[0]
        mask = np.fromiter((int(x) in allowed for x in i), dtype=bool, count=len(i))
        below = request.threshold is not None and len(s) > 0 and s[-1] < request.threshold
        if int(mask.sum()) >= k or n >= index.ntotal or below:
            return s[mask][:k], i[mask][:k]
        n *= 4
