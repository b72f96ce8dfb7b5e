"""``--rerank MODEL``: the index's best hits re-scored by a second model, embedded on the fly.

Each hit's file is embedded by the second model (a video at its moment: the frame sampling found
there), and kept in a cache beside the index, one file per model: ``<index>/rerank/<key>.sqlite``,
rows keyed by path and moment and valid while the file's size and mtime are unchanged, so a repeated
or overlapping search embeds nothing again. The query's terms are embedded by the second model too
(texts through its text cache; image terms from this cache when they were hits before, else embedded).
The final order is the second model's scores over those hits, best first.

The cache is disposable: a broken, unwritable or newer-format file is ignored (the vectors are then
embedded each time), and deleting the folder is safe.
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
    """Unit vectors of one model by (path, moment), with the size and mtime of the file they came from."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        key = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        self.path = folder / f"{key}.sqlite"
        self.fingerprint = fingerprint
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open()
        except (sqlite3.Error, OSError):
            self._db = None

    def _open(self) -> sqlite3.Connection | None:
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
        return db

    def get(self, path: str, time: float | None, st: os.stat_result) -> np.ndarray | None:
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT size, mtime_ns, vector FROM vectors WHERE path = ? AND time = ?",
                (os.fsencode(path), STILL if time is None else time),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or (row[0], row[1]) != (st.st_size, st.st_mtime_ns) or len(row[2]) % 4:
            return None
        return np.frombuffer(row[2], dtype=np.float32)

    def put(self, rows: Sequence[tuple[str, float | None, os.stat_result, np.ndarray]]) -> None:
        if self._db is None or not rows:
            return
        values = [
            (os.fsencode(p), STILL if t is None else t, st.st_size, st.st_mtime_ns, np.asarray(v, np.float32).tobytes())
            for p, t, st, v in rows
        ]
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)", values)
        except sqlite3.Error:
            pass  # a read-only or full disk: the vectors are simply not kept

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def rerank(
    store: Store, found: Sequence[Found], request: SearchRequest, model: SecondModel, folder: Path, notes: list[str]
) -> Reranked:
    """``found`` re-scored and ordered by ``model`` (ties keep their first order); hits whose file cannot
    be read any more are left out, with a note."""
    cache = RerankCache(folder / "rerank", model.fingerprint)
    try:
        vectors: dict[int, np.ndarray] = {}
        todo: list[tuple[Found, os.stat_result]] = []
        failed: list[str] = []
        for hit in found:
            _, i, path, t = hit
            try:
                st = os.stat(path)
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror or 'cannot be read'}")
                continue
            vec = cache.get(path, t, st)
            if vec is not None:
                vectors[i] = vec
            else:
                todo.append((hit, st))
        fresh, why = _embed(model, [hit for hit, _ in todo], request.max_pixels)
        vectors.update(fresh)
        failed += why
        cache.put([(h[2], h[3], st, fresh[h[1]]) for h, st in todo if h[1] in fresh])

        def stored(path: str) -> np.ndarray | None:
            try:
                return cache.get(path, None, os.stat(path))
            except OSError:
                return None

        terms = term_vectors(store, request.terms, model, request.max_pixels, notes, stored=stored)
    finally:
        cache.close()
    q = combine(request.terms, terms)
    rescored = [(float(vectors[i] @ q), i, path, t) for _, i, path, t in found if i in vectors]
    rescored.sort(key=lambda hit: -hit[0])  # stable: ties keep the index's order
    if failed:
        notes.append(f"{len(failed)} hit(s) could not be re-ranked and were left out: " + "; ".join(failed[:3]))
    return Reranked(rescored, vectors, terms, len(todo), tuple(failed))


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
        else:
            out[hit[1]] = result.vector
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
        out.update((hit[1], vec) for hit, vec in zip(kept[start : start + 32], vecs))
    return out, failed


def _moment_pixels(path: str, time: float, preprocess: Preprocess, max_pixels: int) -> np.ndarray:
    from mmcli.media.video import frame_at

    return preprocess.to_array(frame_at(path, time, max_pixels, preprocess.min_side))
