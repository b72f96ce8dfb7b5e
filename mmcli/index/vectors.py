"""The FAISS side of an index: derived from SQLite, written atomically, rebuilt when in doubt.

Exact inner product (flat) below ``APPROX_MIN`` vectors; above it an IVF-Flat index with
~sqrt(n) lists (the choice autofaiss makes at this size for memory-bound flat vectors), searched
with enough probes for recall@10 >= 0.95 (a test checks it on 200k vectors). ``exact=True``
probes every list, which is brute force.

The file is named ``vectors.g<generation>.faiss`` after the SQLite generation it was built from,
so a file left behind by a crash or an older run is never mistaken for the current one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcli.atomic import atomic_write_bytes
from mmcli.faults import fault_point

if TYPE_CHECKING:
    from mmcli.index.store import Store

APPROX_MIN = 100_000


def _faiss() -> Any:
    import faiss

    return faiss


def nlist_for(n: int) -> int:
    return int(min(65536, max(64, round(math.sqrt(n)))))


def nprobe_for(nlist: int) -> int:
    return int(min(nlist, max(64, nlist // 10)))


def build(ids: np.ndarray, vectors: np.ndarray, dim: int, exact: bool = False, seed: int = 1234) -> Any:
    """A FAISS index over ``vectors`` (unit rows) with ``ids`` as labels."""
    faiss = _faiss()
    n = len(ids)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if exact or n < APPROX_MIN:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = nlist_for(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, nlist * 40), replace=False)]
        index.cp.seed = seed
        index.train(sample)
        index.nprobe = nprobe_for(nlist)
    if n:
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    return index


def is_approximate(index: Any) -> bool:
    return hasattr(index, "nprobe") and hasattr(index, "nlist")


def search(index: Any, queries: np.ndarray, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the top ``k`` per query; missing slots have id -1."""
    if index.ntotal == 0 or k <= 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    if is_approximate(index):
        index.nprobe = index.nlist if exact else max(index.nprobe, nprobe_for(index.nlist))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
    return scores, ids


def file_for(folder: Path, generation: int) -> Path:
    return folder / f"vectors.g{generation}.faiss"


def save(index: Any, folder: Path, generation: int) -> Path:
    faiss = _faiss()
    path = file_for(folder, generation)
    data = faiss.serialize_index(index).tobytes()
    atomic_write_bytes(path, data, before_replace=lambda: fault_point("index.faiss-write"))
    for old in folder.glob("vectors.g*.faiss"):
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass
    return path


def read(path: Path) -> Any:
    faiss = _faiss()
    data = np.fromfile(path, dtype=np.uint8)
    return faiss.deserialize_index(data)


def load_or_rebuild(store: Store, write: bool = True, must_write: bool = False) -> Any:
    """The current FAISS index: the saved file if it matches SQLite, else rebuilt from SQLite.

    A rebuilt index is saved when ``write``; a failed save is ignored (a read-only or full disk
    still answers searches) unless ``must_write`` (the indexer, which reports a full disk).
    """
    with store.snapshot():
        generation = store.generation()
        ok = store.vector_count()
        path = file_for(store.folder, generation)
        try:
            index = read(path)
            if index.ntotal == ok and index.d == int(store.meta().get("dim", index.d)) and agrees(index, store):
                return index
        except (OSError, RuntimeError, ValueError, MemoryError):
            pass  # missing, truncated, garbage: SQLite has everything needed to rebuild
        index = rebuild(store)
    if write:
        try:
            save(index, store.folder, generation)
        except OSError:
            if must_write:
                raise
    return index


def agrees(index: Any, store: Store, k: int = 16) -> bool:
    """Does the FAISS file hold SQLite's vectors under SQLite's ids? A sample of rows, each searched
    for: its own id must come back (or a row with the very same vector, an exact copy). A file of the
    right size with a shuffled id map or other vectors fails this."""
    ids, vecs = store.sample(k)
    if not len(ids):
        return index.ntotal == 0
    _, found = search(index, vecs, 1)
    others = {int(f) for f, i in zip(found[:, 0], ids) if int(f) != int(i)}
    stored = store.vectors_by_id(others) if others else {}
    for want, got, vec in zip(ids, found[:, 0], vecs):
        if int(got) != int(want) and stored.get(int(got)) != vec.tobytes():
            return False
    return True


def load_all(store: Store) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every image and video moment: int64 (N,), C-contiguous float32 (N, dim); N may be 0."""
    dim = int(store.meta().get("dim", "0"))
    chunks = list(store.vectors())
    if not chunks:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    ids = np.concatenate([c[0] for c in chunks])
    vecs = np.ascontiguousarray(np.concatenate([c[1] for c in chunks]), dtype=np.float32)
    return ids, vecs


def rebuild(store: Store) -> Any:
    ids, vecs = load_all(store)
    return build(ids, vecs, int(store.meta()["dim"]))
