"""`mmcli search`: text, image and combined queries against an index -> ranked hits.

A query is a weighted sum of unit vectors, renormalised (as rclip combines queries):
the main text query (weight 1), ``--image PATH`` (weight 1), ``--add TERM`` (+w) and ``--sub TERM``
(-w). A TERM is ``[WEIGHT:]TEXT-OR-IMAGE-PATH``: an existing file is an image, anything else text.
Query images are left out of the results. An indexed, unchanged query image reuses its stored
vector (no decoding).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.errors import UsageError
from mmcli.index.open import model_spec_for, open_index
from mmcli.index.store import Store
from mmcli.results import Hit

WEIGHT_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.+)$", re.DOTALL)


@dataclass(frozen=True)
class Term:
    weight: float
    value: str
    is_image: bool


def parse_term(raw: str, sign: float = 1.0) -> Term:
    """``2:sunset`` -> weight 2, text "sunset"; ``photo.jpg`` (an existing file) -> an image term."""
    weight, value = 1.0, raw
    m = WEIGHT_RE.match(raw)
    if m and not os.path.exists(raw):
        weight, value = float(m.group(1)), m.group(2)
    if not value.strip():
        raise UsageError(f"empty query term {raw!r}")
    return Term(sign * weight, value, os.path.isfile(value))


def build_terms(query: str | None, image: str | None, add: Sequence[str], sub: Sequence[str]) -> list[Term]:
    terms: list[Term] = []
    if query is not None:
        if not query.strip():
            raise UsageError("empty query")
        terms.append(Term(1.0, query, False))
    if image is not None:
        if not os.path.isfile(image):
            raise UsageError(f"--image: no such file: {image}")
        terms.append(Term(1.0, image, True))
    terms += [parse_term(t) for t in add] + [parse_term(t, -1.0) for t in sub]
    if not terms:
        raise UsageError("nothing to search for", hint='give a query ("a red car"), --image PATH or --add TERM')
    return terms


def _stored_vector(store: Store, path: str) -> np.ndarray | None:
    """The indexed vector of ``path`` if the file is unchanged since it was indexed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    raw = store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns)
    return np.frombuffer(raw, dtype=np.float32) if raw is not None else None


def query_vector(
    store: Store, terms: list[Term], get_encoder: Any, fingerprint: str, max_pixels: int, notes: list[str] | None = None
) -> np.ndarray:
    """The combined query vector. Cached texts and indexed images need no model."""
    from mmcli.images import load_pixels
    from mmcli.textcache import TextCache, encode_texts_cached

    total = None
    cache = TextCache()
    cached = cache.get(fingerprint, [t.value for t in terms if not t.is_image])
    for term in terms:
        if term.is_image:
            vec = _stored_vector(store, str(Path(term.value).resolve()))
        else:
            vec = cached.get(term.value)
        if vec is None:
            encoder = get_encoder()
            if term.is_image:
                from mmcli.errors import ImageLoadError

                try:
                    pixels = load_pixels(term.value, encoder.preprocess, max_pixels)
                except ImageLoadError as exc:
                    raise UsageError(f"query image {exc.path}: {exc.reason}") from None
                vec = encoder.encode_images(pixels[None])[0]
            else:
                if notes is not None and encoder.too_long(term.value):
                    notes.append(
                        f"query {term.value[:40]!r}... is longer than the model's text context "
                        f"({encoder.context_length} tokens) and was truncated"
                    )
                vec = encode_texts_cached(encoder, [term.value], cache)[0]
        total = term.weight * vec if total is None else total + term.weight * vec
    assert total is not None
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise UsageError("the query terms cancel out", hint="change the --add / --sub weights")
    return (total / norm).astype(np.float32)


def run_search(
    folder: Path,
    terms: list[Term],
    *,
    top_k: int = 10,
    threshold: float | None = None,
    within: str | None = None,
    exact: bool = False,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    notes: list[str] | None = None,
) -> list[Hit]:
    """Ranked hits for the combined query; warnings (truncated queries) are appended to ``notes``."""
    from mmcli.index import vectors

    store = open_index(folder)
    try:
        spec = model_spec_for(store.meta(), model, weights)
        loaded: list[Any] = []

        def get_encoder() -> Any:
            if not loaded:
                from mmcli.models import load_encoder

                loaded.append(load_encoder(spec, device=device, precision=precision))
            return loaded[0]

        from mmcli.models import model_fingerprint

        q = query_vector(store, terms, get_encoder, model_fingerprint(spec, (device, precision)), max_pixels, notes)
        index = None if within is not None else vectors.load_or_rebuild(store, write=True)
        return top_hits(store, index, q, terms, top_k, threshold, within, exact)
    finally:
        store.close()


def top_hits(
    store: Store,
    index: Any,
    q: np.ndarray,
    terms: list[Term],
    top_k: int,
    threshold: float | None,
    within: str | None,
    exact: bool,
) -> list[Hit]:
    """The ranked hits of query vector ``q``: FAISS over everything, or brute force under ``within``."""
    from mmcli.index import vectors

    excluded = {str(Path(t.value).resolve()) for t in terms if t.is_image}
    want = top_k + len(excluded)
    if within is not None:
        scores, ids = _brute_force(store, q, want, str(Path(within).expanduser().resolve()))
    else:
        s, i = vectors.search(index, q[None], want, exact=exact)
        scores, ids = s[0], i[0]
    keep = [(float(sc), int(i)) for sc, i in zip(scores, ids) if i >= 0 and (threshold is None or sc >= threshold)]
    paths = store.paths_for(i for _, i in keep)
    hits = [(sc, paths[i]) for sc, i in keep if i in paths and paths[i] not in excluded][:top_k]
    return [Hit(rank, path, score) for rank, (score, path) in enumerate(hits, start=1)]


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
