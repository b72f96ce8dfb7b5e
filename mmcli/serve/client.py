"""Talking to a running `mmcli serve`: finding it, checking it, and the engine that calls it.

A server is used when given (``--server URL`` / ``MMCLI_SERVER``) or found (``server.json`` in
MMCLI_HOME, written by `mmcli serve` with mode 0600, whose process is alive and which serves the
same index). Before any query leaves this process the server must answer ``/health`` within
``CHECK_TIMEOUT``, serve the same index, and, when the discovery file gave a token, prove it knows
the token (an HMAC of a fresh nonce: the token never travels). Every answer is validated. When
the server cannot be used the work is done in-process with one warning; the output is the same.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmcli.errors import MmcliError, UsageError
from mmcli.index.lock import process_alive
from mmcli.queries import ClassifyRequest, SearchRequest
from mmcli.results import Health, SearchResult

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mmcli.engine.local import ClassifyRun, Engine, LocalEngine
    from mmcli.results import ProgressFn

DISCOVERY = "server.json"
NONCE_HEADER = "X-Mmcli-Nonce"
PROOF_HEADER = "X-Mmcli-Proof"
HOST_RE = re.compile(r"^[A-Za-z0-9._:%-]+$")
CHECK_TIMEOUT = 2.0  # seconds for /health: a stopped or foreign server costs this, not a minute
T = TypeVar("T", bound="BaseModel")


@dataclass(frozen=True)
class FoundServer:
    url: str
    explicit: bool  # named by the user, not merely found
    token: str | None = None  # from the discovery file: the server must prove it knows it


def discovery_file() -> Path:
    from mmcli.config import home_dir

    return home_dir() / DISCOVERY


def proof(token: str, nonce: str) -> str:
    """What a server that knows ``token`` answers to ``nonce``."""
    return hmac.new(token.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def server_url(raw: str, what: str) -> str:
    """``localhost:8765`` -> ``http://localhost:8765``; anything but an http(s) URL is a usage error."""
    text = raw.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urllib.parse.urlsplit(text)
        host = parts.hostname or ""
        ok = parts.scheme in ("http", "https") and HOST_RE.match(host) is not None and parts.port != 0
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise UsageError(f"{what}: {raw!r} is not the URL of an mmcli server", hint="e.g. http://127.0.0.1:8765")
    return text


