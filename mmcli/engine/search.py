"""Search an open index: terms -> one query vector -> ranked hits (``mmcli.queries`` parses terms).

The query vector is ``normalise(sum of weight x unit vector)``. Cached texts and indexed, unchanged
query images need no model. Query images are left out of the results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmcli.engine.encoders import Encoders
from mmcli.errors import ImageLoadError, UsageError
from mmcli.index.store import Store
from mmcli.queries import SearchRequest, Term, split_moment
from mmcli.results import Hit, TermScore

__all__ = ["Encoders", "Found", "as_hits", "combine", "explain", "ranked", "term_vectors", "top_hits"]

Found = tuple[float, int, str, float | None]  # (score, vector id, path, moment of a video)


def _stored_vector(store: Store, path: str) -> np.ndarray | None:
    """The indexed vector of ``path`` if the file is unchanged since it was indexed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    raw = store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns)
    return np.frombuffer(raw, dtype=np.float32) if raw is not None else None


def term_vectors(
    store: Store,
    terms: Sequence[Term],
    engine: Encoders,
    max_pixels: int,
    notes: list[str] | None = None,
    stored: Callable[[str], np.ndarray | None] | None = None,
) -> np.ndarray:
    """Each term's unit vector, (len(terms), D). Cached texts and images ``stored`` has (by default the
    index's own vectors of unchanged files) need no model; other texts need only the engine's text
    encoder (no torch where the model has an ONNX text tower)."""
    from mmcli.embedding.textcache import TextCache, encode_texts_cached

    cache = TextCache()
    cached = cache.get(engine.text_fingerprint, [t.value for t in terms if not t.is_image])
    found = []
    for term in terms:
        if term.is_image:
            from mmcli.engine.video_query import video_query_vector  # (no image or video module for texts)
            from mmcli.media.video import is_video
        path, moment = split_moment(term.value) if term.is_image else (term.value, None)
        moment = term.time if term.is_image and term.time is not None else moment  # (the server's moments)
        if term.is_image and (moment is not None or is_video(path)):
            # the index's moments, unless re-ranking (``stored``: another model's vectors)
            vec = video_query_vector(store if stored is None else None, path, moment, engine, max_pixels)
        elif term.is_image:
            vec = (stored or (lambda p: _stored_vector(store, p)))(os.path.realpath(path))
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
        found.append(np.asarray(vec, dtype=np.float32))
    vecs = np.stack(found)
    return (vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def combine(terms: Sequence[Term], vecs: np.ndarray) -> np.ndarray:
    """The query vector: ``normalise(sum of weight x unit vector)``."""
    total = np.asarray([t.weight for t in terms], dtype=np.float64) @ vecs.astype(np.float64)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query terms cancel out", hint="change the --add / --sub weights")
    return (total / norm).astype(np.float32)


def query_vector(
    store: Store, terms: Sequence[Term], engine: Encoders, max_pixels: int, notes: list[str] | None = None
) -> np.ndarray:
    """The combined query vector (see ``term_vectors``)."""
    return combine(terms, term_vectors(store, terms, engine, max_pixels, notes))


def explain(terms: Sequence[Term], vecs: np.ndarray, hit: np.ndarray) -> tuple[TermScore, ...]:
    """Each term's part in the score of a hit with vector ``hit`` (``vecs``: the terms' unit vectors)."""
    cosines = vecs @ np.asarray(hit, dtype=np.float32)
    return tuple(TermScore(t.value, t.weight, float(c)) for t, c in zip(terms, cosines))


def top_hits(store: Store, index: Any, q: np.ndarray, request: SearchRequest) -> tuple[Hit, ...]:
    """The ranked hits of query vector ``q`` (see ``ranked``) under the request's fixed threshold, if any."""
    return as_hits(store, ranked(store, index, q, request, request.top_k, request.min_score), request)


def ranked(
    store: Store, index: Any, q: np.ndarray, request: SearchRequest, count: int, cut: float | None
) -> list[Found]:
    """The best ``count`` hits of query vector ``q`` scoring at least ``cut``: FAISS ``index`` over
    everything, or brute force under ``within`` and over dates narrower than ``BRUTE_MAX`` vectors (exact
    either way); a wider date filter asks FAISS for more and more until ``count`` of its hits pass it.

    A video's moments are vectors of their own; unless ``all_moments``, a video gives one hit, its best
    moment, so more neighbours are fetched until ``count`` distinct files are found (or none are left).
    """
    from mmcli.engine.video_query import query_files
    from mmcli.index import vectors

    excluded = query_files(store, request.terms, request.all_moments)
    want = count + len(excluded)
    under = os.path.realpath(request.within) if request.within is not None else None  # (a loop: as it is)
    after, before = request.after, request.before
    dated = after is not None or before is not None
    brute = under is not None or index is None or (dated and store.count_where(None, after, before) <= BRUTE_MAX)
    allowed = store.ids_where(None, after, before) if dated and not brute else None
    k = want if request.all_moments else want * 4
    while True:
        if brute:
            scores, ids = _brute_force(store, q, k, under, after, before)
        elif allowed is not None:
            scores, ids = _filtered(index, q, k, allowed, request, cut)
        else:
            s, i = vectors.search(index, q[None], k, exact=request.exact)
            scores, ids = s[0], i[0]
        hits = _distinct(store, scores, ids, request, excluded, cut)
        found = int((ids >= 0).sum())
        if len(hits) >= count or found < k or (cut is not None and _below(scores, cut)):
            break
        k *= 4
    return hits[:count]


def as_hits(
    store: Store,
    best: Sequence[Found],
    request: SearchRequest,
    explained: dict[int, tuple[TermScore, ...]] | None = None,
) -> tuple[Hit, ...]:
    """``best`` (in score order) as numbered hits, with their dates, in the request's order."""
    best = list(best)
    dates = store.taken_for(i for _, i, _, _ in best)
    if request.sort != "score":
        sign = 1 if request.sort == "date" else -1  # undated ones last either way
        best.sort(key=lambda hit: (hit[1] not in dates, sign * dates[hit[1]].when if hit[1] in dates else 0.0))
    return tuple(
        Hit(
            rank,
            path,
            t,
            sc,
            dates[i].iso() if i in dates else None,
            dates[i].source if i in dates else None,
            None if explained is None else explained.get(i, ()),
        )
        for rank, (sc, i, path, t) in enumerate(best, start=1)
    )


def _below(scores: np.ndarray, cut: float) -> bool:
    """Have the scores fetched gone under the threshold (nothing further can qualify)?"""
    return len(scores) > 0 and float(scores[-1]) < cut


def _distinct(
    store: Store,
    scores: np.ndarray,
    ids: np.ndarray,
    request: SearchRequest,
    excluded: set[tuple[str, float | None]],
    cut: float | None,
) -> list[Found]:
    """(score, vector id, path, moment) of the hits that score at least ``cut``, a video once unless
    ``all_moments``, the query's own images, videos and moments left out (``excluded``: (path, None) for a
    whole file, (path, time) for a moment)."""
    keep = [(float(sc), int(i)) for sc, i in zip(scores, ids) if i >= 0 and (cut is None or sc >= cut)]
    where = store.locate(i for _, i in keep)
    hits, seen = [], set()
    for sc, i in keep:
        found = where.get(i)
        if found is None or (found.path, None) in excluded or (found.path, found.time) in excluded:
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
    index: Any, q: np.ndarray, k: int, allowed: set[int], request: SearchRequest, cut: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of FAISS's hits whose ids are ``allowed``: ask for 4x more each time until ``k``
    pass, every vector was seen, or the scores fell below the threshold."""
    from mmcli.index import vectors

    n = max(4 * k, 256)
    while True:
        s, i = vectors.search(index, q[None], n, exact=request.exact)
        s, i = s[0], i[0]
        mask = np.fromiter((int(x) in allowed for x in i), dtype=bool, count=len(i))
        below = cut is not None and len(s) > 0 and s[-1] < cut
        if int(mask.sum()) >= k or n >= index.ntotal or below:
            return s[mask][:k], i[mask][:k]
        n *= 4
