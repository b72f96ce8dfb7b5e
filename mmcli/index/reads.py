"""Every read of vectors, and of the counts and dates that go with them, as one part of ``Store``.

Images have their vector in ``files``; a video's moments are rows of ``frames`` (FAISS ids from
``FRAME_ID_BASE``). Every read goes through ``_parts``: files' own vectors, then present videos'
moments, each a plain indexed query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmcli.index.schema import FRAME_ID_BASE, decode_path, encode_path
from mmcli.results import Taken

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Located:
    """Where a vector came from: a file, and for a video the time of the moment in seconds."""

    path: str
    time: float | None


class VectorReads:
    """The reading half of ``mmcli.index.store.Store`` (which provides the connection and the meta)."""

    db: sqlite3.Connection
    present: str  # the SQL condition of rows that searches see
    dated: bool  # the files table has the taken columns

    def meta(self) -> dict[str, str]:
        raise NotImplementedError

    def _parts(self, columns: tuple[str, str], extra: str = "") -> tuple[str, str]:
        """The two halves of every read of vectors, ``SELECT files-columns ...`` and ``SELECT frame-columns
        ...``: files' own vectors, and the moments of present videos (ids from FRAME_ID_BASE, so the second
        half follows the first in id order). Each is a plain indexed query: no sort, no blob is read
        that is not asked for. ``extra`` (conditions on files' columns) goes into both."""
        own, moment = columns
        return (
            f"SELECT {own} FROM files WHERE {self.present} AND vector IS NOT NULL{extra} ORDER BY id",
            f"SELECT {moment} FROM frames CROSS JOIN files ON files.id = frames.file_id "  # frames first
            f"WHERE {self.present}{extra} ORDER BY frames.id",
        )

    def vector_count(self) -> int:
        """How many vectors searches see (images, and moments of videos): what FAISS must hold."""
        return sum(int(self.db.execute(q).fetchone()[0]) for q in self._parts(("COUNT(*)", "COUNT(*)")))

    def video_count(self) -> int:
        """How many present videos searches see (files rows that hold moments, not a vector)."""
        sql = f"SELECT COUNT(*) FROM files WHERE {self.present} AND vector IS NULL"
        return int(self.db.execute(sql).fetchone()[0])

    def frame_count(self) -> int:
        """How many moments of present videos searches see."""
        return int(self.db.execute(self._parts(("0", "COUNT(*)"))[1]).fetchone()[0])

    def counts(self) -> tuple[int, int]:
        ok, failed = self.db.execute(
            f"SELECT COALESCE(SUM({self.present}), 0), COALESCE(SUM(status = 'failed'), 0) FROM files"
        ).fetchone()
        return int(ok), int(failed)

    def missing_count(self) -> int:
        if "missing_since" not in self.present:
            return 0
        return int(self.db.execute("SELECT COUNT(*) FROM files WHERE missing_since IS NOT NULL").fetchone()[0])

    @property
    def _dated_sql(self) -> str:
        return "taken_source IS NOT NULL" if self.dated else "0"

    def _filter(self, under: str | None, after: float | None, before: float | None) -> tuple[str, list[object]]:
        """Conditions on files' columns (for ``_parts``): under a folder, taken in [after, before)
        (bounds: None = open). A moment of a video has its video's date."""
        sql, args = "", []
        if under is not None:
            prefix = encode_path(under).rstrip(b"/") + b"/"
            sql, args = " AND path >= ? AND path < ?", [prefix, prefix[:-1] + b"0"]
        if (after is not None or before is not None) and not self.dated:
            return sql + " AND 0", args  # an older index read as it is: no dates yet
        if after is not None:
            sql, args = sql + " AND taken >= ?", [*args, after]
        if before is not None:
            sql, args = sql + " AND taken < ?", [*args, before]
        return sql, args

    def count_where(self, under: str | None = None, after: float | None = None, before: float | None = None) -> int:
        """How many vectors (images, moments) lie under ``under`` and were taken in [after, before)."""
        extra, args = self._filter(under, after, before)
        return sum(int(self.db.execute(q, args).fetchone()[0]) for q in self._parts(("COUNT(*)", "COUNT(*)"), extra))

    def ids_where(self, under: str | None = None, after: float | None = None, before: float | None = None) -> set[int]:
        """The vector ids (images, moments) under ``under`` taken in [after, before)."""
        extra, args = self._filter(under, after, before)
        ids: set[int] = set()
        for q in self._parts(("id", f"frames.id + {FRAME_ID_BASE}"), extra):
            ids.update(r[0] for r in self.db.execute(q, args))
        return ids

    def vectors(
        self,
        under: str | None = None,
        batch: int = 65536,
        after: float | None = None,
        before: float | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of images and moments in id order, in chunks; ``under`` restricts to a folder,
        ``after``/``before`` to what was taken in [after, before)."""
        import numpy as np

        dim = int(self.meta().get("dim", "0"))
        extra, args = self._filter(under, after, before)
        for sql in self._parts(("id, vector", f"frames.id + {FRAME_ID_BASE}, frames.vector"), extra):
            cur = self.db.execute(sql, args)
            while rows := cur.fetchmany(batch):
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
                yield ids, vecs

    def sample(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of up to ``k`` vectors (images, moments) spread evenly over the ids (the same every
        time). The ids are picked first, the vectors of those alone read after."""
        import numpy as np

        dim = int(self.meta().get("dim", "0"))
        n = self.vector_count()
        step = max(1, n // max(k, 1))
        own, moments = self._parts(("id", f"frames.id + {FRAME_ID_BASE} AS id"))
        picked = [
            r[0]
            for r in self.db.execute(
                "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS i FROM "
                f"(SELECT * FROM ({own}) UNION ALL SELECT * FROM ({moments}))) WHERE i % ? = 0 LIMIT ?",
                (step, k),
            )
        ]
        found = self.vectors_by_id(picked)
        ids = np.array(picked, dtype=np.int64)
        vecs = np.frombuffer(b"".join(found[i] for i in picked), dtype=np.float32).reshape(len(picked), dim)
        return ids, vecs

    def spread(self, k: int) -> np.ndarray:
        """Vectors (images, moments) at about ``k`` ids spread evenly over the id ranges, read by id: no scan
        of the table, so it costs the same in any index (a background sample; the same every time, fewer
        where ids were deleted or belong to videos, failed or missing files)."""
        import numpy as np

        spans = []
        for table, base in (("files", 0), ("frames", FRAME_ID_BASE)):
            lo, hi = self.db.execute(f"SELECT MIN(id), MAX(id) FROM {table}").fetchone()
            if lo is not None:
                spans.append((base + int(lo), base + int(hi)))
        total = sum(hi - lo + 1 for lo, hi in spans)
        picked: list[int] = []
        for lo, hi in spans:
            share = max(1, round(k * (hi - lo + 1) / total))
            picked += sorted({int(i) for i in np.linspace(lo, hi, num=min(share, hi - lo + 1))})
        found = self.vectors_by_id(picked)
        dim = int(self.meta().get("dim", "0"))
        return np.frombuffer(b"".join(found[i] for i in picked if i in found), dtype=np.float32).reshape(-1, dim)

    def vectors_by_id(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Vector ids -> vectors, of those searches see."""
        out: dict[int, bytes] = {}
        for own, moments in _split_ids(ids):
            out.update(
                self.db.execute(
                    f"SELECT id, vector FROM files WHERE {self.present} AND vector IS NOT NULL "
                    f"AND id IN ({','.join('?' * len(own))})",
                    own,
                ).fetchall()
            )
            out.update(
                self.db.execute(
                    f"SELECT frames.id + {FRAME_ID_BASE}, frames.vector FROM frames CROSS JOIN files "
                    f"ON files.id = frames.file_id WHERE {self.present} "
                    f"AND frames.id IN ({','.join('?' * len(moments))})",
                    moments,
                ).fetchall()
            )
        return out

    def moments_if_unchanged(self, path: str, size: int, mtime_ns: int) -> list[tuple[float, bytes]]:
        """The stored moments (time, vector) of the video ``path`` if it was indexed with this size and
        mtime (still the same file), in time order; empty otherwise."""
        row = self.db.execute(
            "SELECT id, size, mtime_ns FROM files WHERE path = ? AND status = 'ok' AND vector IS NULL",
            (encode_path(path),),
        ).fetchone()
        if row is None or (row[1], row[2]) != (size, mtime_ns):
            return []
        return [
            (float(t), v)
            for t, v in self.db.execute("SELECT time, vector FROM frames WHERE file_id = ? ORDER BY time", (row[0],))
        ]

    def paths_for(self, ids: Iterable[int]) -> dict[int, str]:
        return {i: where.path for i, where in self.locate(ids).items()}

    def locate(self, ids: Iterable[int]) -> dict[int, Located]:
        """Vector ids -> their file and, for a moment of a video, its time."""
        out: dict[int, Located] = {}
        for files, frames in _split_ids(ids):
            for rid, path in self.db.execute(
                f"SELECT id, path FROM files WHERE id IN ({','.join('?' * len(files))})", files
            ):
                out[rid] = Located(decode_path(path), None)
            for rid, path, when in self.db.execute(
                "SELECT frames.id, path, time FROM frames JOIN files ON files.id = frames.file_id "
                f"WHERE frames.id IN ({','.join('?' * len(frames))})",
                frames,
            ):
                out[rid + FRAME_ID_BASE] = Located(decode_path(path), float(when))
        return out

    def owners(self, ids: Iterable[int]) -> dict[int, int]:
        """Vector ids -> the id of the file they belong to (a moment's video; an image itself)."""
        ids = list(ids)
        out = {i: i for i in ids if i < FRAME_ID_BASE}
        frames = [i - FRAME_ID_BASE for i in ids if i >= FRAME_ID_BASE]
        for start in range(0, len(frames), 500):
            chunk = frames[start : start + 500]
            for rid, owner in self.db.execute(
                f"SELECT id, file_id FROM frames WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[rid + FRAME_ID_BASE] = owner
        return out

    def taken_for(self, ids: Iterable[int]) -> dict[int, Taken]:
        """The capture times of these vectors (a moment: its video's); those without one are left out."""
        owner = self.owners(ids)
        files = list(set(owner.values()))
        found: dict[int, Taken] = {}
        if not self.dated:
            return {}
        for start in range(0, len(files), 500):
            chunk = files[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, taken, taken_source, taken_offset FROM files WHERE id IN ({marks}) AND taken IS NOT NULL"
            for rid, when, source, offset in self.db.execute(sql, chunk):
                found[rid] = Taken(when, source, offset)
        return {i: found[f] for i, f in owner.items() if f in found}

    def undated_count(self) -> int:
        """Rows searches see whose capture time was not read yet (an index made before format 3)."""
        if not self.dated:
            return self.counts()[0]
        sql = f"SELECT COUNT(*) FROM files WHERE {self.present} AND taken_source IS NULL"
        return int(self.db.execute(sql).fetchone()[0])

    def taken_range(self) -> tuple[Taken | None, Taken | None, int, int]:
        """(oldest, newest, how many dates are mtimes, how many rows have none) of the rows searches see."""
        if not self.dated:
            return None, None, 0, self.undated_count()
        ends = []
        for order in ("ASC", "DESC"):
            row = self.db.execute(
                f"SELECT taken, taken_source, taken_offset FROM files WHERE {self.present} AND taken IS NOT NULL "
                f"ORDER BY taken {order}, id LIMIT 1"
            ).fetchone()
            ends.append(Taken(*row) if row else None)
        mtimes, undated = self.db.execute(
            "SELECT COALESCE(SUM(taken_source = 'mtime'), 0), COALESCE(SUM(taken_source IS NULL), 0) "
            f"FROM files WHERE {self.present}"
        ).fetchone()
        return ends[0], ends[1], int(mtimes), int(undated)


def _split_ids(ids: Iterable[int], size: int = 500) -> Iterator[tuple[list[int], list[int]]]:
    """Vector ids in chunks of ``size`` (SQLite's bound-parameter budget), each split into files ids
    and frames ids (moments: FAISS id - FRAME_ID_BASE)."""
    ids = list(ids)
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield [i for i in chunk if i < FRAME_ID_BASE], [i - FRAME_ID_BASE for i in chunk if i >= FRAME_ID_BASE]
