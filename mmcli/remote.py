"""Talking to a running `mmcli serve`: finding it, and the engine that calls it (plain urllib).

A server is used when given (``--server URL`` / ``MMCLI_SERVER``) or found (``server.json`` in
MMCLI_HOME, written by `mmcli serve`, whose process is alive and which serves the same index).
When it cannot be reached the work is done in-process instead; the output is the same.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmcli.errors import MmcliError, UsageError
from mmcli.queries import ClassifyRequest, SearchRequest
from mmcli.results import Health, SearchResult

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mmcli.engine import ClassifyRun, LocalEngine, ProgressFn

DISCOVERY = "server.json"
T = TypeVar("T", bound="BaseModel")


@dataclass(frozen=True)
class FoundServer:
    url: str
    explicit: bool  # named by the user (a failure is worth a warning), not merely found


def discovery_file() -> Path:
    from mmcli.config import home_dir

    return home_dir() / DISCOVERY


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_server(explicit: str | None, index_folder: Path | None) -> FoundServer | None:
    """The server to use: ``explicit``, else MMCLI_SERVER, else a live one serving ``index_folder``."""
    from mmcli.config import settings

    if explicit:
        return FoundServer(explicit.rstrip("/"), True)
    env = settings().server
    if env == "off":
        return None
    if env:
        return FoundServer(env.rstrip("/"), True)
    try:
        info = json.loads(discovery_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _alive(int(info.get("pid", 0))):
        return None
    if index_folder is not None and Path(info.get("index", "")) != index_folder:
        return None
    url = str(info.get("url", "")).rstrip("/")
    return FoundServer(url, False) if url else None


class Unavailable(Exception):
    """The server cannot be used for this call; the work is done in-process."""


class RemoteEngine:
    """An engine whose work runs in `mmcli serve`; falls back to ``local`` when it cannot be used."""

    def __init__(self, url: str, explicit: bool, local: LocalEngine, wanted_model: str | None = None) -> None:
        self.url, self.explicit, self.local = url, explicit, local
        self.wanted_model = wanted_model

    def _fallback_note(self) -> tuple[str, ...]:
        return (f"no mmcli server answers at {self.url}; working in-process",) if self.explicit else ()

    def search(self, request: SearchRequest) -> SearchResult:
        from mmcli.wire import SearchBody, SearchReply

        try:
            reply = self._post("/search", SearchBody.of(request), SearchReply)
        except Unavailable:
            result = self.local.search(request)
            return replace(result, warnings=self._fallback_note() + result.warnings)
        return reply.result()

    def classify(self, request: ClassifyRequest, on_progress: ProgressFn | None = None) -> ClassifyRun:
        from mmcli.engine import ClassifyRun
        from mmcli.wire import ClassifyBody, ClassifyReply

        try:
            if self.wanted_model is not None and self.health().model != self.wanted_model:
                raise Unavailable  # it holds another model than this command would load
            body = ClassifyBody.of(request, [os.path.abspath(p) for p in request.paths])
            reply = self._post("/classify", body, ClassifyReply)
        except Unavailable:
            run = self.local.classify(request, on_progress)
            return replace(run, warnings=self._fallback_note() + run.warnings)
        items = [r.item(original) for r, original in zip(reply.results, request.paths)]
        return ClassifyRun(tuple(reply.warnings), iter(items))

    def health(self) -> Health:
        from mmcli.wire import HealthReply

        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as resp:
                return HealthReply.model_validate(json.loads(resp.read())).health()
        except (OSError, ValueError) as exc:
            raise Unavailable from exc

    def _post(self, endpoint: str, body: Any, reply_type: type[T]) -> T:
        """POST a wire model; the reply, validated. Unavailable when the server cannot be reached, or
        when a server that was only found (not named) refuses a path outside its allowed roots."""
        data = json.dumps(body.model_dump(), ensure_ascii=True).encode()
        req = urllib.request.Request(self.url + endpoint, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return reply_type.model_validate(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 403 and not self.explicit:
                raise Unavailable from None
            message = f"server {self.url}: {detail.get('error') or exc.reason}"
            if exc.code in (400, 403, 413, 422):
                raise UsageError(message, hint=detail.get("hint")) from None
            raise MmcliError(message) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError) as exc:
            raise Unavailable from exc


def _error_detail(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        detail = json.loads(exc.read())
    except ValueError:
        return {}
    if not isinstance(detail, dict):
        return {}
    if isinstance(detail.get("detail"), list):  # FastAPI's 422: name the field
        first = detail["detail"][0] if detail["detail"] else {}
        where = ".".join(str(p) for p in first.get("loc", [])[1:])
        return {"error": f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid")}
    return detail
