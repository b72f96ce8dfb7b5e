"""Embeddings made elsewhere, read for an import (``mmcli index --from-embeddings PATH``).

Three layouts are recognised:

    mmcli shards      DIR/manifest.json + NNNNN.npy + NNNNN.paths.json (``mmcli embed -o DIR``, see
                      ``shards.py``); the manifest names the model (its canonical spec)
    mmcli file        FILE.npy + FILE.paths.json (``mmcli embed -o FILE.npy``); names no model
    clip-retrieval    DIR/img_emb/img_emb_S.npy + DIR/metadata/metadata_S.parquet (``clip-retrieval
                      inference --output_folder DIR``): one pair per output partition S (zero-padded,
                      numbered from 0, gaps where a partition had nothing), the parquet's rows in the
                      .npy's row order, the file in its ``image_path`` column; float16 rows, L2-normalised.
                      ``text_emb/`` (caption embeddings) is ignored. Names no model.

``open_source`` checks everything that is cheap before a row is written (the layout, each part's shape
and dtype, the row counts of vectors against paths, one dimension throughout); ``read_chunks`` then gives
the rows in order, a chunk at a time (memory holds one chunk of vectors and one part's paths).
Reading parquet needs pyarrow (the ``import`` extra: ``install_command("import")``), imported only for
clip-retrieval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.config import install_command
from mmcli.embedding.shards import MANIFEST, read_manifest
from mmcli.errors import EmbeddingsError, UsageError

if TYPE_CHECKING:
    import numpy as np

MMCLI_SHARDS, MMCLI_FILE, CLIP_RETRIEVAL = "mmcli shards", "mmcli file", "clip-retrieval"
PYARROW_HINT = f"{install_command('import')}   (pyarrow: it reads clip-retrieval's metadata)"
_PART = re.compile(r"^img_emb_(\d+)\.npy$")


@dataclass(frozen=True)
class Part:
    """One file of vectors and the file that names their rows' files."""

    vectors: Path
    keys: Path  # .paths.json, or a .parquet whose ``image_path`` column names the files
    rows: int


@dataclass(frozen=True)
class EmbeddingSource:
    kind: str  # MMCLI_SHARDS, MMCLI_FILE or CLIP_RETRIEVAL
    path: Path
    model: str | None  # the model the source names (mmcli's canonical spec); None: it names none
    dim: int
    rows: int
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows: ``start`` is the first one's number in the whole source."""

    start: int
    vectors: np.ndarray  # float32 (rows, dim), as stored (not normalised again here)
    paths: list[str | None]  # None: a row whose metadata names no file
    times: list[float | None] | None  # a video moment's time per row (mmcli), None for images


