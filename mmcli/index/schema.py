"""The index's on-disk format: its files, the SQLite schema and its version, where it can be written.

Format history: 1, the first; 2 adds ``files.missing_since`` (vanished files keep their vectors);
3 adds ``files.taken``, ``taken_source`` and ``taken_offset`` (when each picture was taken, see
``mmcli.media.taken``) and an index on ``taken``; 4 adds the ``frames`` table (the sampled moments of
videos). Older formats are brought up to date in place when opened for writing (no re-embedding);
the next `mmcli index` reads the dates of rows that have none.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mmcli.errors import IndexReadOnly

FORMAT_VERSION = 4  # 2: files.missing_since; 3: files.taken, taken_source, taken_offset; 4: frames (video moments)
DB_NAME = "index.sqlite"
REBUILD_DB = "rebuild.sqlite"  # where `mmcli index --rebuild` builds the new index before the swap

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    vector BLOB,
    indexed_at REAL NOT NULL,
    missing_since REAL,
    taken REAL,
    taken_source TEXT,
    taken_offset INTEGER
);
CREATE INDEX IF NOT EXISTS files_hash ON files (hash);
"""
# Made after SCHEMA, once the column exists (an older database gets it from the migration).
TAKEN_INDEX = "CREATE INDEX IF NOT EXISTS files_taken ON files (taken)"

# Format 4: the sampled moments of videos. A video's ``files`` row holds no vector (status 'ok', vector
# NULL); each moment is a row here. FAISS ids of moments are ``FRAME_ID_BASE + frames.id``, a range
# that files ids (SQLite rowids, counted from 1) never reach, so one FAISS index holds both.
FRAMES_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    time REAL NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_file ON frames (file_id);
"""
FRAME_ID_BASE = 1 << 40


def remove(folder: Path, name: str) -> None:
    """Delete a database and its WAL files (a finished or abandoned rebuild)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            (folder / (name + suffix)).unlink()
        except FileNotFoundError:
            pass


def set_aside(folder: Path) -> Path:
    """Move a broken database (and its WAL files) out of the way; returns its new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{DB_NAME}.corrupt-{stamp}"
    for suffix in ("", "-wal", "-shm"):
        src = folder / (DB_NAME + suffix)
        if src.exists():
            os.replace(src, folder / (target.name + suffix))
    return target


def ensure_writable(folder: Path, name: str = DB_NAME) -> None:
    """Refuse, saying so, to update an index this process cannot write (before taking its lock)."""
    if read_only(folder, folder / name):
        raise IndexReadOnly(
            f"the index at {folder} is read-only: it cannot be updated here",
            hint="search, info, dupes and cluster work on it; to add images, copy it somewhere writable",
        )


def read_only(folder: Path, path: Path) -> bool:
    """Can this process not write the index (its database, or the folder its WAL files go in)?"""
    if path.exists():
        return not (os.access(path, os.W_OK) and os.access(folder, os.W_OK))
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing is not None and existing.is_dir() and not os.access(existing, os.W_OK)


COLUMNS = (
    "id, path, size, mtime_ns, hash, status, error, vector, indexed_at, missing_since, "
    "taken, taken_source, taken_offset"
)


def stat_int(value: int) -> int:
    """A stat number (size, mtime_ns) as SQLite's 64-bit INTEGER can hold it: wrapped into
    [-2**63, 2**63). An mtime after 2262 (``touch -d 2300-01-01``) has more nanoseconds than that;
    the columns only tell a changed file from an unchanged one, which the wrapped number still does
    (the same for numbers in range, so older rows compare as before)."""
    return (int(value) + (1 << 63)) % (1 << 64) - (1 << 63)


def encode_path(path: str) -> bytes:
    return os.fsencode(path)


def decode_path(raw: bytes) -> str:
    return os.fsdecode(raw)
