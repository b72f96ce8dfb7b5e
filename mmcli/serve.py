"""`mmcli serve`: the model, label cache and index kept in memory behind a local HTTP JSON API.

FastAPI + uvicorn (the ``serve`` extra). Endpoints: GET /health, POST /search, POST /classify;
the OpenAPI schema is at /openapi.json and the docs at /docs. Bound to 127.0.0.1 unless told
otherwise. Bodies over ``max_body`` bytes are refused (413); image paths outside the allowed
roots are refused (403). While it runs, ``$MMCLI_HOME/server.json`` tells `mmcli search` and
`mmcli classify` where it is.
"""

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmcli.config import DEFAULT_MAX_PIXELS, home_dir
from mmcli.errors import ImageLoadError, MmcliError, UsageError

DISCOVERY = "server.json"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY = 1_000_000


def discovery_file() -> Path:
    return home_dir() / DISCOVERY


class Engine:
    """What the server keeps warm: the encoder, the index's FAISS file and the text cache."""

    def __init__(
        self,
        index_folder: Path,
        model: str | None,
        weights: str | None,
        device: str,
        precision: str,
        allowed_roots: Sequence[Path],
    ) -> None:
        from mmcli.index.open import model_spec_for, open_index
        from mmcli.models import load_encoder, model_fingerprint
        from mmcli.textcache import TextCache

        self.index_folder = index_folder
        self.allowed = [Path(r).resolve() for r in allowed_roots]
        store = open_index(index_folder)
        try:
            self.spec = model_spec_for(store.meta(), model, weights)
        finally:
            store.close()
        self.encoder = load_encoder(self.spec, device=device, precision=precision)
        self.fingerprint = model_fingerprint(self.spec, (device, precision))
        self.cache = TextCache()
        self.device, self.precision = device, precision
        self.lock = threading.Lock()
        self._faiss: Any = None
        self._generation = -1
        self.served = {"search": 0, "classify": 0}

    def check_path(self, path: str) -> str:
        resolved = Path(path).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.allowed):
            raise PermissionError(f"{path} is outside the allowed roots")
        return str(resolved)

    def _index(self, store: Any) -> Any:
        from mmcli.index import vectors

        generation = store.generation()
        if self._faiss is None or generation != self._generation:
            self._faiss = vectors.load_or_rebuild(store, write=False)
            self._generation = generation
        return self._faiss

    def search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        from mmcli.index.open import open_index
        from mmcli.search import build_terms, query_vector, top_hits

        terms = build_terms(
            body.get("query"), body.get("image"), list(body.get("add") or []), list(body.get("sub") or [])
        )
        for term in terms:
            if term.is_image:
                self.check_path(term.value)
        with self.lock:
            store = open_index(self.index_folder)
            try:
                q = query_vector(store, terms, lambda: self.encoder, self.fingerprint, DEFAULT_MAX_PIXELS)
                hits = top_hits(
                    store,
                    self._index(store),
                    q,
                    terms,
                    int(body.get("top_k", 10)),
                    body.get("threshold"),
                    body.get("within"),
                    bool(body.get("exact", False)),
                )
            finally:
                store.close()
        return [asdict(h) for h in hits]

    def classify(self, body: dict[str, Any]) -> dict[str, Any]:
        from mmcli.classify import build_label_set, classify_stream
        from mmcli.results import FileFailure

        paths = [self.check_path(p) for p in body.get("paths") or []]
        if not paths:
            raise UsageError("no paths given")
        templates = body.get("templates") or ["a photo of a {}."]
        with self.lock:
            label_set = build_label_set(self.encoder, body.get("labels") or [], templates, self.cache)
            results: list[dict[str, Any]] = []
            for item in classify_stream(
                self.encoder,
                paths,
                label_set,
                multi_label=bool(body.get("multi_label")),
                top_k=body.get("top_k"),
                threshold=body.get("threshold"),
                workers=1,
            ):
                kind = "failure" if isinstance(item, FileFailure) else "result"
                results.append({"kind": kind, **asdict(item)})
        return {"results": results, "warnings": list(label_set.warnings)}


def create_app(engine: Engine, max_body: int = DEFAULT_MAX_BODY) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI(
        title="mmcli", description="Zero-shot classification and image search over a local index.", version=_version()
    )

    def reply(data: Any, status: int = 200) -> Response:
        # ensure_ascii: file names that are not UTF-8 travel as \\udcXX escapes and round-trip
        return Response(json.dumps(data, ensure_ascii=True), status_code=status, media_type="application/json")

    async def read_json(request: Request) -> "dict[str, Any] | Response":
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return reply({"error": f"body over {max_body} bytes"}, 413)
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > max_body:
                return reply({"error": f"body over {max_body} bytes"}, 413)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return reply({"error": "body is not JSON"}, 400)
        return body if isinstance(body, dict) else reply({"error": "body must be a JSON object"}, 400)

    def guarded(fn: Any, body: dict[str, Any]) -> Response:
        try:
            return reply(fn(body))
        except PermissionError as exc:
            return reply({"error": str(exc)}, 403)
        except (MmcliError, ImageLoadError) as exc:
            return reply({"error": exc.message, "hint": exc.hint}, 400)
        except (TypeError, ValueError) as exc:
            return reply({"error": f"bad request: {exc}"}, 400)

    @app.get("/health")
    def health() -> Response:
        return reply(
            {
                "status": "ok",
                "model": engine.spec.name,
                "index": str(engine.index_folder),
                "pid": os.getpid(),
                "served": engine.served,
            }
        )

    @app.post("/search")
    async def search(request: Request) -> Response:
        body = await read_json(request)
        if isinstance(body, Response):
            return body
        engine.served["search"] += 1
        return guarded(lambda b: {"hits": engine.search(b)}, body)

    @app.post("/classify")
    async def classify(request: Request) -> Response:
        body = await read_json(request)
        if isinstance(body, Response):
            return body
        engine.served["classify"] += 1
        return guarded(engine.classify, body)

    return app


def _version() -> str:
    from mmcli import __version__

    return __version__


def run_server(engine: Engine, host: str, port: int, max_body: int) -> None:
    import uvicorn

    from mmcli.atomic import atomic_write_bytes

    url = f"http://{host}:{port}"
    info = {"url": url, "pid": os.getpid(), "index": str(engine.index_folder), "model": engine.spec.name}
    path = discovery_file()
    atomic_write_bytes(path, json.dumps(info).encode())
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: exit through Python so the
    # discovery file is removed below
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        uvicorn.run(create_app(engine, max_body), host=host, port=port, log_level="warning")
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
