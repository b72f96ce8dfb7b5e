"""`mmcli serve`: one warm ``LocalEngine`` (model, text cache, FAISS index) behind a local HTTP JSON API.

FastAPI + uvicorn (the ``serve`` extra; only that command imports this module). GET /health,
POST /search, POST /classify; bodies are the pydantic models of ``mmcli.wire`` (a wrong type is a
422 naming the field), documented at /openapi.json and /docs. Endpoints are plain functions, so
FastAPI runs them in its thread pool: model work never blocks the event loop, and /health answers
while a search runs. Model work is serialised by one lock. Bodies over ``max_body`` bytes get 413;
image paths outside the allowed roots get 403. While it runs, ``$MMCLI_HOME/server.json`` tells
`mmcli search` and `mmcli classify` where it is.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.errors import MmcliError
from mmcli.remote import discovery_file
from mmcli.wire import ClassifyBody, ClassifyItem, ClassifyReply, ErrorReply, HealthReply, SearchBody, SearchReply

if TYPE_CHECKING:
    from mmcli.engine import LocalEngine

DEFAULT_MAX_BODY = 1_000_000


class Refused(Exception):
    """A request names a file outside the allowed roots (403)."""


class Guard:
    """The folders whose images requests may name."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(r).resolve() for r in roots]

    def check(self, path: str) -> None:
        resolved = Path(path).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.roots):
            raise Refused(f"{path} is outside the allowed roots")


def create_app(engine: LocalEngine, roots: Sequence[Path], max_body: int = DEFAULT_MAX_BODY) -> Any:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from mmcli import __version__

    class AsciiJSON(JSONResponse):
        def render(self, content: Any) -> bytes:  # names that are not UTF-8 travel as \udcXX escapes
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()

    guard = Guard(roots)
    lock = threading.Lock()
    app = FastAPI(
        title="mmcli",
        description="Zero-shot classification and image search over a local index.",
        version=__version__,
        default_response_class=AsciiJSON,
    )
    app.add_middleware(BodyLimit, max_body=max_body)
    errors = {403: {"model": ErrorReply}, 400: {"model": ErrorReply}, 413: {"model": ErrorReply}}

    def error(status: int, message: str, hint: str | None = None) -> Any:
        return AsciiJSON(ErrorReply(error=message, hint=hint).model_dump(), status_code=status)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Any, exc: RequestValidationError) -> Any:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "body is not JSON")
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        reply = {
            "error": f"{where}: {first.get('msg', 'invalid')}",
            "detail": json.loads(json.dumps(problems, default=str)),
        }
        return AsciiJSON(reply, status_code=422)

    @app.exception_handler(Refused)
    def refused(_request: Any, exc: Refused) -> Any:
        return error(403, str(exc))

    @app.exception_handler(MmcliError)
    def failed(_request: Any, exc: MmcliError) -> Any:
        return error(400, exc.message, exc.hint)

    def locked(work: Callable[[], Any]) -> Any:
        with lock:
            return work()

    @app.get("/health", response_model=HealthReply)
    def health() -> HealthReply:
        return HealthReply.of(engine.health())

    @app.post("/search", response_model=SearchReply, responses=errors)
    def search(body: SearchBody) -> SearchReply:
        request = body.request()
        for term in request.terms:
            if term.is_image:
                guard.check(term.value)
        return SearchReply.of(locked(lambda: engine.search(request)))

    @app.post("/classify", response_model=ClassifyReply, responses=errors)
    def classify(body: ClassifyBody) -> ClassifyReply:
        request = body.request()
        for path in request.paths:
            guard.check(path)

        def work() -> ClassifyReply:
            run = engine.classify(request)
            return ClassifyReply(results=[ClassifyItem.of(item) for item in run.items], warnings=list(run.warnings))

        return locked(work)

    return app


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_body`` bytes, declared or streamed, before parsing."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Callable[..., Any]) -> None:
        body = json.dumps({"error": f"body over {self.max_body} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def run_server(engine: LocalEngine, roots: Sequence[Path], host: str, port: int, max_body: int) -> None:
    import uvicorn

    from mmcli.atomic import atomic_write_bytes

    url = f"http://{host}:{port}"
    info = {"url": url, "pid": os.getpid(), "index": str(engine.index), "model": engine.spec.name}
    path = discovery_file()
    atomic_write_bytes(path, json.dumps(info).encode())
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit through Python so the
    # discovery file is removed below
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        uvicorn.run(create_app(engine, roots, max_body), host=host, port=port, log_level="warning")
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
