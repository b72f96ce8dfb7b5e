"""On-disk cache of text embeddings, per model fingerprint and exact prompt text.

80 templates x many labels at ~40 ms a prompt is why this exists. The cache is disposable: a
broken, read-only or newer-format cache file is ignored (never an error), and deleting it is safe.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmcli.config import cache_dir

if TYPE_CHECKING:
    from mmcli.models import Encoder

FORMAT_VERSION = 1


class TextCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "text-embeddings.sqlite"
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._broken:
            return self._db
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
            version = int(db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0])
            if version != FORMAT_VERSION:
                db.close()
                self._broken = True
                return None
            db.execute(
                "CREATE TABLE IF NOT EXISTS texts (model TEXT NOT NULL, text_hash TEXT NOT NULL, "
                "dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, text_hash))"
            )
            db.commit()
        except (sqlite3.Error, OSError, ValueError, TypeError):
            self._broken = True
            return None
        self._db = db
        return db

    @staticmethod
    def _key(fingerprint: str, text: str) -> tuple[str, str]:
        model = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return model, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, fingerprint: str, texts: list[str]) -> dict[str, np.ndarray]:
        db = self._connect()
        found: dict[str, np.ndarray] = {}
        if db is None:
            return found
        try:
            for text in dict.fromkeys(texts):
                row = db.execute(
                    "SELECT dim, vector FROM texts WHERE model=? AND text_hash=?", self._key(fingerprint, text)
                ).fetchone()
                if row is not None and len(row[1]) == 4 * row[0]:
                    found[text] = np.frombuffer(row[1], dtype=np.float32).copy()
        except sqlite3.Error:
            return {}
        return found

    def put(self, fingerprint: str, texts: list[str], vectors: np.ndarray) -> None:
        db = self._connect()
        if db is None:
            return
        try:
            with db:
                db.executemany(
                    "INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?)",
                    [
                        (*self._key(fingerprint, t), int(v.shape[0]), v.astype(np.float32).tobytes())
                        for t, v in zip(texts, vectors)
                    ],
                )
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def encode_texts_cached(
    encoder: Encoder, texts: list[str], cache: TextCache | None, batch_size: int = 256
) -> np.ndarray:
    """Unit text embeddings for ``texts`` (rows in order), computing only what the cache lacks."""
    unique = list(dict.fromkeys(texts))
    known = cache.get(encoder.fingerprint, unique) if cache else {}
    missing = [t for t in unique if t not in known]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        vecs = encoder.encode_texts(chunk)
        known.update(zip(chunk, vecs))
        if cache:
            cache.put(encoder.fingerprint, chunk, vecs)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.ascontiguousarray(np.stack([known[t] for t in texts]), dtype=np.float32)
