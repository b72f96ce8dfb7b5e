"""The index's source of truth: one SQLite database (WAL) of files, their vectors and the model.

Tables
    meta(key, value)  format_version, model_name, model_spec, dim, preprocess, generation, created, updated
    files(id, path, size, mtime_ns, hash, status, error, vector, indexed_at)
      path: the file's absolute path as bytes (os.fsencode: any name round-trips)
      status: 'ok' (vector set) or 'failed' (error set; not retried until size or mtime change)
      missing_since: when the file was last found gone (NULL: present). A missing file is left out of
        searches but keeps its vector, for when it comes back (same path, or any path by its hash);
        `mmcli index --prune` drops it. Format 1 had no such column: it is added in place.
      taken, taken_source, taken_offset: when the picture was taken (unix seconds), from 'exif' (with
        its UTC offset, seconds east), 'exif-local' (no offset: wall clock read as UTC) or 'mtime'; see
        ``mmcli.media.taken``. NULL: not read yet (an index of format 2 or older; the next `mmcli index`
        reads them, without the model). Indexed, for --after/--before.
    frames(id, file_id, time, vector)  the sampled moments of a video (format 4): its files row is 'ok'
      with no vector; each moment has FAISS id FRAME_ID_BASE + frames.id (see ``schema.py``). Every
      read of vectors goes through ``_parts``: files' vectors, then present videos' moments.

``generation`` grows with every commit that changes vectors; the FAISS file derived from it
carries the generation it was built from, so a stale one is never used.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.errors import IndexCorrupt, IndexMissing
from mmcli.index.migrate import adopt, check_version, create_schema
from mmcli.index.reads import Located, VectorReads  # noqa: F401 (Located: re-exported)
from mmcli.index.schema import (
    DB_NAME,
    FORMAT_VERSION,
    decode_path,
    encode_path,
    ensure_writable,
    read_only,
    stat_int,
)
from mmcli.results import Taken

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    hash: str | None
    status: str
    missing: bool = False
    dated: bool = True  # taken is known (rows of an older format have none until the next index run)


class Store(VectorReads):
    """A connection to one index database. Writers take the index lock (see ``lock.py``) first.

    ``create=True`` (the indexer) makes the folder, the database and its schema when missing;
    ``create=False`` (everything that only reads) refuses a missing index and changes nothing. An
    index this process cannot write (read-only media, a shared folder) opens read-only for reading
    (``readonly``) and is refused, saying so, for writing.
    """

    def __init__(
        self, folder: Path, create: bool = False, name: str = DB_NAME, model: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.path = folder / name
        self._depth = 0  # nesting of snapshot()
        self.present = "status = 'ok' AND missing_since IS NULL"  # rows that searches see
        self.dated = True  # has the taken columns (an older index opened read-only has not)
        if not create and not self.path.exists():
            raise IndexMissing(f"no index at {folder}", hint="create it with `mmcli index PATH`")
        self.readonly = read_only(folder, self.path)
        if create:
            ensure_writable(folder, name)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._connect()
            self.db.execute("PRAGMA busy_timeout = 30000")
            mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal" and create and not self.readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")  # a video's moments go with its row
            if create:
                create_schema(self, model or {})
            check_version(self)
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(
                f"the index database {self.path} is unreadable or corrupt ({exc})",
                hint="`mmcli index --rebuild PATH...` sets it aside (as index.sqlite.corrupt-*) and indexes again",
            ) from None

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            return sqlite3.connect(self.path, timeout=30, isolation_level=None)
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM meta").fetchone()
            return db
        except sqlite3.OperationalError:  # WAL needs its -shm file; on read-only media nothing changes it
            db.close()
            return sqlite3.connect(uri + "?immutable=1", uri=True, timeout=30, isolation_level=None)

    def adopt(self, other: Store) -> None:
        """Replace every row and all meta with ``other``'s, in one transaction (the end of a rebuild)."""
        adopt(self, other)

    def record_model(self, model: dict[str, str]) -> None:
        """Record the model of an index that holds no vector yet (new, made by an older mmcli, killed at
        once, or left by a run whose model never loaded): until a vector is stored (``dim``), it only
        names the model to try, and a run asking for another records that one instead."""
        meta = self.meta()
        if not meta.get("dim") and any(meta.get(key) != value for key, value in model.items()):
            with self.transaction(bump=False):
                for key, value in model.items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------------------------ meta
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def init_meta(
        self, model_name: str, model_spec: str, model_weights: str, dim: int, preprocess: dict[str, object]
    ) -> None:
        now = str(time.time())
        with self.transaction():
            for key, value in (
                ("format_version", str(FORMAT_VERSION)),
                ("model_name", model_name),
                ("model_spec", model_spec),
                ("model_weights", model_weights),
                ("dim", str(dim)),
                ("preprocess", json.dumps(preprocess)),
                ("generation", "0"),
                ("updated", now),
            ):
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (now,))  # (made with the schema)

    def roots(self) -> list[str]:
        """The folders `mmcli index` was run on (JSON in meta; older indexes have none recorded)."""
        raw = self.meta().get("roots")
        try:
            value = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [r for r in value if isinstance(r, str)] if isinstance(value, list) else []

    def add_roots(self, roots: Iterable[str]) -> None:
        known = self.roots()
        new = [r for r in roots if r not in known]
        if new:
            with self.transaction(bump=False):
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('roots', ?)", (json.dumps(known + new),))

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # ----------------------------------------------------------------------------- transactions
    def transaction(self, bump: bool = True) -> _Transaction:
        """``with store.transaction():`` one write transaction; ``bump``: it changes what searches see."""
        return _Transaction(self.db, bump)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """A consistent read view (WAL: concurrent writers, a rebuild's swap included, do not change what
        it sees). Nested snapshots share the outermost one."""
        self._depth += 1
        if self._depth == 1:
            self.db.execute("BEGIN")
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("COMMIT")

    # ------------------------------------------------------------------------------------ reads
    def rows_under(self, roots: Iterable[str]) -> dict[str, FileRow]:
        """Every row whose path is one of ``roots`` or lies below one of them."""
        found: dict[str, FileRow] = {}
        for root in roots:
            raw = encode_path(root)
            prefix = raw.rstrip(b"/") + b"/"
            cur = self.db.execute(
                f"SELECT id, path, size, mtime_ns, hash, status, missing_since IS NOT NULL, {self._dated_sql} "
                "FROM files WHERE path = ? OR (path >= ? AND path < ?)",
                (raw, prefix, prefix[:-1] + b"0"),
            )
            for rid, path, size, mtime, digest, status, missing, dated in cur:
                p = decode_path(path)
                found[p] = FileRow(rid, p, size, mtime, digest, status, bool(missing), bool(dated))
        return found

    def rows_with_hash(self, digest: str) -> list[FileRow]:
        cur = self.db.execute(
            "SELECT id, path, size, mtime_ns, hash, status, missing_since IS NOT NULL FROM files WHERE hash = ?",
            (digest,),
        )
        return [FileRow(r[0], decode_path(r[1]), r[2], r[3], r[4], r[5], bool(r[6])) for r in cur]

    def vector_if_unchanged(self, path: str, size: int, mtime_ns: int) -> bytes | None:
        """The stored vector of ``path`` if it was indexed with this size and mtime (still the same file)."""
        row = self.db.execute(
            "SELECT size, mtime_ns, vector FROM files WHERE path = ? AND status = 'ok'", (encode_path(path),)
        ).fetchone()
        return row[2] if row and (row[0], row[1]) == (stat_int(size), stat_int(mtime_ns)) else None

    def ok_hashes(self) -> Iterator[tuple[int, str]]:
        """(id, content hash) of every embedded file."""
        yield from self.db.execute(f"SELECT id, hash FROM files WHERE {self.present} AND hash IS NOT NULL")

    def ok_sizes(self) -> set[int]:
        """The sizes of every file with a vector (present or missing): a file of another size cannot
        share one's content, so it needs no hash before it is embedded."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT size FROM files WHERE status = 'ok'")}

    def vector_for_hash(self, digest: str) -> bytes | None:
        row = self.db.execute(
            "SELECT vector FROM files WHERE hash = ? AND status = 'ok' AND vector IS NOT NULL LIMIT 1", (digest,)
        ).fetchone()
        return row[0] if row else None

    def frames_for_hash(self, digest: str) -> list[tuple[float, bytes]] | None:
        """The moments (time, vector) of an embedded video with this content, or None."""
        row = self.db.execute(
            "SELECT id FROM files WHERE hash = ? AND status = 'ok' AND vector IS NULL "
            "AND EXISTS (SELECT 1 FROM frames WHERE file_id = files.id) LIMIT 1",
            (digest,),
        ).fetchone()
        if row is None:
            return None
        return self.db.execute("SELECT time, vector FROM frames WHERE file_id = ? ORDER BY time", (row[0],)).fetchall()

    # ----------------------------------------------------------------------------------- writes
    def put_ok(
        self, path: str, size: int, mtime_ns: int, digest: str | None, vector: bytes, taken: Taken | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO files (path, size, mtime_ns, hash, status, error, vector, indexed_at, taken, taken_source, "
            "taken_offset) VALUES (?, ?, ?, ?, 'ok', NULL, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, status = 'ok', error = NULL, "
            "vector = excluded.vector, indexed_at = excluded.indexed_at, missing_since = NULL, "
            "taken = excluded.taken, taken_source = excluded.taken_source, taken_offset = excluded.taken_offset",
            (encode_path(path), stat_int(size), stat_int(mtime_ns), digest, vector, time.time(), *_taken_args(taken)),
        )
        self._drop_frames(path)

    def put_video(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        digest: str | None,
        moments: Sequence[tuple[float, bytes]],
        taken: Taken | None = None,
    ) -> None:
        """A video and its moments (time, vector): the row holds no vector of its own."""
        self.db.execute(
            "INSERT INTO files (path, size, mtime_ns, hash, status, error, vector, indexed_at, taken, taken_source, "
            "taken_offset) VALUES (?, ?, ?, ?, 'ok', NULL, NULL, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, status = 'ok', error = NULL, "
            "vector = NULL, indexed_at = excluded.indexed_at, missing_since = NULL, "
            "taken = excluded.taken, taken_source = excluded.taken_source, taken_offset = excluded.taken_offset",
            (encode_path(path), stat_int(size), stat_int(mtime_ns), digest, time.time(), *_taken_args(taken)),
        )
        self._drop_frames(path)
        (file_id,) = self.db.execute("SELECT id FROM files WHERE path = ?", (encode_path(path),)).fetchone()
        self.db.executemany(
            "INSERT INTO frames (file_id, time, vector) VALUES (?, ?, ?)", ((file_id, t, v) for t, v in moments)
        )

    def _drop_frames(self, path: str) -> None:
        self.db.execute(
            "DELETE FROM frames WHERE file_id = (SELECT id FROM files WHERE path = ?)", (encode_path(path),)
        )

    def put_failed(
        self, path: str, size: int, mtime_ns: int, digest: str | None, error: str, taken: Taken | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO files (path, size, mtime_ns, hash, status, error, vector, indexed_at, taken, taken_source, "
            "taken_offset) VALUES (?, ?, ?, ?, 'failed', ?, NULL, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, status = 'failed', "
            "error = excluded.error, vector = NULL, indexed_at = excluded.indexed_at, missing_since = NULL, "
            "taken = excluded.taken, taken_source = excluded.taken_source, taken_offset = excluded.taken_offset",
            (encode_path(path), stat_int(size), stat_int(mtime_ns), digest, error, time.time(), *_taken_args(taken)),
        )
        self._drop_frames(path)

    def set_taken(self, dates: Iterable[tuple[int, Taken]]) -> None:
        """Record the capture times of existing rows (the dates of an index made before format 3)."""
        self.db.executemany(
            "UPDATE files SET taken = ?, taken_source = ?, taken_offset = ? WHERE id = ?",
            ((*_taken_args(t), rid) for rid, t in dates),
        )

    def mark_missing(self, ids: Iterable[int], missing: bool = True) -> None:
        """Files found gone (``missing``) or back: out of searches or in again, vectors kept either way."""
        when = time.time() if missing else None
        self.db.executemany("UPDATE files SET missing_since = ? WHERE id = ?", ((when, i) for i in ids))

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self.db.executemany("DELETE FROM frames WHERE file_id = ?", ((i,) for i in ids))
        self.db.executemany("DELETE FROM files WHERE id = ?", ((i,) for i in ids))

    def close(self) -> None:
        self.db.close()


def _taken_args(taken: Taken | None) -> tuple[float | None, str | None, int | None]:
    """None: not read yet; a date that is no number (``NO_DATE``): NULL, with its source ("none")."""
    if taken is None:
        return None, None, None
    return (taken.when if math.isfinite(taken.when) else None), taken.source, taken.offset


class _Transaction:
    """``with store.transaction():`` BEGIN IMMEDIATE ... COMMIT (bumping the generation)."""

    def __init__(self, db: sqlite3.Connection, bump: bool = True) -> None:
        self.db, self.bump = db, bump

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            if self.bump:
                self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (str(time.time()),))
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
