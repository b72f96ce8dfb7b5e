"""`mmcli mcp`: an index as a Model Context Protocol server over stdio, for AI assistants.

Read-only tools over one warm ``LocalEngine``: ``search`` (text, example image, +/- terms, dates,
a folder), ``similar`` (more like a file), ``classify`` (files against labels), ``dupes`` and
``info``. Results are structured content (the JSON schema of each tool's output is published) with
the same JSON as text, and search results bring small JPEG thumbnails as image content (at most
``MAX_THUMBS`` of ``THUMB_SIDE`` pixels, ``MAX_THUMB_BYTES`` in all), made by the safe decoder through
the thumbnail cache. Every file a call names must lie under the allowed roots, which `mmcli serve`'s
``PathGuard`` checks, with the same answer for a missing file and a refused one. A bad call (a wrong
type, a date that does not parse, a refused path) is a tool error the assistant reads; the server
goes on. Tools run in the SDK's worker threads; model work is serialised by one lock.

The official SDK (``mcp``, the ``mcp`` extra) is imported only by this module, which only `mmcli mcp`
imports. (No ``from __future__ import annotations`` here: the SDK reads the tools' annotations, which
must resolve in this module's globals.)
"""

import base64
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, Field, ValidationError

from mmcli.config import install_command
from mmcli.errors import MmcliError
from mmcli.queries.build import classify_request, search_request
from mmcli.results import DupeGroup, Hit, LabelScore, SearchResult, Segment
from mmcli.serve.guards import BadPath, PathGuard, Refused, named_files
from mmcli.serve.thumbs import PictureCache

if TYPE_CHECKING:
    from mmcli.engine.local import LocalEngine

THUMB_SIDE = 128
MAX_THUMBS = 12
MAX_THUMB_BYTES = 400_000
MAX_FILES = 100  # per classify call
INSTALL_HINT = f"{install_command('mcp')} (the official MCP Python SDK)"
INSTRUCTIONS = (
    "Search and classify the user's own photos and videos in a local mmcli index (CLIP embeddings). "
    "`search` finds pictures by a text description and/or an example image, with optional +/- terms, "
    "dates and a folder; `similar` finds more like a given file; `classify` scores files against labels; "
    "`dupes` lists near-duplicate groups; `info` says what the index holds. Paths are absolute paths on "
    "the user's machine, under the folders the index covers. Read-only: nothing is changed."
)

Paths = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=100)]
Short = Annotated[str, Field(max_length=2000)]
Date = Annotated[str, Field(max_length=100, description="YYYY, YYYY-MM, YYYY-MM-DD or an ISO date and time")]
K = Annotated[int, Field(le=200, description="How many results (the request's own rule: at least 1)")]
Thumbs = Annotated[int, Field(ge=0, le=MAX_THUMBS, description="Thumbnails of the best results to attach")]


class SearchOutput(BaseModel):
    hits: list[Hit]  # (the results' own dataclasses: pydantic reads their fields)
    warnings: list[str] = []


class ClassifiedOutput(BaseModel):
    """One file's labels, best first; a video gives one entry per segment (``start``/``end`` seconds);
    ``reason`` says why a file could not be classified."""

    path: str
    labels: list[LabelScore] = []
    start: float | None = None
    end: float | None = None
    reason: str | None = None


class ClassifyOutput(BaseModel):
    results: list[ClassifiedOutput]
    warnings: list[str] = []


class DupeGroupOutput(BaseModel):
    group: int
    paths: list[str]
    min_score: float


class DupesOutput(BaseModel):
    groups: list[DupeGroupOutput]
    total_groups: int


class InfoOutput(BaseModel):
    folder: str
    model: str
    images: int
    videos: int
    moments: int
    failed: int
    missing: int
    taken_oldest: str | None
    taken_newest: str | None
    updated: str
    roots: list[str]


