"""One interface for the work behind ``search`` and ``classify``: in this process, in the resident
helper, or in a server.

``LocalEngine`` runs it here: the model is loaded on first need (a cached query needs none), the
index is opened per call. ``mmcli serve`` and the resident helper keep one LocalEngine warm, behind
HTTP and a Unix socket; ``mmcli.serve.client.RemoteEngine`` and ``mmcli.helper.engine.HelperEngine``
talk to them with the same methods (``mmcli.cli.engines.choose_engine`` picks one, once, for a command).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mmcli.queries import ClassifyRequest, SearchRequest
from mmcli.results import Classification, FileFailure, Health, ProgressFn, SearchResult, Segment

if TYPE_CHECKING:
    from mmcli.models import Encoder, ModelSpec
    from mmcli.models.onnx_towers import OnnxImageEncoder
    from mmcli.models.spec import TextEncoder


@dataclass(frozen=True)
class ClassifyRun:
    """Warnings about the labels (known before any image), then results in input order as they come."""

    warnings: tuple[str, ...]
    items: Iterator[Classification | Segment | FileFailure]  # Segments: the timeline of a video


class Unanswered(Exception):
    """An engine elsewhere (a server, the resident helper) cannot answer this call, and nothing was done
    there that the caller must know of: the caller does the work in this process instead
    (``mmcli.cli.engines.Fallback``). ``said``: what people are told of it (nothing when it is routine)."""

    def __init__(self, why: str, said: tuple[str, ...] = ()) -> None:
        super().__init__(why)
        self.said = said


class Engine(Protocol):
    def search(self, request: SearchRequest) -> SearchResult: ...

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun: ...

    def health(self) -> Health: ...


class LocalEngine:
    """Search and classify in this process.

    ``index``: the index searches use; its model is the model (unless ``model`` names another,
    which is an error). Without an index, ``model`` or the default. ``warm``: keep the FAISS index
    in memory between calls and never write it (the server); otherwise a rebuilt FAISS file is saved.
    """

    def __init__(
        self,
        index: Path | None = None,
        model: str | None = None,
        weights: str | os.PathLike[str] | None = None,
        device: str = "auto",
        precision: str = "auto",
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        warm: bool = False,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.on_note = on_note  # for people: a stage that takes a while (exporting a tower)
        self.index = index
        self.model, self.weights = model, weights
        self.device, self.precision = device, precision
        self.batch_size, self.workers, self.warm = batch_size, workers, warm
        self._spec: ModelSpec | None = None
        self._encoder: Encoder | None = None
        self._text: TextEncoder | None = None
        self._image: OnnxImageEncoder | None = None
        self._image_tried = False
        self.notes: list[str] = []  # for people: said once with the next result
        self._said: set[str] = set()  # (each note once per engine: a server says it to its first request)
        self._faiss: Any = None
        self._generation = -1
        self.served = {"search": 0, "classify": 0}
        self._rerankers: dict[tuple[str | None, str | None], LocalEngine] = {}

    # --------------------------------------------------------------------------------- the model
    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            if self.index is not None and (self.index / "index.sqlite").exists():
                from mmcli.index.open import model_spec_for, open_index

                store = open_index(self.index)
                try:
                    self._spec = model_spec_for(store.meta(), self.model, self.weights)
                finally:
                    store.close()
            else:
                from mmcli.models import parse_model_spec

                self._spec = parse_model_spec(self.model, self.weights)
        return self._spec

    def encoder(self) -> Encoder:
        if self._encoder is None:
            from mmcli.models import load_encoder

            self._encoder = load_encoder(self.spec, device=self.device, precision=self.precision)
        return self._encoder

    @property
    def fingerprint(self) -> str:
        from mmcli.models import model_fingerprint

        return model_fingerprint(self.spec, (self.device, self.precision))

    def image_encoder(self, images: int) -> Encoder | OnnxImageEncoder:
        """What embeds ``images`` images: for a few (``SMALL_JOB``) on a CPU in fp32 or auto precision, the
        ONNX image tower (no torch import: most of a small job's time); else the torch model (bf16
        batches, the GPU), which is faster once loaded. (The choice does not depend on what is loaded
        already, so a server and a command give the same numbers for the same job.)"""
        from mmcli.models.onnx_towers import SMALL_JOB, cpu_fp32_ok

        if images > SMALL_JOB or not cpu_fp32_ok(self.device, self.precision):
            return self.encoder()
        if self._image is None and not self._image_tried:
            from mmcli.models.onnx_towers import OnnxImageEncoder
            from mmcli.models.towers import open_tower

            self._image_tried = True
            opened = open_tower(self.spec, "image", self._encoder, warm=self.warm, on_start=self.on_note)
            self._say(opened.note)
            self._image = opened.encoder if isinstance(opened.encoder, OnnxImageEncoder) else None
        return self._image if self._image is not None else self.encoder()

    def text_encoder(self) -> TextEncoder:
        """What embeds texts: the model's ONNX text tower (exported on first need; no torch in the
        process from then on), or the torch model where that cannot be had (said once, in a note)."""
        if self._text is None:
            from mmcli.models.towers import open_tower

            opened = open_tower(self.spec, "text", self._encoder, warm=self.warm, on_start=self.on_note)
            self._say(opened.note)
            self._text = opened.encoder if opened.encoder is not None else self.encoder()  # type: ignore[assignment]
        return self._text

    def write_towers(self, on_start: Callable[[str], None] | None = None) -> tuple[str, ...]:
        """After a job that loaded the torch model anyway: export the towers searches need that are
        missing, so the next search is as fast as any other. Notes for what failed (tried again later);
        ``on_start`` hears, for people, when an export begins."""
        if self._encoder is None:
            return ()
        from mmcli.models.towers import ensure_towers, towers_used

        return ensure_towers(self.spec, self._encoder, towers_used(self.device, self.precision), on_start)

    def _say(self, note: str | None) -> None:
        if note and note not in self._said:
            self._said.add(note)
            self.notes.append(note)

    @property
    def text_fingerprint(self) -> str:
        """The text cache's key for this engine's text vectors, known without loading anything."""
        if self._text is not None:
            return self._text.fingerprint
        from mmcli.models.onnx_towers import onnx_fingerprint, runtime_available
        from mmcli.models.tower_files import tower_state

        if runtime_available() and tower_state(self.spec).refused is None:
            return onnx_fingerprint(self.spec)
        return self.fingerprint

    def _notes(self) -> tuple[str, ...]:
        said, self.notes = tuple(self.notes), []
        return said

    # ------------------------------------------------------------------------------------- work
    def search(self, request: SearchRequest) -> SearchResult:
        from mmcli.engine.answer import answer
        from mmcli.engine.search import undated_notes
        from mmcli.errors import UsageError
        from mmcli.index.open import open_index

        if self.index is None:
            raise UsageError("no index to search")
        self.served["search"] += 1
        store = open_index(self.index)
        try:
            spec = self.spec  # noqa: F841  (checks --model against the index before any work)
            notes: list[str] = []
            with store.snapshot():  # vectors and paths from one state of the index, even mid-swap
                faiss_index = self._vectors(store) if request.within is None and self._faiss_pays(store) else None
                found = answer(store, faiss_index, request, self, self.index, lambda: self.reranker(request), notes)
                notes += undated_notes(store, request)
            for second in self._rerankers.values():
                notes += second._notes()
            return SearchResult(found.hits, self._notes() + tuple(notes), found.threshold, found.cutoff)
        finally:
            store.close()

    def reranker(self, request: SearchRequest) -> LocalEngine:
        """The engine of ``request.rerank``, kept while the next search asks for the same model (a server holds
        one second model at a time)."""
        key = (request.rerank, request.rerank_weights)
        if key not in self._rerankers:
            self._rerankers.clear()
            second = LocalEngine(
                None, request.rerank, request.rerank_weights, self.device, self.precision,
                batch_size=self.batch_size, workers=self.workers,
            )  # fmt: skip
            second.spec  # noqa: B018  (an unknown model or a missing file: an error before any work)
            self._rerankers[key] = second
        return self._rerankers[key]

    def _faiss_pays(self, store: Any) -> bool:
        """FAISS, or numpy over the vectors read from SQLite (exact either way)? A warm engine keeps FAISS
        in memory; a command of its own pays for importing FAISS and reading its file, which costs more
        than numpy's brute force up to ``COLD_BRUTE_MAX`` vectors."""
        from mmcli.engine.search import COLD_BRUTE_MAX

        return self.warm or store.vector_count() > COLD_BRUTE_MAX

    def _vectors(self, store: Any) -> Any:
        from mmcli.index import vectors

        if not self.warm:
            return vectors.load_or_rebuild(store, write=True)
        generation = store.generation()
        if self._faiss is None or generation != self._generation:
            self._faiss = vectors.load_or_rebuild(store, write=False)
            self._generation = generation
        return self._faiss

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun:
        from mmcli.embedding.textcache import TextCache
        from mmcli.engine.classify import build_label_set, classify_stream

        self.served["classify"] += 1
        label_set = build_label_set(self.text_encoder(), request.labels, request.templates, TextCache(), on_labels)
        encoder = self.image_encoder(len(request.paths))
        items = classify_stream(
            encoder,
            request.paths,
            label_set,
            multi_label=request.multi_label,
            top_k=request.top_k,
            threshold=request.threshold,
            batch_size=self.batch_size,
            workers=self.workers,
            max_pixels=request.max_pixels,
            on_progress=on_progress,
            every=request.every,
            max_frames=request.max_frames,
        )
        if not self.warm and encoder is self._encoder:  # torch embedded the images: the towers, after them
            items = self._then_write_towers(items)
        return ClassifyRun(self._notes() + label_set.warnings, items)

    def _then_write_towers(self, items: Iterator[Any]) -> Iterator[Any]:
        yield from items
        self.write_towers(self.on_note)  # (a failure is tried again by the next command that loads the model)

    def health(self) -> Health:
        from mmcli import __version__

        return Health("ok", self.spec.name, str(self.index or ""), os.getpid(), __version__, dict(self.served))
