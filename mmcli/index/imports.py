"""`mmcli index --from-embeddings PATH`: vectors made elsewhere (``mmcli embed -o`` on a GPU box or a Ray
cluster, or clip-retrieval), recorded as if `mmcli index` had computed them here.

1. The source is read and checked before anything is written (``embedding.sources``); its model must be
   the index's (mmcli names it; clip-retrieval and a single .npy name none: the index's model, or
   ``--model``, is taken as the user's word), and its dimension the model's.
2. Each row's path is mapped (``--path-prefix OLD=NEW``, the longest OLD first), made absolute (relative
   to the current folder) with its folder's symbolic links resolved, as `mmcli index DIR` records it.
3. A file found here is recorded with its real size, mtime and capture date (a header read), so a later
   `mmcli index DIR` finds it unchanged. Its content hash is read only with ``read_hash`` (a whole read
   of each file): without it, a file renamed or copied later is not recognised by its content and
   is embedded again there (the model runs for those files only). A file not found here is skipped
   and counted, or with ``keep_not_found`` recorded under its path (searchable; size and date unknown).
4. Skipped with a count (and the first example): rows naming a URL or no file, a file that is not an
   image or video mmcli indexes, a vector that is not finite or is zero, a path already seen (the first
   row is kept). Rows whose file the index already holds unchanged are left as they are.
5. Rows are committed in batches (``BATCH_ROWS``, fault point ``index.commit``): a killed import loses at
   most a batch, and the same command again resumes (what is there is found unchanged). The vector index
   is made current at the end, as `mmcli index` does.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.errors import IndexStoreError, ModelMismatch, UsageError
from mmcli.faults import fault_point
from mmcli.index.lock import IndexLock
from mmcli.index.open import model_spec_for
from mmcli.index.schema import ensure_writable, stat_int
from mmcli.index.store import Store
from mmcli.results import ProgressFn, Taken

if TYPE_CHECKING:
    import numpy as np

    from mmcli.embedding.sources import Chunk, EmbeddingSource
    from mmcli.models import ModelSpec

BATCH_ROWS = 10_000  # rows per transaction: all a SIGKILL can cost
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # in a name from the embeddings, shown escaped in messages
REASONS = {  # why a row was not imported, as the summary says it
    "not_found": "not found here",
    "urls": "a URL, not a file",
    "no_path": "no file named",
    "other_kind": "not an image or video mmcli indexes",
    "bad_vector": "its vector is not finite, or zero",
    "duplicates": "a path already imported from an earlier row",
}


@dataclass(frozen=True)
class ImportSummary:
    source: str
    kind: str  # "mmcli shards", "mmcli file" or "clip-retrieval"
    rows: int  # rows read
    added: int  # new entries
    updated: int  # entries replaced (the file had changed, or had failed)
    unchanged: int  # the index already held the file unchanged (an earlier import, or `mmcli index`)
    kept_not_found: int  # files not found here, recorded anyway (keep_not_found)
    skipped: tuple[tuple[str, int, str], ...]  # (reason key in REASONS, rows, first example), rows > 0
    videos: int
    moments: int
    seconds: float
    warnings: tuple[str, ...] = field(default=())

    def count(self, reason: str) -> int:
        return next((n for key, n, _ in self.skipped if key == reason), 0)


def parse_prefix(text: str) -> tuple[str, str]:
    """``OLD=NEW`` (``--path-prefix``): paths starting with the folder OLD are read under NEW."""
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise UsageError(f"--path-prefix {text!r}: give OLD=NEW, e.g. /mnt/cluster/photos=~/Pictures")
    return old.rstrip("/") or "/", os.path.abspath(os.path.expanduser(new))


def import_embeddings(
    folder: Path,
    source: str | os.PathLike[str],
    *,
    model: str | None = None,
    weights: str | None = None,
    path_prefix: Sequence[tuple[str, str]] = (),
    keep_not_found: bool = False,
    read_hash: bool = False,
    batch_rows: int = BATCH_ROWS,
    on_progress: ProgressFn | None = None,
) -> ImportSummary:
    """Record the vectors of ``source`` in the index at ``folder`` (see the module's notes)."""
    from mmcli.embedding.sources import open_source, read_chunks

    start = time.perf_counter()
    opened = open_source(Path(os.fspath(source)).expanduser())
    ensure_writable(folder)
    with IndexLock(folder):
        store = Store(folder, create=True)
        try:
            _bind_model(store, opened, model, weights)
            rows = _Rows(store, path_prefix, keep_not_found, read_hash, had_rows=any(store.counts()))
            for chunk in read_chunks(opened, batch_rows):
                rows.take(chunk)
                if on_progress is not None:
                    on_progress(chunk.start + len(chunk.paths), opened.rows)
            rows.finish()
            from mmcli.index.vectors import load_or_rebuild

            load_or_rebuild(store, write=True, must_write=True)
            store.add_roots(new for _, new in path_prefix if os.path.isdir(new))
        except sqlite3.OperationalError as exc:
            raise IndexStoreError(f"cannot write the index at {folder}: {exc}") from None
        finally:
            store.close()
    c = rows.counts
    skipped = tuple((key, c[key], rows.first[key]) for key in REASONS if c[key])
    return ImportSummary(
        str(opened.path), opened.kind, opened.rows, c["added"], c["updated"], c["unchanged"], c["kept"], skipped,
        c["videos"], c["moments"], time.perf_counter() - start, _warnings(skipped, c["kept"]),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ the model
def _bind_model(store: Store, source: EmbeddingSource, model: str | None, weights: str | None) -> None:
    """The index's model, checked against what the source names; recorded for a new index."""
    meta = store.meta()
    named = source.model
    if meta.get("dim"):
        spec = model_spec_for(meta, model, weights)  # another --model than the index's: refused there
        if named is not None and not same_model(spec, named):
            raise _mismatch(named, spec.canonical, "this index was built with")
        if source.dim != int(meta["dim"]):
            raise ModelMismatch(
                f"the embeddings have {source.dim} dimensions; this index's model ({spec.shown}) gives {meta['dim']}"
            )
        return
    if model is not None or weights is not None or named is None:
        if model is None and weights is None and not meta.get("model_name"):
            raise UsageError(
                f"{source.path} does not say which model made it ({source.kind})",
                hint="name it with --model (and --weights), as it is known on this machine, e.g. --model ViT-B-32",
            )
        spec = model_spec_for(meta, model, weights)
        if named is not None and not same_model(spec, named):
            raise _mismatch(named, spec.canonical, "--model names")
    else:
        spec = _named_spec(named)
    from mmcli.index.sync import model_meta

    dim, preprocess = model_shape(spec)
    if dim != source.dim:
        raise ModelMismatch(f"the embeddings have {source.dim} dimensions; {spec.shown} gives {dim}")
    store.record_model(model_meta(spec))
    store.init_meta(spec.name, spec.canonical, str(spec.weights or ""), dim, preprocess)


def model_shape(spec: ModelSpec) -> tuple[int, dict[str, object]]:
    """The model's vector size and input transform: from its exported image tower when it is there (no
    torch), else built on the meta device (no weights loaded, but torch imported: seconds)."""
    from mmcli.models.tower_files import tower_state

    meta = tower_state(spec, "image").meta or {}
    if isinstance(meta.get("dim"), int) and isinstance(meta.get("preprocess"), dict):
        return meta["dim"], meta["preprocess"]
    from mmcli.models import describe_encoder

    shape = describe_encoder(spec)
    return shape.dim, asdict(shape.preprocess)


def same_model(spec: ModelSpec, named: str) -> bool:
    """Is ``named`` (a canonical spec written on another machine) ``spec``? The same ARCH:TAG or hub
    name; or the same architecture with a weights file of the same name, or a local model folder of the
    same name (their paths differ between machines)."""
    if spec.canonical == named:
        return True
    arch, sep, weights = named.partition(" --weights ")
    if sep and spec.weights is not None:
        return arch == spec.arch and Path(weights).name == spec.weights.name
    if named.startswith("local-dir:") and spec.source and spec.source.startswith("local-dir:"):
        return Path(named[10:]).name == Path(spec.source[10:]).name
    return False


def _named_spec(named: str) -> ModelSpec:
    from mmcli.errors import MmcliError
    from mmcli.models import parse_model_spec

    arch, sep, weights = named.partition(" --weights ")
    try:
        return parse_model_spec(arch, weights) if sep else parse_model_spec(named)
    except MmcliError as exc:
        raise UsageError(
            f"the embeddings were made with {named}, which this machine cannot name ({exc.message})",
            hint="name the same model as it is known here with --model (and --weights)",
        ) from None


def _mismatch(named: str, ours: str, what: str) -> ModelMismatch:
    return ModelMismatch(
        f"the embeddings were made with {named}; {what} {ours}",
        hint="import into an index of that model (--index NAME --model ...), or embed again with this one",
    )


# ------------------------------------------------------------------------------------- the rows
@dataclass
class _Row:
    path: str
    size: int
    mtime_ns: int
    found: bool
    exists: bool  # the index has a row for this path (it is replaced)
    vector: bytes | None  # an image's; None for a video
    moments: list[tuple[float, bytes]] = field(default_factory=list)
    read: tuple[str | None, Taken | None] = (None, None)


class _Rows:
    """Rows planned, read and committed a chunk at a time; a video's moments may span chunks."""

    def __init__(
        self, store: Store, prefixes: Sequence[tuple[str, str]], keep: bool, read_hash: bool, had_rows: bool
    ) -> None:
        self.store, self.keep, self.read_hash, self.had_rows = store, keep, read_hash, had_rows
        self.prefixes = sorted(prefixes, key=lambda p: len(p[0]), reverse=True)
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}
        self.seen: set[int] = set()  # hash(path) of every path taken (exact check on a hit)
        self.folders: dict[str, str] = {}  # a folder as written -> as resolved
        self.reading: str | None = None  # the video whose moments are being read (None: not a video)
        self.video: _Row | None = None  # its row, unless it is skipped (unchanged, not found)
        from mmcli.media.images import VIDEO_EXTENSIONS, image_extensions

        self.kinds = image_extensions() | VIDEO_EXTENSIONS
        self.pool = ThreadPoolExecutor(max_workers=4)

    def take(self, chunk: Chunk) -> None:
        vectors, ok = unit_rows(chunk.vectors)
        batch: list[_Row] = []
        names: set[str] = set()
        for i, raw in enumerate(chunk.paths):
            moment = chunk.times[i] if chunk.times is not None else None
            path = self._path(raw)
            if path is None:
                continue
            if self.reading is not None and (moment is None or self.reading != path):
                if self.video is not None:
                    batch.append(self.video)
                self.reading = self.video = None
            if not ok[i]:
                self._skip("bad_vector", f"row {chunk.start + i}: {path}")
                continue
            if self.reading is not None:  # the next moment of the video being read
                if self.video is not None:
                    self.video.moments.append((float(moment), vectors[i].tobytes()))  # type: ignore[arg-type]
                continue
            if self._seen(path, names):
                self._skip("duplicates", path)
                continue
            names.add(path)
            row = self._plan(path, None if moment is not None else vectors[i].tobytes())
            if moment is not None:  # a video's first moment: the next rows of this path are its others
                self.reading, self.video = path, row
                if row is not None:
                    row.moments.append((float(moment), vectors[i].tobytes()))
            elif row is not None:
                batch.append(row)
        self._commit(batch)

    def finish(self) -> None:
        if self.video is not None:
            self._commit([self.video])
        self.reading = self.video = None
        self.pool.shutdown()

    def _path(self, raw: str | None) -> str | None:
        """The path as this machine names it, or None (skipped, counted) for a row naming no file here."""
        if not raw:
            return self._skip("no_path", "")
        if _URL.match(raw):
            return self._skip("urls", raw)
        for old, new in self.prefixes:
            if raw == old or raw.startswith(old.rstrip("/") + "/"):
                raw = new + raw[len(old.rstrip("/")) :]
                break
        parent, name = os.path.split(os.path.abspath(raw))
        if parent not in self.folders:
            self.folders[parent] = os.path.realpath(parent)
        path = os.path.join(self.folders[parent], name)
        if os.path.splitext(name)[1].lower() not in self.kinds:
            return self._skip("other_kind", path)
        return path

    def _seen(self, path: str, names: set[str]) -> bool:
        key = hash(path)
        if key not in self.seen:
            self.seen.add(key)
            return False
        return path in names or bool(self.store.rows_under([path]))  # (else another path of that hash)

    def _plan(self, path: str, vector: bytes | None) -> _Row | None:
        import stat

        try:
            st = os.stat(path)
            found = stat.S_ISREG(st.st_mode) and st.st_size > 0
        except (OSError, ValueError):
            found = False
        if not found and not self.keep:
            return self._skip("not_found", path)
        size, mtime = (stat_int(st.st_size), stat_int(st.st_mtime_ns)) if found else (0, 0)
        old = self.store.rows_under([path]).get(path) if self.had_rows else None
        if old is not None and old.status == "ok" and (old.size, old.mtime_ns) == (size, mtime):
            self.counts["unchanged"] += 1
            return None
        return _Row(path, size, mtime, found, old is not None, vector)

    def _skip(self, reason: str, example: str) -> None:
        self.counts[reason] += 1
        self.first.setdefault(reason, example)

    def _commit(self, rows: list[_Row]) -> None:
        from mmcli.media.files import hash_file, read_taken

        if not rows:
            return
        found = [row for row in rows if row.found]
        reads = self.pool.map(hash_file if self.read_hash else read_taken, [r.path for r in found])
        for row, read in zip(found, reads):
            if isinstance(read, OSError) or read is None:
                continue  # (gone or unreadable since its stat: recorded without hash and date)
            row.read = (read.digest, read.taken) if not isinstance(read, Taken) else (None, read)
        with self.store.transaction():
            for row in rows:
                digest, taken = row.read
                if row.vector is not None:
                    self.store.put_ok(row.path, row.size, row.mtime_ns, digest, row.vector, taken)
                else:
                    self.store.put_video(row.path, row.size, row.mtime_ns, digest, row.moments, taken)
                    self.counts["videos"] += 1
                    self.counts["moments"] += len(row.moments)
                self.counts["updated" if row.exists else "added"] += 1
                self.counts["kept"] += not row.found
        fault_point("index.commit")


def unit_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``vectors`` (float32, changed in place) with rows L2-normalised where they are not already (float16
    sources, say; unit float32 rows are kept bit for bit), and which rows are usable (finite, not zero)."""
    import numpy as np

    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    ok = np.isfinite(norms) & (norms > 0)
    fix = ok & (np.abs(norms - 1) > 1e-5)
    vectors[fix] /= norms[fix, None].astype(np.float32)
    return vectors, ok


def _warnings(skipped: tuple[tuple[str, int, str], ...], kept: int) -> tuple[str, ...]:
    notes = []
    for key, n, example in skipped:
        rows = f"{n} row{'s' if n != 1 else ''}"
        first = f" (the first: {_CONTROL.sub(lambda m: repr(m.group())[1:-1], example)})" if example else ""
        if key == "not_found":
            notes.append(
                f"{rows} not imported: {REASONS[key]}{first}; `--path-prefix OLD=NEW` reads them under another "
                "folder, `--keep-not-found` records them anyway"
            )
        else:
            notes.append(f"{rows} not imported: {REASONS[key]}{first}")
    if kept:
        notes.append(
            f"{kept} file{'s' if kept != 1 else ''} not found here recorded under the paths given (searchable; "
            "size and date unknown: a later `mmcli index` of their folder embeds them again if they appear there)"
        )
    return tuple(notes)