def create_server(
    engine: "LocalEngine",
    roots: Sequence[Path],
    cache: Path,
    find_dupes: Callable[[float], list[DupeGroup]],
) -> MCPServer:
    """The MCP server for ``engine``'s index; ``find_dupes`` finds the
    near-duplicate groups (``mmcli.explore``, handed in by the command)."""
    from mmcli import __version__

    guard = PathGuard(roots)
    pictures_cache = PictureCache(cache, logging.getLogger("mmcli.mcp").warning)
    lock = threading.Lock()
    server = MCPServer("mmcli", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    def checked(path: str) -> str:
        import os

        if "\0" in path:
            raise ToolError("a path cannot hold a NUL character")
        try:
            guard.check(os.path.abspath(os.path.expanduser(path)))
        except (Refused, BadPath) as exc:
            raise ToolError(str(exc)) from None
        return path

    def work(fn: Callable[[], Any]) -> Any:
        """``fn`` under the engine lock, typed failures as tool errors the assistant can read."""
        try:
            with lock:
                return fn()
        except MmcliError as exc:
            raise ToolError(exc.message + (f" (hint: {exc.hint})" if exc.hint else "")) from None
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            raise ToolError(f"{'.'.join(map(str, first.get('loc', ()))) or 'arguments'}: {first.get('msg')}") from None

    def reply(output: BaseModel, extra: list[Any] | None = None) -> Any:
        text = TextContent(type="text", text=output.model_dump_json())
        return CallToolResult(content=[text, *(extra or [])], structured_content=output.model_dump(mode="json"))

    def pictures(hits: Sequence[Hit], count: int) -> list[Any]:
        out: list[Any] = []
        spent = 0
        for h in hits[:count]:
            data = _thumbnail_jpeg(h, pictures_cache, guard)
            if data is None or spent + len(data) > MAX_THUMB_BYTES:
                continue
            spent += len(data)
            at = f" at {h.time:.1f} s" if h.time is not None else ""
            out.append(TextContent(type="text", text=f"#{h.rank} {h.path}{at} (score {h.score:.4f})"))
            out.append(ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type="image/jpeg"))
        return out

    def run_search(thumbnails: int, **values: Any) -> Any:
        """A search built from the tool's values as every way in builds it; every path it names checked."""
        values = {k: v for k, v in values.items() if v is not None}
        for path in named_files(values):
            checked(path)
        if values.get("within") is not None:
            checked(values["within"])

        def go() -> SearchResult:
            request = search_request(**values)
            for term in request.terms:
                if term.is_image:
                    checked(term.value)
            return engine.search(request)

        result = work(go)
        output = SearchOutput(hits=list(result.hits), warnings=list(result.warnings))
        return reply(output, pictures(result.hits, thumbnails))

    @server.tool(
        description="Find pictures (and video moments) in the index by a text description and/or an example image."
    )
    def search(
        text: Annotated[Short | None, Field(description="What to look for, e.g. 'a red car at night'")] = None,
        image: Annotated[str | None, Field(description="An example image: its absolute path")] = None,
        add: Annotated[
            list[Short] | None, Field(max_length=20, description="More terms: [WEIGHT:]TEXT or an image path")
        ] = None,
        sub: Annotated[list[Short] | None, Field(max_length=20, description="Terms to steer away from")] = None,
        after: Annotated[Date | None, Field(description="Only pictures taken at or after this date")] = None,
        before: Annotated[Date | None, Field(description="Only pictures taken before the end of this date")] = None,
        within: Annotated[str | None, Field(description="Only pictures under this folder (absolute)")] = None,
        k: K = 10,
        thumbnails: Thumbs = 6,
    ) -> Annotated[CallToolResult, SearchOutput]:
        return run_search(
            thumbnails, query=text, image=image, add=add, sub=sub, after=after, before=before, within=within, top_k=k
        )

    @server.tool(description="More pictures like a given file (an absolute path under the indexed folders).")
    def similar(
        path: Annotated[str, Field(max_length=4096, description="The file to find more like (absolute path)")],
        k: K = 10,
        within: Annotated[str | None, Field(description="Only pictures under this folder (absolute)")] = None,
        after: Annotated[Date | None, Field(description="Only pictures taken at or after this date")] = None,
        before: Annotated[Date | None, Field(description="Only pictures taken before the end of this date")] = None,
        thumbnails: Thumbs = 6,
    ) -> Annotated[CallToolResult, SearchOutput]:
        import os

        absolute = os.path.abspath(os.path.expanduser(checked(path)))  # (never among its own results)
        return run_search(thumbnails, image=absolute, within=within, after=after, before=before, top_k=k)

    @server.tool(description="Zero-shot classify image or video files against labels (best labels first).")
    def classify(
        paths: Annotated[Paths, Field(min_length=1, description="Absolute paths of images or videos")],
        labels: Annotated[list[Short], Field(min_length=1, max_length=200, description="Labels, e.g. ['cat', 'dog']")],
        top_k: Annotated[int, Field(ge=1, le=200, description="Labels kept per file")] = 3,
        multi_label: Annotated[bool, Field(description="An independent score per label instead of a softmax")] = False,
    ) -> Annotated[CallToolResult, ClassifyOutput]:
        import os

        files = [os.path.abspath(os.path.expanduser(checked(p))) for p in paths]

        def go() -> ClassifyOutput:
            request = classify_request(paths=files, labels=labels, multi_label=multi_label, top_k=top_k)
            run = engine.classify(request)
            return ClassifyOutput(results=[_classified(item) for item in run.items], warnings=list(run.warnings))

        return reply(work(go))

    @server.tool(description="Groups of near-duplicate pictures in the index, largest first.")
    def dupes(
        threshold: Annotated[
            float, Field(ge=0.5, le=1.0, description="Cosine similarity that makes two near-duplicates")
        ] = 0.95,
        limit: Annotated[int, Field(ge=1, le=500, description="Groups returned at most")] = 50,
    ) -> Annotated[CallToolResult, DupesOutput]:
        groups = work(lambda: find_dupes(threshold))
        shown = [DupeGroupOutput(group=g.group, paths=list(g.paths), min_score=g.min_score) for g in groups[:limit]]
        return reply(DupesOutput(groups=shown, total_groups=len(groups)))

    @server.tool(description="What the index holds: its model, counts, the dates its pictures span, its folders.")
    def info() -> Annotated[CallToolResult, InfoOutput]:
        from mmcli.index.open import index_info

        assert engine.index is not None
        facts = asdict(work(lambda: index_info(engine.index)))
        ok = facts["ok"]
        return reply(
            InfoOutput(
                folder=facts["folder"],
                model=facts["model"],
                images=ok - facts["videos"],
                videos=facts["videos"],
                moments=facts["moments"],
                failed=facts["failed"],
                missing=facts["missing"],
                taken_oldest=facts["taken_oldest"],
                taken_newest=facts["taken_newest"],
                updated=facts["updated"],
                roots=[str(r) for r in guard.roots],
            )
        )

    return server


