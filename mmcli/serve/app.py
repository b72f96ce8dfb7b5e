"""`mmcli serve`: one warm ``LocalEngine`` (model, text cache, FAISS index) behind a local HTTP JSON API.

FastAPI + uvicorn (the ``serve`` extra; only that command imports this module). GET /health,
POST /search, POST /classify, and the search page (GET /, /thumb, /image, POST /search/upload:
``mmcli.serve.page``). Bodies are JSON objects of the values users give, read by the same builder as
every other way in (``mmcli.queries.build``: a value it refuses is a 400 with its message; a body that
is no JSON object, a 400 or 422), and replies are ``mmcli.wire``'s; both are documented at
/openapi.json and /docs with schemas made from the same dataclasses. Endpoints are plain functions, so
FastAPI runs them in its thread pool: model work never blocks the event loop, and /health answers
while a search runs. Model work is serialised by one lock. ``mmcli.serve.guards`` refuses foreign hosts
and origins, oversized bodies and files outside the allowed roots.

While it runs, ``$MMCLI_HOME/server.json`` (mode 0600) tells `mmcli search` and `mmcli classify`
where it is and holds a token the server proves it knows; one server per discovery file.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Request, Response  # module level: FastAPI reads the endpoints' annotations

from mmcli import wire
from mmcli.errors import MmcliError, UsageError
from mmcli.faults import fault_point
from mmcli.queries.build import classify_request, search_request
from mmcli.queries.terms import split_moment
from mmcli.results import Health, SearchResult
from mmcli.serve.client import NONCE_HEADER, PROOF_HEADER, discovery_file, proof, read_discovery
from mmcli.serve.guards import BadPath, BodyLimit, HostOriginGuard, PathGuard, Refused, named_files

if TYPE_CHECKING:
    import socket

    from mmcli.engine.local import LocalEngine

DEFAULT_MAX_BODY = 1_000_000
DEFAULT_MAX_UPLOAD = 50_000_000  # an example image dropped on the search page
JsonObject = Annotated[dict[str, Any], Body()]
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "hint": {"type": ["string", "null"]}}}


@dataclass(frozen=True)
class ServerConfig:
    roots: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8765
    max_body: int = DEFAULT_MAX_BODY
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    max_upload: int = DEFAULT_MAX_UPLOAD
    cache: Path | None = None  # thumbnails and uploads; None: the cache folder (MMCLI_CACHE)
    warn: Callable[[str], None] | None = field(default=None, repr=False, compare=False)  # None: uvicorn's log


def create_app(engine: LocalEngine, config: ServerConfig) -> Any:
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from mmcli import __version__
    from mmcli.config import cache_dir
    from mmcli.serve.asgi import HeadAsGet, JsonBodies
    from mmcli.serve.page import add_page
    from mmcli.serve.thumbs import PictureCache

    class AsciiJSON(JSONResponse):
        def render(self, content: Any) -> bytes:  # names that are not UTF-8 travel as \udcXX escapes
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()

    paths = PathGuard(config.roots)
    lock = threading.Lock()
    app = FastAPI(
        title="mmcli",
        description="Zero-shot classification and image search over a local index.",
        version=__version__,
        default_response_class=AsciiJSON,
    )
    # (the last added runs first: the guards see every request as it came)
    app.add_middleware(HeadAsGet)
    app.add_middleware(JsonBodies, paths=("/search", "/classify"))
    app.add_middleware(BodyLimit, max_body=config.max_body, limits={"/search/upload": config.max_upload})
    app.add_middleware(
        HostOriginGuard, port=config.port, allow_hosts=config.allow_hosts, allow_origins=config.allow_origins
    )
    errors = {code: {"content": {"application/json": {"schema": ERROR}}} for code in (400, 403, 413)}

    def error(status: int, message: str, hint: str | None = None) -> Any:
        return AsciiJSON({"error": message, "hint": hint}, status_code=status)

    def documented(body: dict[str, Any], reply: Any) -> dict[str, Any]:
        """The OpenAPI of an endpoint: its body's and reply's schemas (``mmcli.wire``'s, of the dataclasses)."""
        content = {"content": {"application/json": {"schema": reply}}}
        return {
            "openapi_extra": {"requestBody": {"content": {"application/json": {"schema": body}}, "required": True}},
            "responses": {**errors, 200: content},
        }

    @app.exception_handler(Exception)
    def unexpected(_request: Any, exc: Exception) -> Any:  # the answer; ``NoTracebacks`` tells the terminal
        return error(500, f"internal error ({type(exc).__name__}: {exc})"[:300])

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Any, exc: RequestValidationError) -> Any:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "body is not JSON")
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        detail = json.loads(json.dumps(problems, default=str))
        return AsciiJSON({"error": f"{where}: {first.get('msg', 'invalid')}", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Any, exc: StarletteHTTPException) -> Any:  # e.g. a body nested too deeply
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Refused)
    def refused(_request: Any, exc: Refused) -> Any:
        return error(403, str(exc))

    @app.exception_handler(BadPath)
    def bad_path(_request: Any, exc: BadPath) -> Any:
        return error(400, str(exc))

    @app.exception_handler(MmcliError)
    def failed(_request: Any, exc: MmcliError) -> Any:
        return error(400, exc.message, exc.hint)

    def locked(work: Callable[[], Any]) -> Any:
        with lock:
            return work()

    @app.get("/health", responses={200: {"content": {"application/json": {"schema": wire.schema(Health)}}}})
    def health(request: Request) -> Response:
        nonce = request.headers.get(NONCE_HEADER)
        headers = {PROOF_HEADER: proof(config.token, nonce[:128])} if nonce else {}
        return AsciiJSON(wire.value(engine.health()), headers=headers)

    def run_search(values: dict[str, Any], upload: str | None = None) -> Response:
        for path in named_files(values):  # before anything looks at them: the same 403 whether they exist or not
            if path != upload:
                paths.check(split_moment(path)[0])  # a video's moment (VIDEO#t=12): the video's file
        if isinstance(values.get("within"), str):
            paths.resolve(values["within"])  # a NUL: 400
        # paths outside the roots are never looked up (``within`` there only narrows the index's paths)
        request = search_request(lambda path: path == upload or paths.contains(path), **values)
        for term in request.terms:
            if term.is_image and term.value != upload:
                paths.check(split_moment(term.value)[0])
        return AsciiJSON(wire.value(locked(lambda: engine.search(request))))

    @app.post("/search", **documented(wire.search_schema(), wire.schema(SearchResult)))
    def search(body: JsonObject) -> Response:
        return run_search(body)

    reply = {"type": "object", "properties": {"results": {"type": "array"}, "warnings": {"type": "array"}}}

    @app.post("/classify", **documented(wire.classify_schema(), reply))
    def classify(body: JsonObject) -> Response:
        request = classify_request(**body)
        for path in request.paths:
            paths.check(path)

        def work() -> Response:
            fault_point("serve.classify")
            run = engine.classify(request)
            results = [wire.item_value(item) for item in run.items]
            return AsciiJSON({"results": results, "warnings": list(run.warnings)})

        return locked(work)

    add_page(app, run_search, paths, PictureCache(config.cache or cache_dir(), config.warn), error)
    return app


