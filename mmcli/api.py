"""The Python API: what the command line does, from your own code.

    import mmcli

    index = mmcli.Index("photos")                   # a name under $MMCLI_HOME/indexes, or a folder path
    index.add(["~/Pictures"], model="mmcli-tiny")   # as `mmcli index`; returns the run's IndexSummary
    index.add_embeddings("photos-emb/")             # as `mmcli index --from-embeddings`: an ImportSummary
    for hit in index.search("a red car", k=5):      # Hit: .rank .path .score .time .taken .taken_source
        print(hit.score, hit.path)
    results = mmcli.classify(["a.jpg"], labels=["cat", "dog"], model="mmcli-tiny")
    results[0].labels[0].label                      # Classification: .path, .labels (.label, .score) best first
    mmcli.ocr(["receipt.jpg"])[0].text              # PictureText: .path, .text, .lines (.text, .score, .box)

Errors are ``mmcli.MmcliError`` subclasses (``UsageError`` for bad arguments, ``IndexMissing``, ...), the
same the CLI turns into ``mmcli: error:`` lines; warnings for people (a query longer than the model's
context, say) are Python warnings (``MmcliWarning``). Nothing is printed. The model and the index are
loaded on first need and kept by the ``Index`` object, so repeated searches from one process are warm.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmcli.errors import ImageLoadError, MmcliError, UsageError

if TYPE_CHECKING:
    from mmcli.engine.keywords import SidecarWriter
    from mmcli.engine.local import LocalEngine
    from mmcli.index.imports import ImportSummary
    from mmcli.index.sync import IndexSummary
    from mmcli.queries import ClassifyRequest
    from mmcli.results import Classification, FileFailure, Hit, IndexInfo, PictureText, ProgressFn, Segment
    from mmcli.xmp.keywords import SidecarChange

PathLike = str | os.PathLike[str]


class MmcliWarning(UserWarning):
    """What the CLI would say on stderr about a result that is still given (a truncated query, say)."""


def _warn(messages: Iterable[str]) -> None:
    for message in messages:
        warnings.warn(message, MmcliWarning, stacklevel=3)


class Index:
    """One index: ``name`` is a name under ``$MMCLI_HOME/indexes`` (letters, digits, ``.``, ``_``, ``-``),
    or a folder path (a ``Path``, or text with a path separator or starting with ``.`` or ``~``)."""

    def __init__(self, name: PathLike = "default") -> None:
        from mmcli.index.open import index_folder

        if isinstance(name, os.PathLike):
            self.folder = Path(name).expanduser().resolve()
        else:
            self.folder = index_folder(name)
        self._engine: LocalEngine | None = None

    def __repr__(self) -> str:
        return f"mmcli.Index({str(self.folder)!r})"

    @property
    def exists(self) -> bool:
        """Has ``add`` made this index (it holds a database)?"""
        return (self.folder / "index.sqlite").exists()

    def add(
        self,
        paths: PathLike | Sequence[PathLike],
        *,
        model: str | None = None,
        weights: PathLike | None = None,
        device: str = "auto",
        precision: str = "auto",
        prune: bool = False,
        exclude: Sequence[str] = (),
        include_hidden: bool = False,
        batch_size: int | None = None,
        workers: int | None = None,
        every: float = 2.0,
        max_frames: int = 2000,
        on_progress: ProgressFn | None = None,
    ) -> IndexSummary:
        """Bring the index up to date with ``paths`` (folders and files), as `mmcli index` does: new and
        changed files embedded, renamed and copied ones reused without the model, vanished ones kept as
        missing (``prune=True`` drops them). ``model``: for a new index (default: the configured model);
        an existing index keeps its own. Files that cannot be read are counted in ``.failed``."""
        from mmcli.index.job import IndexJob
        from mmcli.index.sync import run_index

        roots = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not roots:
            raise UsageError("Index.add: no paths given")
        job = IndexJob(
            roots,
            model=model,
            weights=weights,  # type: ignore[arg-type]
            device=device,
            precision=precision,
            include_hidden=include_hidden,
            exclude=exclude,
            batch_size=batch_size,
            workers=workers,
            prune=prune,
            every=every,
            max_frames=max_frames,
            on_progress=on_progress,
        )
        summary = run_index(self.folder, job)
        _warn(summary.warnings)
        return summary

    def add_embeddings(
        self,
        source: PathLike,
        *,
        model: str | None = None,
        weights: PathLike | None = None,
        path_prefix: Mapping[str, PathLike] | Sequence[str] = (),
        keep_not_found: bool = False,
        read_hash: bool = False,
        batch_rows: int = 10_000,
        on_progress: ProgressFn | None = None,
    ) -> ImportSummary:
        """Record vectors made elsewhere, as `mmcli index --from-embeddings SOURCE`: the folder (or .npy)
        `mmcli embed -o` wrote, or clip-retrieval's output folder (which names no model: give ``model``
        for a new index). ``path_prefix``: ``{OLD: NEW}`` (or ``["OLD=NEW"]``), folders the files were
        embedded under and where they are here; files not found are skipped and counted unless
        ``keep_not_found``; ``read_hash`` reads each file whole for its content hash. ``batch_rows``:
        rows per transaction (a killed import loses at most that many; the same call again resumes)."""
        from mmcli.index.imports import import_embeddings, parse_prefix

        pairs = (
            [parse_prefix(f"{old}={os.fspath(new)}") for old, new in path_prefix.items()]
            if isinstance(path_prefix, Mapping)
            else [parse_prefix(text) for text in path_prefix]
        )
        summary = import_embeddings(
            self.folder, source, model=model, weights=os.fspath(weights) if weights is not None else None,
            path_prefix=pairs, keep_not_found=keep_not_found, read_hash=read_hash, batch_rows=batch_rows,
            on_progress=on_progress,
        )  # fmt: skip
        _warn(summary.warnings)
        return summary

    def search(
        self,
        query: str | None = None,
        *,
        k: int = 10,
        image: PathLike | None = None,
        add: Sequence[str] = (),
        sub: Sequence[str] = (),
        after: str | None = None,
        before: str | None = None,
        within: PathLike | None = None,
        threshold: float | Literal["auto"] | None = None,
        sort: Literal["score", "date", "-date"] = "score",
        all_moments: bool = False,
        exact: bool = False,
        **more: Any,
    ) -> list[Hit]:
        """The ``k`` best matches of a text ``query``, an example ``image``, or both, as `mmcli search`:
        ``add``/``sub`` terms (``"[WEIGHT:]TEXT-OR-IMAGE-PATH"``), dates ``after``/``before`` (``YYYY``,
        ``YYYY-MM``, ``YYYY-MM-DD`` or ISO date-times; ``before`` includes all of its day, month or year),
        ``within`` a folder, ``threshold`` a minimum score (or "auto"), ``sort`` by score or date. A video
        gives one hit (its best moment, ``.time`` in seconds) unless ``all_moments``. ``more``: any other
        option of `mmcli search` by its name there (``rerank="vit-l-14"``, ``rerank_k=50``, ``explain=True``).
        Values are checked as the command line checks them: a ``UsageError`` for one out of range."""
        from mmcli.queries.build import search_request

        request = search_request(
            query=query, image=image, add=add, sub=sub, after=after, before=before, within=within, top_k=k,
            threshold=threshold, sort=sort, all_moments=all_moments, exact=exact, **more,
        )  # fmt: skip
        result = self._local().search(request)
        _warn(result.warnings)
        return list(result.hits)

    def info(self) -> IndexInfo:
        """What `mmcli info` shows: model, counts, size, dates."""
        from mmcli.index.open import index_info

        return index_info(self.folder)

    def _local(self) -> LocalEngine:
        from mmcli.engine.local import LocalEngine

        if self._engine is None:
            self._engine = LocalEngine(self.folder, warm=True)  # kept: later searches reuse the model
        return self._engine


def classify(
    paths: PathLike | Sequence[PathLike],
    labels: Sequence[str],
    *,
    model: str | None = None,
    weights: PathLike | None = None,
    templates: Sequence[str] | str = "default",
    multi_label: bool = False,
    top_k: int | None = None,
    threshold: float | None = None,
    device: str = "auto",
    precision: str = "auto",
    errors: Literal["raise", "skip"] = "raise",
    every: float = 2.0,
    max_frames: int = 2000,
    write_xmp: bool | Literal["darktable", "adobe"] = False,
    xmp_prefix: str = "mmcli|label",
    xmp_replace: bool = False,
) -> list[Classification | Segment]:
    """Zero-shot classify images (files, or folders walked) against ``labels``, as `mmcli classify`:
    one ``Classification`` per image, in input order, its ``.labels`` best first (a softmax over the
    labels, or with ``multi_label`` an independent score each, kept above ``threshold``, default 0.5).
    A video gives its timeline: ``Segment`` items (``.start``, ``.end``, ``.label``, ``.score``).
    ``templates``: a set's name (``"default"``, ``"single"``, ...) or prompt templates with ``{}``.
    ``errors="raise"`` (default) raises ``ImageLoadError`` naming the files that could not be read,
    after the others are done; ``"skip"`` leaves them out. ``write_xmp``: the labels kept written as
    keywords into each picture's XMP sidecar, as `classify --write-xmp` (``True`` or ``"darktable"``:
    ``photo.jpg.xmp``; ``"adobe"``: ``photo.xmp``), under ``xmp_prefix``; ``xmp_replace`` takes out
    our keywords this run does not give. A sidecar left as it was is an ``MmcliWarning``."""
    from mmcli.engine.local import LocalEngine
    from mmcli.media.images import expand_inputs
    from mmcli.queries.build import classify_request
    from mmcli.results import FileFailure

    if errors not in ("raise", "skip"):
        raise UsageError(f"errors={errors!r}: use 'raise' or 'skip'")
    inputs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = [os.fspath(p) for p in expand_inputs([os.fspath(i) for i in inputs], videos=True)]
    if not files:
        raise UsageError("classify: no image files in the paths given")
    request = classify_request(
        paths=files, labels=labels, templates=templates, multi_label=multi_label, top_k=top_k, threshold=threshold,
        every=every, max_frames=max_frames,
    )  # fmt: skip
    sidecars = _sidecar_writer(request, write_xmp, xmp_prefix, xmp_replace)
    engine = LocalEngine(None, model, os.fspath(weights) if weights is not None else None, device, precision)
    run = engine.classify(request)
    _warn(run.warnings)
    results: list[Classification | Segment] = []
    failures: list[FileFailure] = []
    for item in run.items:
        if isinstance(item, FileFailure):
            failures.append(item)
        else:
            results.append(item)
        if sidecars is not None:
            _warn(_left_as_they_were(sidecars.add(item)))
    if sidecars is not None:
        _warn(_left_as_they_were(sidecars.finish()))
    if failures and errors == "raise":
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ImageLoadError(first.path, first.reason + more)
    return results


def _sidecar_writer(
    request: ClassifyRequest, write_xmp: bool | str, prefix: str, replace: bool
) -> SidecarWriter | None:
    from mmcli.engine.keywords import SidecarWriter, XmpOptions, check_labels

    if write_xmp is False:
        if replace:
            raise UsageError("classify: xmp_replace=True needs write_xmp")
        return None
    check_labels(request.labels)
    style = "darktable" if write_xmp is True else str(write_xmp)
    return SidecarWriter(request, XmpOptions(style, prefix, replace))


def _left_as_they_were(changes: list[SidecarChange]) -> list[str]:
    return [f"sidecar {c.sidecar} left as it was: {c.reason}" for c in changes if c.state == "skipped"]


def write_keywords(
    path: PathLike,
    keywords: Sequence[str],
    *,
    style: Literal["darktable", "adobe"] = "darktable",
    prefix: str = "mmcli|label",
    replace: bool = False,
    dry_run: bool = False,
) -> SidecarChange:
    """Put ``keywords`` into the XMP sidecar of the picture at ``path``, as `classify --write-xmp` does
    with its labels: ``dc:subject`` and ``lr:hierarchicalSubject`` under ``prefix``, everything else in
    the sidecar kept byte for byte, nothing added twice; ``replace`` takes out our keywords (under
    ``prefix``) not given now. Returns what it did (``.state``: new, changed, unchanged, skipped, with
    ``.reason``); ``dry_run`` writes nothing."""
    from mmcli.xmp.keywords import write_keywords as write

    return write(os.fspath(path), list(keywords), style=style, prefix=prefix, replace=replace, dry_run=dry_run)


def ocr(
    paths: PathLike | Sequence[PathLike],
    *,
    errors: Literal["raise", "skip"] = "raise",
    workers: int = 1,
    max_pixels: int | None = None,
) -> list[PictureText]:
    """The text in pictures (files, or folders walked), as `mmcli ocr`: one ``PictureText`` per picture, in
    input order: ``.text`` (its lines joined by newlines, "" for none) and ``.lines`` (``.text``, ``.score``,
    ``.box``: four corners in pixels of the upright picture). Needs the OCR extra (``mmcli-clip[ocr]``;
    ``OcrUnavailable`` without it). ``workers`` > 1 reads in that many processes. ``errors="raise"``
    (default) raises ``ImageLoadError`` naming the files that could not be read, after the others are
    done; ``"skip"`` leaves them out."""
    from mmcli.config import settings
    from mmcli.media.images import expand_inputs
    from mmcli.media.ocr.reader import read_all
    from mmcli.results import FileFailure

    if errors not in ("raise", "skip"):
        raise UsageError(f"errors={errors!r}: use 'raise' or 'skip'")
    inputs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = [os.fspath(p) for p in expand_inputs([os.fspath(i) for i in inputs])]
    if not files:
        raise UsageError("ocr: no image files in the paths given")
    limit = max_pixels if max_pixels is not None else settings().max_pixels
    results: list[PictureText] = []
    failures: list[FileFailure] = []
    for item in read_all(files, limit, workers=workers):
        if isinstance(item, FileFailure):
            failures.append(item)
        else:
            results.append(item)
    if failures and errors == "raise":
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise ImageLoadError(first.path, first.reason + more)
    return results


__all__ = ["Index", "MmcliError", "MmcliWarning", "classify", "ocr", "write_keywords"]