def _classified(item: Any) -> ClassifiedOutput:
    from mmcli.results import FileFailure

    if isinstance(item, FileFailure):
        return ClassifiedOutput(path=item.path, reason=item.reason)
    if isinstance(item, Segment):
        label = LabelScore(item.label, item.score)
        return ClassifiedOutput(path=item.path, labels=[label], start=item.start, end=item.end)
    return ClassifiedOutput(path=item.path, labels=list(item.labels))


def _thumbnail_jpeg(hit: Hit, cache: PictureCache, guard: PathGuard) -> bytes | None:
    """A small JPEG of a hit (a video: its frame at the moment), or None (outside the roots, unreadable)."""
    from mmcli.errors import ImageLoadError
    from mmcli.media.video import is_video
    from mmcli.serve.thumbs import cached_thumbnail

    try:
        guard.check(hit.path)
        moment = (hit.time or 0.0) if hit.time is not None or is_video(hit.path) else None
        return cached_thumbnail(hit.path, THUMB_SIDE, cache, moment).data
    except (Refused, BadPath, ImageLoadError, OSError):
        return None


def serve_stdio(server: MCPServer) -> None:
    """Answer on stdin/stdout until the client closes them (the SDK points fd 1 at stderr meanwhile,
    so nothing else printed can corrupt the protocol)."""
    server.run("stdio")
