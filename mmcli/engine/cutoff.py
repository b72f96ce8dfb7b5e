"""``--threshold auto``: a cut-off chosen per query from its scores against the index's background.

The rule (README, "Better answers"; measured by ``scripts/eval_threshold.py``):

0. The head: the query's best scores over the whole index (all of it, up to ``CANDIDATES``), sorted.
   Scores closer than ``TIE`` (float32 rounding) count as one: equal scores are kept or dropped
   together. Scores of ``1 - SELF`` and more (the query's own vector, exact copies of it) are kept.
1. A break: the first gap from the top, after the i-th best, that is at once
   - ``TIGHT`` times wider than the spread of the scores above it (what is kept lies close together:
     a lone best score, or a cluster),
   - ``SPACINGS`` times wider than the median gap between the next ``LOCAL`` scores below it,
   - and ``SPREADS`` times the background's spread (the query's scores over a fixed sample of the
     index, ``BACKGROUND`` vectors spread over it or all of a smaller one; its spread: the shortest
     interval holding half of them, / 1.349, which a large cluster of similar scores does not inflate).
   The cut is the middle of that gap: what lies above it stands apart from the rest of the index.
2. The floor: where the background's upper tail (its top ``EXCEED``, fitted as an exponential tail)
   reaches once in the whole index. With no break, the cut is the floor: a query that matches nothing
   keeps about one vector whatever the index's size (more where scores have a heavier tail than an
   exponential one), one whose matches fall off smoothly keeps those above that level. Where the floor
   lies below a break and keeps ``EXTRA`` or more besides what the break keeps (more than the one
   vector of noise it lets through), the floor is the cut: the best of several matches that stands
   apart from the others does not hide them.

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
CANDIDATES = 1000  # the best scores searched for a break (all of a smaller index)
TIE = 1e-5  # scores closer than this are equal (float32 rounding of cosines, one computation or another)
SELF = 1e-4  # scores of 1 - SELF and more: the query's own vector (or a copy of it), always kept
TIGHT = 4.0  # a break: this many times wider than the spread of the scores above it,
SPACINGS = 6.0  # this many times the median gap between the next LOCAL scores below it,
LOCAL = 8
SPREADS = 0.5  # and this many times the background's spread
EXCEED = 0.1  # the floor: the background's top tenth (at least MIN_EXCEED scores) as an exponential tail
MIN_EXCEED = 8
EXTRA = 3  # a floor below a break is the cut where it keeps this many more


@dataclass(frozen=True)
class Cutoff:
    """The score a query's hits must reach, and why: ``rule`` "break" (a gap in the scores), "floor"
    (the background's tail) or "few" (too few scores to judge: all kept); ``why`` says it in words."""

    threshold: float
    rule: str
    above: int  # of the candidates, how many reach it
    why: str = ""


def choose_cutoff(head: np.ndarray, background: np.ndarray, vectors: int | None = None) -> Cutoff:
    """The cut-off for one query: ``head`` its best scores over the whole index (any order; see
    ``head_size``), ``background`` its scores over a sample of the index, ``vectors`` how many the index
    holds (None: the head's length where it is shorter than ``CANDIDATES``, else estimated from it)."""
    top = _descending(head)
    back = _descending(background)
    hi, lo, counts = _levels(top)
    if not len(hi):
        return Cutoff(math.inf, "few", 0, "an empty index")
    own = int(np.sum(lo >= 1.0 - SELF))  # the query's own vector's level: kept, never a break
    found = _first_break(hi, lo, own, _spread(back))
    floor = _floor(top, back, vectors)
    if floor is None and found is None:
        return Cutoff(float(lo[-1]) - TIE / 2, "few", len(top), "too few scores to judge: all kept")
    if found is not None:
        kept = int(counts[: found + 1].sum())
        gap = f"a gap after the {_nth(kept)} best"
        if floor is None or floor[0] >= lo[found] or int(np.sum(top >= floor[0])) - kept < EXTRA:
            return Cutoff(float(lo[found] + hi[found + 1]) / 2, "break", kept, gap)
    level, size = floor
    cut = _between(hi, lo, max(own, int(np.sum(hi >= level))), level)
    tail = f"the background's tail would reach it about once in {size:,}"
    why = f"{tail}; below {gap}" if found is not None else f"no gap: {tail}"
    return Cutoff(cut, "floor", int(np.sum(top >= cut)), why)


def head_size(vectors: int) -> int:
    """How many of the best scores ``choose_cutoff`` looks at in an index of ``vectors`` vectors."""
    return min(CANDIDATES, vectors)


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


def _levels(top: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct scores of ``top`` (best first): each level's highest and lowest score and how many
    it holds; scores within ``TIE`` of the next one belong to its level."""
    if not len(top):
        return top, top, np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.nonzero(top[:-1] - top[1:] > TIE)[0] + 1]
    ends = np.r_[starts[1:], len(top)]
    return top[starts], top[ends - 1], ends - starts


def _first_break(hi: np.ndarray, lo: np.ndarray, own: int, spread: float) -> int | None:
    """The level after which the first break from the top lies (see the module's docstring), or None."""
    n = len(hi)
    if n - own < 3:
        return None
    j = np.arange(own, n - 2)  # a gap after level j, with at least two levels below it
    gaps = lo[j] - hi[j + 1]
    width = hi[own] - lo[j]  # the spread of what a cut there keeps
    steps = np.r_[lo[:-1] - hi[1:], np.full(LOCAL, np.nan)]  # the gap after each level
    below = np.lib.stride_tricks.sliding_window_view(steps, LOCAL - 1)[j + 1]
    typical = np.nanmedian(below, axis=1)
    ok = (gaps >= TIGHT * width) & (gaps >= SPACINGS * typical) & (gaps >= SPREADS * spread)
    hits = np.nonzero(ok)[0]
    return int(j[hits[0]]) if len(hits) else None


def _spread(back: np.ndarray) -> float:
    """The background's spread: the shortest interval that holds half of its scores, / 1.349 (the
    standard deviation for normal scores; a large cluster of similar scores does not inflate it)."""
    half = len(back) // 2
    if half < 1:
        return 0.0
    ascending = back[::-1]
    return float(np.min(ascending[half:] - ascending[: len(ascending) - half])) / 1.349


def _floor(top: np.ndarray, back: np.ndarray, vectors: int | None) -> tuple[float, int] | None:
    """Where the background's tail, fitted as exponential over its top ``EXCEED``, reaches once in the
    index, and the index's size used (None where the background is too small to fit a tail)."""
    n = len(back)
    k = min(max(MIN_EXCEED, round(EXCEED * n)), n - 1)
    if k < 2:
        return None
    base = float(back[k])
    scale = float(np.median(back[:k] - base)) / math.log(2)
    size = float(vectors) if vectors else float(len(top))
    if not vectors and len(top) >= CANDIDATES and scale > 0:
        # the head is the index's best len(top): the fitted tail reaches its last score that many times
        size = len(top) * n / k * math.exp(min((float(top[-1]) - base) / scale, 700.0))
    size = max(size, len(top), n)
    if scale <= 0:
        return base, round(size)  # the background's top is one score: nothing stands out of it
    return base + scale * math.log(max(size * k / n, 1.0)), round(size)


def _between(hi: np.ndarray, lo: np.ndarray, keep: int, cut: float) -> float:
    """``cut`` moved, if need be, so that exactly the first ``keep`` levels reach it, none by less than TIE/2."""
    upper = float(lo[keep - 1]) - TIE / 2 if keep > 0 else math.inf
    lower = float(hi[keep]) + TIE / 2 if keep < len(hi) else -math.inf
    return min(max(cut, lower), upper)


def _nth(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _descending(scores: np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    return np.sort(values[np.isfinite(values)])[::-1]
