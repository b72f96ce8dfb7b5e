"""``--threshold auto``: a cut-off chosen per query from its scores against the index's background.

The rule (README, "Automatic threshold"; measured by ``scripts/eval_threshold.py``):

1. The head: the query's best scores over the whole index, the top tenth of it (at least
   ``MIN_CANDIDATES``, at most ``CANDIDATES``), sorted: s_1 >= s_2 >= ...
2. A break: the gap after the i-th best weighted by its rank, ``w_i = i x (s_i - s_i+1)``. In a tail
   that falls off smoothly these are about independent and exponentially distributed (Renyi's
   representation of order statistics), so a ``w_i`` over ``ln(n) + BREAK_MARGIN`` times their typical
   size (median / ln 2) is a break in the scores, not noise. The cut is the middle of the first break
   from the top: what lies above it stands apart from the rest of the index.
3. No break: the floor, ``m + FLOOR_Z x s`` of the background, the query's scores over a fixed sample
   of the index (about ``BACKGROUND`` vectors spread over it, or all of a smaller one): ``m`` their median,
   ``s`` 1.4826 x their median absolute deviation (robust: the few matches among them hardly move it).
   On scores that fall off smoothly it keeps what stands out of the background, or nothing.

The cut is a property of the query and the whole index; ``--in`` and date filters apply after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmcli.index.store import Store

BACKGROUND = 2048  # vectors sampled for the background
CANDIDATES = 1000  # the best scores searched for a break: at most this many,
MIN_CANDIDATES = 16  # at least this many, else a tenth of the index
FLOOR_Z = 3.0  # robust spreads above the background's median
BREAK_MARGIN = 3.0  # a break's weighted gap: over ln(n) + this, in units of the typical one


@dataclass(frozen=True)
class Cutoff:
    """The score a query's hits must reach, and why: "break" (a gap in the scores) or "floor"."""

    threshold: float
    rule: str
    above: int  # of the candidates, how many reach it


def choose_cutoff(head: np.ndarray, background: np.ndarray) -> Cutoff:
    """The cut-off for one query: ``head`` its best scores over the whole index (any order; see
    ``head_size``), ``background`` its scores over a sample of the index."""
    top = np.sort(np.asarray(head, dtype=np.float64))[::-1]
    weighted = np.arange(1, len(top)) * (top[:-1] - top[1:])  # i x the gap after the i-th best
    typical = float(np.median(weighted)) / math.log(2) if len(weighted) else 0.0
    if typical > 0:
        breaks = np.nonzero(weighted > (math.log(len(weighted)) + BREAK_MARGIN) * typical)[0]
        if len(breaks):
            i = int(breaks[0])
            return Cutoff(float((top[i] + top[i + 1]) / 2), "break", i + 1)
    background = np.asarray(background, dtype=np.float64)
    if not len(background):
        background = top
    if not len(background):
        return Cutoff(math.inf, "floor", 0)
    median = float(np.median(background))
    spread = 1.4826 * float(np.median(np.abs(background - median)))
    floor = median + FLOOR_Z * (spread if spread > 0 else float(background.std()))
    return Cutoff(floor, "floor", int((top >= floor).sum()))


def head_size(vectors: int) -> int:
    """How many of the best scores ``choose_cutoff`` looks at in an index of ``vectors`` vectors."""
    return min(CANDIDATES, max(MIN_CANDIDATES, vectors // 10))


def auto_cutoff(store: Store, index: Any, q: np.ndarray) -> Cutoff:
    """The cut-off of query vector ``q`` in this index: its best scores from ``index`` (FAISS), or by brute
    force over the index when that is None, against the index's fixed sample."""
    from mmcli.index import vectors

    k = head_size(index.ntotal if index is not None else store.vector_count())
    if index is not None:
        scores, ids = vectors.search(index, q[None], k)
        head = scores[0][ids[0] >= 0]
    else:
        head = np.concatenate([np.zeros(0, np.float32), *(vecs @ q for _, vecs in store.vectors())])
        if len(head) > k:
            head = head[np.argpartition(-head, k)[:k]]
    return choose_cutoff(head, store.spread(BACKGROUND) @ q)
