"""The search page of `mmcli serve`: GET / (plain HTML, CSS and JS shipped in ``mmcli/web``, no
CDN), GET /thumb and GET /image (pictures of files under the allowed roots), POST /search/upload
(search by an example image the browser sends).

``mmcli.serve.guards`` has already refused foreign hosts and origins, and other sites' embeds, before any
of these run; every path is checked against the allowed roots here (``PathGuard``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

from fastapi import Query, Request, Response  # module level: FastAPI reads the endpoints' annotations

from mmcli import wire
from mmcli.errors import ImageLoadError
from mmcli.results import SearchResult
from mmcli.serve.guards import PathGuard

if TYPE_CHECKING:
    from mmcli.serve.thumbs import Picture, PictureCache

Seconds = Annotated[Optional[float], Query(ge=0, le=1e9, allow_inf_nan=False)]  # a video's moment

WEB = Path(__file__).parent / "web"
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# the page runs only its own script, loads only its own pictures, and is never framed
CSP = (
    "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
PICTURE_CACHE = "private, max-age=300"  # a changed file is shown within 5 minutes; ETags revalidate


MANY = ("add", "sub")  # query-string fields given once per value


def _upload_values(request: Request) -> dict[str, Any]:
    """The search options of an upload, from its query string (``add``/``sub`` repeat), as typed."""
    params = request.query_params
    return {key: params.getlist(key) if key in MANY else params[key] for key in params}


def _upload_limit(values: dict[str, Any]) -> int:
    """The pixel limit an upload is decoded under: the search's own, checked as the search checks it."""
    from mmcli.queries.build import convert
    from mmcli.queries.requests import SearchRequest, whole

    given = convert(SearchRequest, "max_pixels", values.get("max_pixels"))
    return whole("max_pixels", given if given is not None else SearchRequest.max_pixels, 1)


def _file_response(path: str, media_type: str, headers: dict[str, str]) -> Response:
    """The file at ``path`` as it is, streamed from a descriptor of the regular file that was really
    opened (a FIFO or a device put in its place since it was checked is refused, never waited on)."""
    from starlette.responses import StreamingResponse

    from mmcli.media.files import file_error, open_file

    try:
        f = open_file(path)
        size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise file_error(path, exc, vanished=True) from None

    def chunks() -> Iterator[bytes]:
        left = size
        with f:
            while left > 0 and (block := f.read(min(left, 1 << 16))):
                left -= len(block)
                yield block

    return StreamingResponse(chunks(), media_type=media_type, headers={**headers, "Content-Length": str(size)})


def add_page(
    app: Any,
    search: Callable[[dict[str, Any], str | None], Response],
    paths: PathGuard,
    cache: PictureCache,
    error: Callable[..., Any],
) -> None:
    """Register the page's routes on ``app``. ``search(values, upload)`` checks the values' paths against
    the roots (all but ``upload``, the server's own temporary file) and runs it under the model lock."""
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from mmcli.serve.thumbs import NotStored, browser_image, cached_thumbnail, uploaded_image

    assets = {route: ((WEB / name).read_bytes(), kind) for route, (name, kind) in ASSETS.items()}

    def asset(route: str) -> Callable[[], Response]:
        data, kind = assets[route]

        def serve() -> Response:
            headers = {**SAFE, "Cache-Control": "no-cache", "Content-Security-Policy": CSP}
            return Response(data, media_type=kind, headers=headers)

        return serve

    for route in ASSETS:
        app.get(route, include_in_schema=False)(asset(route))

    @app.exception_handler(ImageLoadError)
    def unreadable(_request: Any, exc: ImageLoadError) -> Any:
        return error(404 if exc.reason == "no such file" else 415, exc.message)

    def picture(request: Request, found: Picture) -> Response:
        headers = {**SAFE, "Cache-Control": PICTURE_CACHE, "ETag": f'"{found.etag}"'}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        if found.path is not None:
            return _file_response(found.path, found.media_type, headers)
        return Response(found.data, media_type=found.media_type, headers=headers)

    @app.get("/thumb", responses={400: {}, 403: {}, 404: {}, 415: {}})
    def thumb(request: Request, path: str, size: int = 256, t: Seconds = None) -> Response:
        """A JPEG thumbnail (128, 256, 512 or 1024 pixels) of an image under the allowed roots, or of a
        video's frame at ``t`` seconds (a hit's ``time``)."""
        paths.check(path)
        return picture(request, cached_thumbnail(path, size, cache, t))

    @app.get("/image", responses={400: {}, 403: {}, 404: {}, 415: {}})
    def image(request: Request, path: str, t: Seconds = None) -> Response:
        """An image under the allowed roots as a browser can show it (TIFF, HEIC: as a JPEG); a video's
        frame at ``t`` seconds as a JPEG."""
        paths.check(path)
        return picture(request, browser_image(path, t))

    reply = {200: {"content": {"application/json": {"schema": wire.schema(SearchResult)}}}}

    @app.post("/search/upload", responses={**reply, 400: {}, 403: {}, 413: {}, 415: {}})
    async def upload(request: Request) -> Response:
        """Search by an example image sent as the raw body; the other fields of /search go in the query
        string (``?top_k=20&add=sunset``). The image is never stored beside the photos."""
        values = _upload_values(request)
        limit = _upload_limit(values)
        data = await request.body()

        def work() -> Response:
            try:
                with uploaded_image(data, cache, limit) as tmp:
                    return search({**values, "terms": [{"image": tmp}]}, tmp)
            except NotStored as exc:  # neither the cache nor the system's temporary folder can hold it
                raise HTTPException(503, str(exc)) from None

        return await run_in_threadpool(work)
