"""One search over an open index, from request to hits: the query vector, the cut-off (a number, or
chosen per query: ``mmcli.engine.cutoff``), the second model's order (``mmcli.engine.rerank``) and
each term's part in each hit's score (``--explain``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.engine.search import Encoders, Found, as_hits, combine, explain, ranked, term_vectors
from mmcli.queries import SearchRequest
from mmcli.results import Hit, TermScore

if TYPE_CHECKING:
    from mmcli.engine.rerank import SecondModel
    from mmcli.index.store import Store


@dataclass(frozen=True)
class Answer:
    hits: tuple[Hit, ...]
    threshold: float | None  # the cut-off "auto" chose
    cutoff: str | None = None  # why, in words


def answer(
    store: Store,
    index: Any,
    request: SearchRequest,
    engine: Encoders,
    folder: Path,
    second: Callable[[], SecondModel],
    notes: list[str],
) -> Answer:
    """The hits of ``request`` in the index at ``folder`` (``index``: its FAISS index, or None for brute
    force). ``second``: the re-ranking model of ``request.rerank``, loaded on first need."""
    terms = term_vectors(store, request.terms, engine, request.max_pixels, notes)
    q = combine(request.terms, terms)
    auto, why = None, None
    if request.auto_threshold:
        from mmcli.engine.cutoff import auto_cutoff

        chosen = auto_cutoff(store, index, q)
        auto, why = chosen.threshold, chosen.why
    by_id: dict[int, np.ndarray] | None = None  # the hits' vectors, where re-ranking has them
    if request.rerank is None:
        best = ranked(store, index, q, request, request.top_k, request.min_score if auto is None else auto)
    else:
        from mmcli.engine.rerank import rerank

        first = ranked(store, index, q, request, max(request.rerank_k, request.top_k), auto)
        again = rerank(store, first, request, second(), folder, notes)
        cut = request.min_score
        best = [hit for hit in again.found if cut is None or hit[0] >= cut][: request.top_k]
        terms, by_id = again.terms, again.vectors
    explained: dict[int, tuple[TermScore, ...]] | None = None
    if request.explain:
        by_id = by_id if by_id is not None else _index_vectors(store, best)
        explained = {i: explain(request.terms, terms, by_id[i]) for _, i, _, _ in best if i in by_id}
    return Answer(as_hits(store, best, request, explained), auto, why)


def _index_vectors(store: Store, best: list[Found]) -> dict[int, np.ndarray]:
    raw = store.vectors_by_id(i for _, i, _, _ in best)
    return {i: np.frombuffer(v, dtype=np.float32) for i, v in raw.items()}
