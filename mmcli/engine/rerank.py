"""``--rerank MODEL``: the index's best hits re-scored by a second model, embedded on the fly.

Each hit's file is embedded by the second model (a video at its moment: the frame sampling found
there), and kept in a cache beside the index, one file per model: ``<index>/rerank/<key>.sqlite``,
rows keyed by path and moment and valid while the file's size and mtime are unchanged, so a repeated
or overlapping search embeds nothing again. The query's terms are embedded by the second model too
(texts through its text cache; image terms from this cache when they were hits before, else embedded).
The final order is the second model's scores over those hits, best first.

The cache is disposable and read as input: a broken, unwritable or newer-format file is ignored (the
vectors are then embedded each time), a row that is not a whole, finite unit vector of the cache's
length is embedded again and replaced, nothing is written for a model that did not load, and deleting
the folder is safe.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mmcli.engine.search import Encoders, Found, combine, term_vectors
from mmcli.errors import ImageLoadError
from mmcli.queries import SearchRequest
from mmcli.results import NOT_A_NUMBER

if TYPE_CHECKING:
    from mmcli.index.store import Store
    from mmcli.media.preprocess import Preprocess

FORMAT_VERSION = 1
STILL = -1.0  # the moment column of a still image


class SecondModel(Encoders, Protocol):
    """What re-ranking needs of an engine: its encoders, the fingerprint of its vectors, how to decode."""

    @property
    def fingerprint(self) -> str: ...

    workers: int | None
    batch_size: int | None


@dataclass(frozen=True, eq=False)
class Reranked:
    """The hits in the second model's order (its scores), their vectors and the terms' vectors under it."""

    found: list[Found]
    vectors: dict[int, np.ndarray]  # vector id -> the hit's unit vector
    terms: np.ndarray  # (terms, D)
    embedded: int  # hits that were not in the cache
    failed: tuple[str, ...]  # why hits were left out (a file gone or unreadable)


class RerankCache:
    """Unit vectors of one model by (path, moment), with the size and mtime of the file they came from.

    The file is input like any other: a row is used only when its vector is whole (the cache's length),
    finite and of unit length, else it is embedded again and replaced. Nothing is created until there
    is a vector to keep (a model that did not load leaves nothing behind)."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        key = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        self.path = folder / f"{key}.sqlite"
        self.fingerprint = fingerprint
        self.dim = 0  # the length of its vectors (0: none kept yet)
        self._db: sqlite3.Connection | None = None
        self._tried = False

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None and (create or not self._tried):
            self._tried = True
            try:
                self._db = self._open(create)
            except (sqlite3.Error, OSError, ValueError):
                self._db = None
        return self._db

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.is_file():
            return None
        self.path.parent.mkdir(exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        version = int(meta.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION or meta.get("model", self.fingerprint) != self.fingerprint:
            db.close()  # a newer mmcli's cache, or another model's under the same name: leave it alone
            return None
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (path BLOB NOT NULL, time REAL NOT NULL, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (path, time))"
            )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (self.fingerprint,))
        self.dim = int(meta.get("dim", "0") or 0)
        return db

    def get(self, path: str, time: float | None, st: os.stat_result) -> np.ndarray | None:
        """The kept vector of ``path`` at ``time`` if the file is unchanged and the row is sound."""
        db = self._connect(create=False)
        if db is None or self.dim <= 0:
            return None
        try:
            row = db.execute(
                "SELECT size, mtime_ns, vector FROM vectors WHERE path = ? AND time = ?",
                (os.fsencode(path), STILL if time is None else time),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or (row[0], row[1]) != (st.st_size, st.st_mtime_ns):
            return None
        return _sound(row[2], self.dim)

    def put(self, rows: Sequence[tuple[str, float | None, os.stat_result, np.ndarray]]) -> None:
        """Keep these vectors (all of one model: one length), replacing what was kept for them."""
        vectors = [np.asarray(v, np.float32) for _, _, _, v in rows]
        if not rows or len({v.shape for v in vectors}) != 1 or not all(np.isfinite(v).all() for v in vectors):
            return
        db = self._connect(create=True)
        if db is None:
            return
        dim = int(vectors[0].shape[0])
        values = [
            (os.fsencode(p), STILL if t is None else t, st.st_size, st.st_mtime_ns, v.tobytes())
            for (p, t, st, _), v in zip(rows, vectors)
        ]
        try:
            with db:
                if dim != self.dim:  # a first vector, or a cache that said otherwise: the model is right
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(dim),))
                    db.execute("DELETE FROM vectors WHERE length(vector) != ?", (4 * dim,))
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)", values)
            self.dim = dim
        except sqlite3.Error:
            pass  # a read-only or full disk: the vectors are simply not kept

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _sound(data: object, dim: int) -> np.ndarray | None:
    """A cached vector if it is whole, finite and of unit length; else None (it is embedded again)."""
    if not isinstance(data, bytes) or len(data) != 4 * dim:
        return None
    vector = np.frombuffer(data, dtype=np.float32)
    if not np.isfinite(vector).all() or abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        return None
    return vector


