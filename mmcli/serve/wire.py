"""The HTTP wire format of ``mmcli serve``: pydantic models shared by the server and the client.

FastAPI validates request bodies against them (a wrong type is a 422 naming the field) and puts
them in the OpenAPI schema at ``/openapi.json``. The client builds them from the same typed
requests (``mmcli.queries``) a local engine takes, so a search means the same thing either way.

Paths travel as JSON strings; names that are not valid UTF-8 travel as ``\\udcXX`` escapes
(``ensure_ascii`` JSON) and round-trip.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from mmcli.config import DEFAULT_MAX_PIXELS
from mmcli.media.taken import as_text, period
from mmcli.queries import (
    DEFAULT_TEMPLATE,
    RERANK_K,
    WEIGHT_RE,
    ClassifyRequest,
    SearchRequest,
    Term,
    Visible,
    build_terms,
    looks_like_path,
)
from mmcli.results import Classification, FileFailure, Health, Hit, LabelScore, SearchResult, Segment, TermScore

MAX_PATHS = 10_000  # per /classify request
MAX_LABELS = 10_000
Text = Annotated[StrictStr, Field(max_length=100_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TermBody(_Body):
    """One query term: a text, or an absolute image path on the server's machine; ``time`` with a
    video's path: its moment at that second (a hit's ``time``)."""

    weight: float = Field(1.0, allow_inf_nan=False, ge=-1e6, le=1e6)
    text: Text | None = None
    image: Text | None = None
    time: float | None = Field(None, allow_inf_nan=False, ge=0, le=1e9)

    @model_validator(mode="after")
    def _one_of(self) -> TermBody:
        if (self.text is None) == (self.image is None):
            raise ValueError("a term has exactly one of text and image")
        if self.time is not None and self.image is None:
            raise ValueError("time goes with an image (a video's path)")
        return self


class SearchBody(_Body):
    """POST /search. ``terms`` is what mmcli sends; ``query``/``image``/``add``/``sub`` are the
    same shorthand as the command line, for curl (image paths: absolute, on the server's machine).
    ``after``/``before``: the dates `--after`/`--before` take (YYYY, YYYY-MM, YYYY-MM-DD, an ISO date
    and time), read by the same parser: taken at or after the start of ``after``, before the end of
    ``before``. ``sort``: "score", "date" (oldest first) or "-date" (newest first). ``threshold``: a
    cosine, or "auto" (chosen per query; the reply's ``threshold`` says which). ``rerank``: a second
    model (spec or alias; ``rerank_weights``: its checkpoint, a file under the allowed roots) re-scores the
    best ``rerank_k`` hits. ``explain``: each hit carries each term's part in its score."""

    query: Text | None = None
    image: Text | None = None
    add: list[Text] = Field(default_factory=list, max_length=100)
    sub: list[Text] = Field(default_factory=list, max_length=100)
    terms: list[TermBody] = Field(default_factory=list, max_length=100)
    top_k: int = Field(10, ge=1, le=10_000)
    threshold: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)] | Literal["auto"] | None = None
    within: Text | None = None
    exact: bool = False
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, le=10**12)
    after: Annotated[StrictStr, Field(max_length=100)] | None = None
    before: Annotated[StrictStr, Field(max_length=100)] | None = None
    sort: Literal["score", "date", "-date"] = "score"
    all_moments: bool = False
    rerank: Annotated[StrictStr, Field(max_length=1000)] | None = None
    rerank_weights: Annotated[StrictStr, Field(max_length=4096)] | None = None
    rerank_k: int = Field(RERANK_K, ge=1, le=10_000)
    explain: bool = False

    @classmethod
    def of(cls, request: SearchRequest) -> SearchBody:
        terms = [
            TermBody(weight=t.weight, time=t.time, **{"image" if t.is_image else "text": t.value})
            for t in request.terms
        ]
        return cls(
            terms=terms,
            top_k=request.top_k,
            threshold=request.threshold,
            within=request.within,
            exact=request.exact,
            max_pixels=request.max_pixels,
            after=None if request.after is None else as_text(request.after),  # instants: read back exactly
            before=None if request.before is None else as_text(request.before),
            sort=request.sort,
            all_moments=request.all_moments,
            rerank=request.rerank,
            rerank_weights=request.rerank_weights,
            rerank_k=request.rerank_k,
            explain=request.explain,
        )

    def named_files(self) -> list[str]:
        """Image paths the body names, whether or not they exist (checked before any is looked at):
        images, and ``add``/``sub`` terms that look like paths, absolute or not (a relative one as the
        server would read it), with or without their weight."""
        found = [t.image for t in self.terms if t.image is not None]
        found += [self.image] if self.image is not None else []
        for raw in [*self.add, *self.sub]:
            m = WEIGHT_RE.match(raw)
            for value in (raw, m.group(2)) if m else (raw,):
                if not value.startswith("text:") and (os.path.isabs(value) or looks_like_path(value)):
                    found.append(value if "\0" in value else os.path.abspath(value))
        found += [self.rerank_weights] if self.rerank_weights is not None else []  # model files, too
        found += [self.rerank[10:]] if self.rerank is not None and self.rerank.startswith("local-dir:") else []
        return found

    def request(self, visible: Visible | None = None) -> SearchRequest:
        """The search; ``visible``: the paths the server may look at (others are never looked up, so
        the answer is the same whether or not they exist)."""
        seen = visible or (lambda _path: True)
        terms = [
            Term(t.weight, t.image if t.image is not None else t.text or "", t.image is not None, t.time)
            for t in self.terms
        ]
        if self.query is not None or self.image is not None or self.add or self.sub:
            terms = [*build_terms(self.query, self.image, self.add, self.sub, seen), *terms]
        if not terms:
            build_terms(None, None)  # raises "nothing to search for"
        after, before = period(self.after, self.before)
        return SearchRequest(
            tuple(terms),
            self.top_k,
            self.threshold,
            SearchRequest.folder(self.within, seen),
            self.exact,
            self.max_pixels,
            after,
            before,
            self.sort,
            self.all_moments,
            self.rerank,
            self.rerank_weights,
            self.rerank_k,
            self.explain,
        )