def open_source(path: Path) -> EmbeddingSource:
    """What ``path`` holds, checked; ``UsageError`` for a layout that is none of the three,
    ``EmbeddingsError`` for one whose parts do not fit together."""
    if not path.exists():
        raise UsageError(f"--from-embeddings {path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".npy":
            raise UsageError(
                f"--from-embeddings {path}: not a .npy file or a folder of embeddings",
                hint="give the file or folder `mmcli embed -o` wrote, or clip-retrieval's output folder",
            )
        part = _mmcli_part(path, path.with_name(path.stem + ".paths.json"), None)
        return EmbeddingSource(MMCLI_FILE, path, None, _dim(path), part.rows, (part,))
    if (path / MANIFEST).is_file():
        return _mmcli_shards(path)
    if (path / "img_emb").is_dir() or (path / "metadata").is_dir():
        return _clip_retrieval(path)
    why = "no manifest.json: the `mmcli embed` that wrote it did not finish" if any(path.glob("*.paths.json")) else ""
    raise UsageError(
        f"--from-embeddings {path}: neither mmcli's embeddings (manifest.json) nor clip-retrieval's output "
        f"(img_emb/ + metadata/){': ' + why if why else ''}",
        hint="give the folder `mmcli embed -o DIR` wrote, or clip-retrieval inference's --output_folder",
    )


def read_chunks(source: EmbeddingSource, rows: int) -> Iterator[Chunk]:
    """Every row of ``source`` in order, ``rows`` at a time (never across two parts)."""
    import numpy as np

    start = 0
    for part in source.parts:
        paths, times = _keys(source, part)
        vectors = _load(part.vectors)
        if len(paths) != part.rows or len(vectors) != part.rows:
            raise EmbeddingsError(f"{part.vectors.name} or {part.keys.name} changed during the import")
        for i in range(0, part.rows, rows):
            block = np.array(vectors[i : i + rows], dtype=np.float32)  # a copy: the caller may change it
            yield Chunk(start + i, block, paths[i : i + rows], None if times is None else times[i : i + rows])
        start += part.rows


# ----------------------------------------------------------------------------------------- mmcli
def _mmcli_shards(folder: Path) -> EmbeddingSource:
    manifest = read_manifest(folder)
    parts, dims = [], set()
    for i, shard in enumerate(manifest.get("shards") or []):
        names = [str(shard.get(key, "")) if isinstance(shard, dict) else "" for key in ("vectors", "paths")]
        if any(not n or "/" in n or "\\" in n or n.startswith(".") for n in names):
            raise EmbeddingsError(f"{folder / MANIFEST}: shard {i} names no file of this folder")
        part = _mmcli_part(folder / names[0], folder / names[1], shard.get("rows"))
        parts.append(part)
        dims.add(_dim(part.vectors))
    rows = sum(p.rows for p in parts)
    if manifest.get("rows") not in (None, rows):
        raise EmbeddingsError(f"{folder / MANIFEST} counts {manifest['rows']} rows; its shards hold {rows}")
    dim = _one_dim(folder, dims, manifest.get("dim"))
    model = manifest.get("model")
    return EmbeddingSource(MMCLI_SHARDS, folder, str(model) if model else None, dim, rows, tuple(parts))


def _mmcli_part(vectors: Path, paths: Path, rows: object) -> Part:
    n = _rows(vectors)
    try:
        meta = json.loads(paths.read_bytes().decode("utf-8", "surrogateescape"))
    except FileNotFoundError:
        raise EmbeddingsError(f"{vectors} has no {paths.name} beside it (the files of its rows)") from None
    except (OSError, ValueError) as exc:
        raise EmbeddingsError(f"{paths}: unreadable ({exc})") from None
    kind, _, version = str(meta.get("format", "") if isinstance(meta, dict) else "").partition("/")
    if kind != "mmcli-embeddings" or not isinstance(meta.get("paths"), list):
        raise EmbeddingsError(f"{paths}: not the paths of mmcli's embeddings")
    if version != "1":
        raise UsageError(f"{paths} was written by a newer mmcli ({meta['format']})", hint="upgrade mmcli")
    times = meta.get("times")
    if len(meta["paths"]) != n or rows not in (None, n) or (times is not None and len(times) != n):
        raise EmbeddingsError(f"{vectors.name} holds {n} rows but {paths.name} names {len(meta['paths'])} files")
    return Part(vectors, paths, n)


# -------------------------------------------------------------------------------- clip-retrieval
def _clip_retrieval(folder: Path) -> EmbeddingSource:
    pq = _pyarrow_parquet()
    vectors = {m.group(1): p for p in (folder / "img_emb").glob("img_emb_*.npy") if (m := _PART.match(p.name))}
    metadata = {p.stem.removeprefix("metadata_"): p for p in (folder / "metadata").glob("metadata_*.parquet")}
    if not vectors:
        raise EmbeddingsError(
            f"{folder}: clip-retrieval's output without image embeddings (no img_emb/img_emb_*.npy)",
            hint="run clip-retrieval inference with --enable_image True (the default)",
        )
    for name in sorted(set(vectors) ^ set(metadata), key=int):
        have, lacks = ("img_emb", "metadata") if name in vectors else ("metadata", "img_emb")
        raise EmbeddingsError(f"{folder}: partition {name} has {have} but no {lacks} (an unfinished run?)")
    parts, dims = [], set()
    for name in sorted(vectors, key=int):
        n = _rows(vectors[name])
        try:
            info = pq.ParquetFile(metadata[name])
            columns, count = info.schema_arrow.names, info.metadata.num_rows
        except Exception as exc:  # noqa: BLE001  pyarrow's own errors: a foreign, maybe truncated file
            raise EmbeddingsError(f"{metadata[name]}: unreadable parquet ({exc})") from None
        if "image_path" not in columns:
            raise EmbeddingsError(f"{metadata[name]} has no image_path column (its columns: {', '.join(columns)})")
        if count != n:
            raise EmbeddingsError(f"{vectors[name].name} holds {n} rows but {metadata[name].name} has {count}")
        parts.append(Part(vectors[name], metadata[name], n))
        dims.add(_dim(vectors[name]))
    rows = sum(p.rows for p in parts)
    return EmbeddingSource(CLIP_RETRIEVAL, folder, None, _one_dim(folder, dims, None), rows, tuple(parts))


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("clip-retrieval's metadata (.parquet files) needs pyarrow", hint=PYARROW_HINT) from None
    return pq


def _keys(source: EmbeddingSource, part: Part) -> tuple[list[str | None], list[float | None] | None]:
    if source.kind != CLIP_RETRIEVAL:
        meta = json.loads(part.keys.read_bytes().decode("utf-8", "surrogateescape"))
        return [p if isinstance(p, str) else None for p in meta["paths"]], meta.get("times")
    column = _pyarrow_parquet().read_table(part.keys, columns=["image_path"]).column(0).to_pylist()
    return [p if isinstance(p, str) else None for p in column], None


# ------------------------------------------------------------------------------------- vectors
def _load(path: Path) -> np.ndarray:
    import numpy as np

    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EmbeddingsError(f"{path}: not a readable .npy file ({exc})") from None


def _rows(path: Path) -> int:
    array = _load(path)
    if array.ndim != 2 or array.dtype.kind != "f" or array.shape[1] == 0:
        raise EmbeddingsError(f"{path}: {array.dtype} array of shape {array.shape}, not rows of float vectors")
    return int(array.shape[0])


def _dim(path: Path) -> int:
    return int(_load(path).shape[1])


def _one_dim(folder: Path, dims: set[int], stated: object) -> int:
    if not dims:
        raise EmbeddingsError(f"{folder} holds no embeddings")
    if len(dims) > 1 or stated not in (None, *dims):
        raise EmbeddingsError(f"{folder}: parts of different dimensions ({', '.join(map(str, sorted(dims)))})")
    return dims.pop()