def refuse_second_server() -> None:
    """A usage error when another live server owns the discovery file (checked before any work, and
    again when it is claimed)."""
    running = read_discovery()
    if running is not None and running["pid"] != os.getpid():
        raise UsageError(
            f"another mmcli serve (pid {running['pid']}, {running['url']}) is running for {running['index']}",
            hint="stop it first, or give this server its own MMCLI_HOME",
        )


def claim_discovery(engine: LocalEngine, config: ServerConfig) -> Path:
    """Write the discovery file, refusing when another live server owns it."""
    from mmcli.atomic import atomic_write_bytes

    refuse_second_server()
    url = f"http://{config.host}:{config.port}"
    info = {"url": url, "pid": os.getpid(), "index": str(engine.index), "model": engine.spec.name}
    path = discovery_file()
    atomic_write_bytes(path, json.dumps({**info, "token": config.token}).encode(), private=True)  # mode 0600
    return path


def release_discovery(path: Path, config: ServerConfig) -> None:
    """Remove the discovery file if it is still this server's own."""
    try:
        info = json.loads(path.read_text())
        if info.get("pid") == os.getpid() and info.get("token") == config.token:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` as uvicorn binds it, taken before anything says the server is
    up (and before the model loads): a port in use is one error line, not uvicorn's ``[Errno 98]``."""
    import errno
    import socket

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MmcliError(
                f"{where} is in use",
                hint=f"pick another port with --port, or stop what listens there (a running mmcli serve answers "
                f"http://{where}/health; search through it with --server http://{where})",
            ) from None
        reason = "no such address here" if isinstance(exc, socket.gaierror) else exc.strerror or str(exc)
        raise MmcliError(f"cannot listen on {where}: {reason}") from None
    return sock


def run_server(engine: LocalEngine, config: ServerConfig, sock: socket.socket | None = None) -> None:
    """Serve until stopped, on ``sock`` (from ``listen``; taken here when None)."""
    import uvicorn

    sock = sock or listen(config.host, config.port)
    path = claim_discovery(engine, config)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit through Python so the
    # discovery file is removed below
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    from mmcli.serve.asgi import NoTracebacks

    app = NoTracebacks(create_app(engine, config), config.warn or _log_warning)
    try:
        uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning")).run([sock])
    finally:
        release_discovery(path, config)
        sock.close()


def _log_warning(message: str) -> None:
    import logging

    logging.getLogger("uvicorn.error").warning(message)


def beyond_loopback(host: str) -> bool:
    """Does binding ``host`` listen on more than the loopback interface? (``0``, ``""``, ``0x0`` do.)"""
    import ipaddress
    import socket

    if host.strip() in ("", "0", "0x0", "*"):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return True
    return not all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