class TermScoreBody(_Body):
    term: str
    weight: float
    cosine: float


class HitBody(_Body):
    rank: int
    path: str
    time: float | None = None  # the moment of a video, in seconds
    score: float
    taken: str | None = None  # ISO 8601, see mmcli.media.taken
    taken_source: str | None = None  # "exif", "exif-local" or "mtime"
    explain: list[TermScoreBody] | None = None  # each term's part in the score (null unless asked for)

    @classmethod
    def of(cls, h: Hit) -> HitBody:
        parts = None if h.explain is None else [TermScoreBody(**t.__dict__) for t in h.explain]
        return cls(
            rank=h.rank, path=h.path, time=h.time, score=h.score, taken=h.taken, taken_source=h.taken_source,
            explain=parts,
        )  # fmt: skip

    def hit(self) -> Hit:
        parts = None if self.explain is None else tuple(TermScore(t.term, t.weight, t.cosine) for t in self.explain)
        return Hit(self.rank, self.path, self.time, self.score, self.taken, self.taken_source, parts)


class SearchReply(_Body):
    hits: list[HitBody]
    warnings: list[str] = Field(default_factory=list)
    threshold: float | None = None  # the cut-off that "auto" chose
    cutoff: str | None = None  # why, in words

    @classmethod
    def of(cls, result: SearchResult) -> SearchReply:
        hits = [HitBody.of(h) for h in result.hits]
        return cls(hits=hits, warnings=list(result.warnings), threshold=result.threshold, cutoff=result.cutoff)

    def result(self) -> SearchResult:
        return SearchResult(tuple(h.hit() for h in self.hits), tuple(self.warnings), self.threshold, self.cutoff)


class ClassifyBody(_Body):
    """POST /classify: absolute image paths on the server's machine, labels, prompt templates."""

    paths: list[Text] = Field(min_length=1, max_length=MAX_PATHS)
    labels: list[Text] = Field(min_length=1, max_length=MAX_LABELS)
    templates: list[Text] = Field(default_factory=lambda: [DEFAULT_TEMPLATE], min_length=1, max_length=100)
    multi_label: bool = False
    top_k: int | None = Field(None, ge=1)
    threshold: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, le=10**12)

    @classmethod
    def of(cls, request: ClassifyRequest, paths: list[str]) -> ClassifyBody:
        return cls(
            paths=paths,
            labels=list(request.labels),
            templates=list(request.templates),
            multi_label=request.multi_label,
            top_k=request.top_k,
            threshold=request.threshold,
            max_pixels=request.max_pixels,
        )

    def request(self) -> ClassifyRequest:
        return ClassifyRequest(
            tuple(self.paths),
            tuple(self.labels),
            tuple(self.templates),
            self.multi_label,
            self.top_k,
            self.threshold,
            self.max_pixels,
        )


class LabelScoreBody(_Body):
    label: str
    score: float


class ClassifyItem(_Body):
    """A classified image (``labels``), a stretch of a video's timeline (``start``/``end`` in seconds,
    one label: a video gives one item per stretch, in order) or a file that could not be used (``reason``)."""

    path: str
    labels: list[LabelScoreBody] | None = None
    reason: str | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def of(cls, item: Classification | Segment | FileFailure) -> ClassifyItem:
        if isinstance(item, FileFailure):
            return cls(path=item.path, reason=item.reason)
        if isinstance(item, Segment):
            label = LabelScoreBody(label=item.label, score=item.score)
            return cls(path=item.path, labels=[label], start=item.start, end=item.end)
        return cls(path=item.path, labels=[LabelScoreBody(label=x.label, score=x.score) for x in item.labels])

    def item(self, path: str) -> Classification | Segment | FileFailure:
        if self.labels is None:
            return FileFailure(path, self.reason or "failed")
        if self.start is not None and self.end is not None and self.labels:
            return Segment(path, self.start, self.end, self.labels[0].label, self.labels[0].score)
        return Classification(path, tuple(LabelScore(x.label, x.score) for x in self.labels))


class ClassifyReply(_Body):
    results: list[ClassifyItem]
    warnings: list[str] = Field(default_factory=list)


class HealthReply(_Body):
    status: str
    model: str
    index: str
    pid: int
    version: str
    served: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, health: Health) -> HealthReply:
        return cls(**health.__dict__)

    def health(self) -> Health:
        return Health(self.status, self.model, self.index, self.pid, self.version, dict(self.served))


class ErrorReply(_Body):
    error: str
    hint: str | None = None