def read_discovery() -> dict[str, Any] | None:
    """The discovery file of a server whose process is alive, or None."""
    try:
        info = json.loads(discovery_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not process_alive(info["pid"]):
        return None
    if not all(isinstance(info.get(k), str) for k in ("url", "index", "token")):
        return None
    return info


def find_server(explicit: str | None, index_folder: Path | None) -> FoundServer | None:
    """The server to use: ``explicit``, else MMCLI_SERVER, else a live one serving ``index_folder``."""
    from mmcli.config import SERVER_OFF, settings

    if explicit is not None and explicit.strip().lower() in SERVER_OFF:
        return None  # --server off: never use one
    env = settings().server
    info = read_discovery()
    if explicit or env:
        if not explicit and env == "off":
            return None
        url = server_url(explicit or env or "", "--server" if explicit else "MMCLI_SERVER")
        token = info["token"] if info and info["url"].rstrip("/") == url else None
        return FoundServer(url, True, token)
    if info is None or (index_folder is not None and Path(info["index"]) != index_folder):
        return None
    return FoundServer(info["url"].rstrip("/"), False, info["token"])


class Unavailable(Exception):
    """The server cannot be used for this call; the work is done in-process."""


class RemoteEngine:
    """An engine whose work runs in `mmcli serve`; falls back to ``local`` when it cannot be used."""

    def __init__(self, found: FoundServer, local: LocalEngine, wanted_model: str | None = None) -> None:
        self.url, self.explicit, self.token = found.url, found.explicit, found.token
        self.local, self.wanted_model = local, wanted_model

    def _fallback(self, why: Unavailable) -> tuple[str, ...]:
        return (f"the mmcli server at {self.url} {why or 'does not answer'}; working in-process",)

    def search(self, request: SearchRequest) -> SearchResult:
        from mmcli.serve.wire import SearchBody, SearchReply

        try:
            served = self.health().index
            if self.local.index is not None and Path(served) != self.local.index:
                raise Unavailable(f"serves another index ({served})")
            reply = self._post("/search", SearchBody.of(request), SearchReply, timeout=120)
        except Unavailable as why:
            result = self.local.search(request)
            return replace(result, warnings=self._fallback(why) + result.warnings)
        except _Refused:
            return self.local.search(request)
        return reply.result()

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun:
        from mmcli.engine.local import ClassifyRun
        from mmcli.media.video import is_video
        from mmcli.serve.wire import ClassifyBody, ClassifyReply

        if any(is_video(p) for p in request.paths):  # the wire carries one result per path: timelines run here
            return self.local.classify(request, on_progress, on_labels)
        try:
            if self.wanted_model is not None and self.health().model != self.wanted_model:
                return self.local.classify(request, on_progress, on_labels)  # it holds another model
            body = ClassifyBody.of(request, [os.path.abspath(p) for p in request.paths])
            reply = self._post("/classify", body, ClassifyReply, timeout=3600)
        except Unavailable as why:
            run = self.local.classify(request, on_progress, on_labels)
            return replace(run, warnings=self._fallback(why) + run.warnings)
        except _Refused:
            return self.local.classify(request, on_progress, on_labels)
        if len(reply.results) != len(request.paths):
            raise MmcliError(
                f"the mmcli server at {self.url} answered {len(reply.results)} results for {len(request.paths)} images"
            )
        items = [r.item(original) for r, original in zip(reply.results, request.paths)]
        return ClassifyRun(tuple(reply.warnings), iter(items))

    def health(self) -> Health:
        """The server's /health, checked: it answers in time, validly, and knows the token."""
        from mmcli.serve.wire import HealthReply

        nonce = secrets.token_hex(16)
        req = urllib.request.Request(self.url + "/health", headers={NONCE_HEADER: nonce})
        try:
            with urllib.request.urlopen(req, timeout=CHECK_TIMEOUT) as resp:
                answer = resp.headers.get(PROOF_HEADER, "")
                health = HealthReply.model_validate(json.loads(resp.read())).health()
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise Unavailable("does not answer as an mmcli server") from exc
        if self.token is not None and not hmac.compare_digest(answer, proof(self.token, nonce)):
            raise Unavailable("is not the server that wrote the discovery file")
        return health

    def _post(self, endpoint: str, body: Any, reply_type: type[T], timeout: float) -> T:
        """POST a wire model; the reply, validated."""
        data = json.dumps(body.model_dump(), ensure_ascii=True).encode()
        req = urllib.request.Request(self.url + endpoint, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return reply_type.model_validate(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 403 and not self.explicit:
                raise _Refused from None  # a found server that may not read this path: do it here
            message = f"server {self.url}: {detail.get('error') or exc.reason}"
            if exc.code in (400, 403, 413, 422):
                raise UsageError(message, hint=detail.get("hint")) from None
            raise MmcliError(message) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise Unavailable("did not answer the request") from exc


class _Refused(Exception):
    """A server that was only found refuses a path outside its allowed roots."""


def _error_detail(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        detail = json.loads(exc.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(detail, dict):
        return {}
    return {k: v for k, v in detail.items() if k in ("error", "hint") and isinstance(v, str)}


def choose_engine(server: str | None, local: LocalEngine, *, for_classify: bool = False) -> Engine:
    """A running server when one is named or found and holds what ``local`` would use; else ``local``.

    Searches use a server only when no ``--model``/``--weights`` is given (the server holds the
    index's model). Classification uses it only when it holds the very model ``local`` would load.
    """
    if local.weights is not None or (local.model is not None and not for_classify):
        return local
    found = find_server(server, None if for_classify else local.index)
    if found is None:
        return local
    wanted = None
    if for_classify:
        from mmcli.config import default_model

        wanted = local.model or default_model()
    return RemoteEngine(found, local, wanted_model=wanted)
