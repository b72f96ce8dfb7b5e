"""Talking to a running `mmcli serve`: finding it, checking it, and the engine that calls it.

A server is used when given (``--server URL`` / ``MMCLI_SERVER``) or found (``server.json`` in
MMCLI_HOME, written by `mmcli serve` with mode 0600, whose process is alive and which serves the
same index). Before any query leaves this process the server must answer ``/health`` within
``CHECK_TIMEOUT``, serve the same index, and, when the discovery file gave a token, prove it knows
the token (an HMAC of a fresh nonce: the token never travels). Requests and replies are
``mmcli.wire``'s, every answer checked. When the server cannot be used, ``RemoteEngine`` says so
(``Unanswered``, with one warning) and the command does the work in-process (``mmcli.cli.engines``); the
output is the same. The HTTP libraries are imported when a server is used, not before.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli import wire
from mmcli.engine.local import ClassifyRun, Unanswered
from mmcli.errors import MmcliError, UsageError
from mmcli.index.lock import process_alive
from mmcli.queries.requests import ClassifyRequest, SearchRequest
from mmcli.results import Health, SearchResult

if TYPE_CHECKING:
    from mmcli.results import ProgressFn

DISCOVERY = "server.json"
NONCE_HEADER = "X-Mmcli-Nonce"
PROOF_HEADER = "X-Mmcli-Proof"
HOST_RE = re.compile(r"^[A-Za-z0-9._:%-]+$")
CHECK_TIMEOUT = 2.0  # seconds for /health: a stopped or foreign server costs this, not a minute


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
    import hashlib
    import hmac

    return hmac.new(token.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def server_url(raw: str, what: str) -> str:
    """``localhost:8765`` -> ``http://localhost:8765``; anything but an http(s) URL is a usage error."""
    import urllib.parse

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


class RemoteEngine:
    """An engine whose work runs in `mmcli serve`; ``Unanswered`` where the server cannot be used for a
    call (``index``: the index this process would search; ``wanted_model``: the model a classification
    needs)."""

    def __init__(self, found: FoundServer, index: Path | None, wanted_model: str | None = None) -> None:
        self.url, self.explicit, self.token = found.url, found.explicit, found.token
        self.index, self.wanted_model = index, wanted_model

    def _unavailable(self, why: str) -> Unanswered:
        return Unanswered(why, (f"the mmcli server at {self.url} {why}; working in-process",))

    def search(self, request: SearchRequest) -> SearchResult:
        served = self.health().index
        if self.index is not None and Path(served) != self.index:
            raise self._unavailable(f"serves another index ({served})")
        return self._read(SearchResult, self._post("/search", wire.search_values(request), timeout=120))

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun:
        from mmcli.queries.terms import names_a_video

        if any(names_a_video(p) for p in request.paths):
            raise Unanswered("the wire carries one result per path: timelines run here")
        if self.wanted_model is not None and self.health().model != self.wanted_model:
            raise Unanswered("it holds another model")
        absolute = [os.path.abspath(p) for p in request.paths]
        body = {**wire.classify_values(request), "paths": absolute}
        reply = self._post("/classify", body, timeout=3600)
        results = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(results, list) or not isinstance(reply.get("warnings", []), list):
            raise self._unavailable("did not answer the request")
        if len(results) != len(request.paths):
            raise MmcliError(
                f"the mmcli server at {self.url} answered {len(results)} results for {len(request.paths)} images"
            )
        try:
            items = [replace(wire.read_item(r), path=original) for r, original in zip(results, request.paths)]
            warnings = tuple(self._read(str, w) for w in reply.get("warnings", []))
        except wire.WireError:
            raise self._unavailable("did not answer the request") from None
        return ClassifyRun(warnings, iter(items))

    def health(self) -> Health:
        """The server's /health, checked: it answers in time, validly, and knows the token."""
        import hmac
        import http.client
        import secrets
        import urllib.request

        nonce = secrets.token_hex(16)
        req = urllib.request.Request(self.url + "/health", headers={NONCE_HEADER: nonce})
        try:
            with urllib.request.urlopen(req, timeout=CHECK_TIMEOUT) as resp:
                answer = resp.headers.get(PROOF_HEADER, "")
                health = wire.read(Health, json.loads(resp.read()))
        except (OSError, ValueError, http.client.HTTPException):
            raise self._unavailable("does not answer as an mmcli server") from None
        if self.token is not None and not hmac.compare_digest(answer, proof(self.token, nonce)):
            raise self._unavailable("is not the server that wrote the discovery file")
        return health

    def _read(self, kind: Any, found: Any) -> Any:
        try:
            return wire.read(kind, found)
        except wire.WireError:
            raise self._unavailable("did not answer the request") from None

    def _post(self, endpoint: str, body: dict[str, Any], timeout: float) -> Any:
        """POST a JSON body; the reply's JSON."""
        import http.client
        import urllib.error
        import urllib.request

        data = json.dumps(body, ensure_ascii=True).encode()
        req = urllib.request.Request(self.url + endpoint, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 403 and not self.explicit:
                raise Unanswered("a found server may not read this path: done here") from None
            message = f"server {self.url}: {detail.get('error') or exc.reason}"
            if exc.code in (400, 403, 413, 422):
                raise UsageError(message, hint=detail.get("hint")) from None
            raise MmcliError(message) from None
        except (OSError, ValueError, http.client.HTTPException):
            raise self._unavailable("did not answer the request") from None


def _error_detail(exc: Any) -> dict[str, Any]:
    try:
        detail = json.loads(exc.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(detail, dict):
        return {}
    return {k: v for k, v in detail.items() if k in ("error", "hint") and isinstance(v, str)}