def rerank(
    store: Store, found: Sequence[Found], request: SearchRequest, model: SecondModel, folder: Path, notes: list[str]
) -> Reranked:
    """``found`` re-scored and ordered by ``model`` (ties keep their first order); hits whose file cannot
    be read any more are left out, with a note."""
    cache = RerankCache(folder / "rerank", model.fingerprint)
    try:
        vectors: dict[int, np.ndarray] = {}
        todo: list[tuple[Found, os.stat_result]] = []
        stats: dict[int, os.stat_result] = {}
        failed: list[str] = []
        for hit in found:
            _, i, path, t = hit
            try:
                st = stats[i] = os.stat(path)
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or 'cannot be read'}")
                continue
            vec = cache.get(path, t, st)
            if vec is not None:
                vectors[i] = vec
            else:
                todo.append((hit, st))
        failed += _embed_into(cache, model, todo, vectors, request.max_pixels)

        def stored(path: str) -> np.ndarray | None:
            try:
                return cache.get(path, None, os.stat(path))
            except OSError:
                return None

        try:
            terms = term_vectors(store, request.terms, model, request.max_pixels, notes, stored=stored)
        except ValueError:  # a kept image term of another length than the model's texts: embed it again
            terms = term_vectors(store, request.terms, model, request.max_pixels, notes, stored=lambda _: None)
        odd = [(hit, stats[hit[1]]) for hit in found if hit[1] in vectors and vectors[hit[1]].shape != terms[0].shape]
        for hit, _ in odd:
            del vectors[hit[1]]  # kept under another length than the model's (a damaged cache): again
        if odd:
            failed += _embed_into(cache, model, odd, vectors, request.max_pixels)
    finally:
        cache.close()
    q = combine(request.terms, terms)
    rescored = [(float(vectors[i] @ q), i, path, t) for _, i, path, t in found if i in vectors]
    rescored.sort(key=lambda hit: -hit[0])  # stable: ties keep the index's order
    if failed:
        notes.append(f"{len(failed)} hit(s) could not be re-ranked and were left out: " + "; ".join(failed[:3]))
    return Reranked(rescored, vectors, terms, len(todo) + len(odd), tuple(failed))


def _embed_into(
    cache: RerankCache,
    model: SecondModel,
    todo: list[tuple[Found, os.stat_result]],
    vectors: dict[int, np.ndarray],
    max_pixels: int,
) -> list[str]:
    """Embed ``todo``'s hits into ``vectors`` and the cache; why any could not be."""
    fresh, why = _embed(model, [hit for hit, _ in todo], max_pixels)
    vectors.update(fresh)
    cache.put([(h[2], h[3], st, fresh[h[1]]) for h, st in todo if h[1] in fresh])
    return why


def _embed(model: SecondModel, hits: Sequence[Found], max_pixels: int) -> tuple[dict[int, np.ndarray], list[str]]:
    """The second model's vectors of ``hits`` (images decoded in parallel, moments of videos each from
    its file), and why any could not be had."""
    from mmcli.embedding.batch import embed_stream
    from mmcli.results import FileFailure

    if not hits:
        return {}, []
    encoder = model.image_encoder(len(hits))
    out: dict[int, np.ndarray] = {}
    failed: list[str] = []
    stills = [h for h in hits if h[3] is None]
    results = embed_stream(encoder, [h[2] for h in stills], model.batch_size, model.workers, max_pixels)
    for hit, result in zip(stills, results):
        if isinstance(result, FileFailure):
            failed.append(f"{hit[2]}: {result.reason}")
        elif np.isfinite(result.vector).all():
            out[hit[1]] = result.vector
        else:
            failed.append(f"{hit[2]}: {NOT_A_NUMBER}")
    moments = [h for h in hits if h[3] is not None]
    pixels, kept = [], []
    for hit in moments:
        try:
            pixels.append(_moment_pixels(hit[2], float(hit[3] or 0.0), encoder.preprocess, max_pixels))
            kept.append(hit)
        except ImageLoadError as exc:
            failed.append(f"{hit[2]} at {hit[3]:.1f} s: {exc.reason}")
    for start in range(0, len(kept), 32):
        vecs = encoder.encode_images(np.stack(pixels[start : start + 32]))
        for hit, vec in zip(kept[start : start + 32], vecs):
            if np.isfinite(vec).all():
                out[hit[1]] = vec
            else:
                failed.append(f"{hit[2]} at {hit[3]:.1f} s: {NOT_A_NUMBER}")
    return out, failed


def _moment_pixels(path: str, time: float, preprocess: Preprocess, max_pixels: int) -> np.ndarray:
    from mmcli.media.video import frame_at

    return preprocess.to_array(frame_at(path, time, max_pixels, preprocess.min_side))
