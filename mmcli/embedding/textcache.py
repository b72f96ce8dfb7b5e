"""On-disk cache of text embeddings, per model fingerprint and exact prompt text.

80 templates x many labels at ~40 ms a prompt is why this exists. The cache is disposable: a
broken or newer-format cache file is ignored (never an error), and deleting it is safe. One that
cannot be written (a read-only folder or medium) is read as it is (SQLite's ``immutable``) and
nothing new is added to it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import cache_dir

if TYPE_CHECKING:
    from mmcli.models.spec import TextEncoder

FORMAT_VERSION = 2  # 2: each row carries a checksum of (model, text, vector)


class TextCache:
    """Unit text vectors by (model fingerprint, text). Every row is checked when read: its size, its
    values (finite, unit length), its dimension against the model's other rows, and a checksum that
    binds the vector to its model and text; a row that fails is dropped and computed again."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "text-embeddings.sqlite"
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._read_only = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        try:
            db = self._open()
        except (sqlite3.Error, OSError, ValueError, TypeError):
            db = self._open_read_only()  # a read-only cache (media, a mount): its rows still serve
        if db is None:
            self._broken = True
        self._db = db
        return db

    def _open(self) -> sqlite3.Connection | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            version = _version(db)
            if version is not None and version > FORMAT_VERSION:  # a newer mmcli's cache: leave it alone
                db.close()
                return None
            if version != FORMAT_VERSION:  # none or older: the cache is disposable, start it again
                with db:
                    db.execute("DROP TABLE IF EXISTS texts")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
            db.execute(
                "CREATE TABLE IF NOT EXISTS texts (model TEXT NOT NULL, text_hash TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vector BLOB NOT NULL, checksum TEXT NOT NULL, "
                "PRIMARY KEY (model, text_hash))"
            )
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection | None:
        """The cache as it is, where it cannot be written: ``immutable`` (no locks, no -shm file to make)."""
        try:
            if not self.path.is_file():
                return None
            db = sqlite3.connect(self.path.resolve().as_uri() + "?immutable=1", uri=True)
            if _version(db) != FORMAT_VERSION:
                db.close()
                return None
        except (sqlite3.Error, OSError, ValueError):
            return None
        self._read_only = True
        return db

    @staticmethod
    def _key(fingerprint: str, text: str) -> tuple[str, str]:
        model = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return model, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    @staticmethod
    def _checksum(model: str, text_hash: str, vector: bytes) -> str:
        return hashlib.sha256(model.encode() + b"|" + text_hash.encode() + b"|" + vector).hexdigest()

    def get(self, fingerprint: str, texts: list[str]) -> dict[str, np.ndarray]:
        db = self._connect()
        found: dict[str, np.ndarray] = {}
        if db is None:
            return found
        bad: list[tuple[str, str]] = []
        try:
            dims: set[int] = set()
            for text in dict.fromkeys(texts):
                model, text_hash = self._key(fingerprint, text)
                row = db.execute(
                    "SELECT dim, vector, checksum FROM texts WHERE model=? AND text_hash=?", (model, text_hash)
                ).fetchone()
                if row is None:
                    continue
                vector = _valid(row, self._checksum(model, text_hash, row[1]))
                if vector is None:
                    bad.append((model, text_hash))
                    continue
                found[text] = vector
                dims.add(vector.shape[0])
            if len(dims) > 1:  # rows of one model disagree: trust none of them
                bad += [self._key(fingerprint, t) for t in found]
                found = {}
        except sqlite3.Error:
            return {}
        if bad and not self._read_only:
            try:
                with db:
                    db.executemany("DELETE FROM texts WHERE model=? AND text_hash=?", bad)
            except sqlite3.Error:
                pass
        return found

    def put(self, fingerprint: str, texts: list[str], vectors: np.ndarray) -> None:
        db = self._connect()
        if db is None or self._read_only:
            return
        rows = []
        for text, vector in zip(texts, vectors):
            model, text_hash = self._key(fingerprint, text)
            data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            rows.append((model, text_hash, int(vector.shape[0]), data, self._checksum(model, text_hash, data)))
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _version(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
    return int(row[0]) if row else None


def _valid(row: tuple[int, bytes, str], checksum: str) -> np.ndarray | None:
    """The row's vector if it is whole, finite, of unit length and matches its checksum; else None."""
    dim, data, stored = row
    if not isinstance(data, bytes) or dim <= 0 or len(data) != 4 * dim or stored != checksum:
        return None
    vector = np.frombuffer(data, dtype=np.float32).copy()
    if not np.isfinite(vector).all() or abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        return None
    return vector


def encode_texts_cached(
    encoder: TextEncoder,
    texts: list[str],
    cache: TextCache | None,
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Unit text embeddings for ``texts`` (rows in order), computing only what the cache lacks, in
    batches (``on_progress(done, total)`` after each, counting the texts to compute)."""
    unique = list(dict.fromkeys(texts))
    known = cache.get(encoder.fingerprint, unique) if cache else {}
    missing = [t for t in unique if t not in known]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        vecs = encoder.encode_texts(chunk)
        known.update(zip(chunk, vecs))
        if cache:
            cache.put(encoder.fingerprint, chunk, vecs)
        if on_progress:
            on_progress(start + len(chunk), len(missing))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack([known[t] for t in texts]), dtype=np.float32)
