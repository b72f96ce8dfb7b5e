"""What `mmcli serve` refuses before any work: foreign web pages, oversized bodies, files outside its roots.

A local server is reachable by every web page the user opens: a page on another site can make
the browser POST to 127.0.0.1, and with DNS rebinding (a name of the attacker's that resolves to
127.0.0.1) it can read the answers too. So every request must carry a ``Host`` the server was
bound to (loopback names, IP literals, or names given with ``--allow-host``), and a request that
carries an ``Origin`` (browsers send one on cross-site requests) must come from the server's own
origin or one given with ``--allow-origin``. Programs (curl, mmcli itself) send no Origin.

Browsers send no Origin when another site's page embeds a URL (``<img src>``, ``<script src>``),
which could tell that page which files exist and how large their pictures are. They do send
``Sec-Fetch-Site``: a request without an Origin that says ``cross-site`` or ``same-site`` (another
port on this machine is another origin) is refused too, unless it is a plain top-level navigation
(a link or bookmark to the search page, which that page cannot read).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmcli.queries.terms import WEIGHT_RE, looks_like_path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class Refused(Exception):
    """A request names a file outside the allowed roots (403)."""


class BadPath(Exception):
    """A request names something that cannot be a path at all (a NUL character): 400."""


class PathGuard:
    """The folders whose images requests may name. A missing file and an existing one outside the
    roots get the same answer, so the server does not reveal which files exist.

    Every path a request names goes through ``check`` before anything opens it: a NUL character is a
    400; a symbolic-link loop resolves to itself (the file's own read then says what it is: a 4xx);
    whether a regular file is there is for the reader to find out (``mmcli.media.files.media_stat``
    and ``open_regular``: a FIFO or a device is never opened for reading)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]

    def resolve(self, path: str) -> Path:
        """``path`` with its symbolic links resolved as far as they go (never an error for a loop)."""
        if "\0" in path:
            raise BadPath(f"{path!r} is not a path (a NUL character)")
        return Path(os.path.realpath(path))

    def contains(self, path: str) -> bool:
        """Is ``path`` (resolved) under an allowed root? False for what cannot be a path."""
        try:
            resolved = self.resolve(path)
        except (BadPath, ValueError, OSError):
            return False
        return any(resolved == root or root in resolved.parents for root in self.roots)

    def check(self, path: str) -> None:
        self.resolve(path)  # BadPath first: a 400 says the request is malformed, wherever it points
        if not self.contains(path):
            raise Refused(f"{path} is outside the allowed roots")


def _host_name(value: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


async def _reply(send: Callable[..., Any], status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class HostOriginGuard:
    """ASGI middleware: 403 for a ``Host`` the server does not answer to, or a foreign ``Origin``."""

    def __init__(self, app: Any, port: int, allow_hosts: Sequence[str] = (), allow_origins: Sequence[str] = ()) -> None:
        self.app, self.port = app, port
        self.hosts = LOOPBACK_NAMES | {h.lower() for h in allow_hosts}
        self.origins = {o.rstrip("/").lower() for o in allow_origins}

    def host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        return _is_ip(name) or name in self.hosts

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            host = headers.get("host", "")
            if not self.host_allowed(host):
                await _reply(send, 403, f"host {host!r} is not served here (see mmcli serve --allow-host)")
                return
            origin = headers.get("origin")
            if origin is not None and (origin == "null" or not self.origin_allowed(origin, host)):
                await _reply(send, 403, f"requests from {origin} are refused (see mmcli serve --allow-origin)")
                return
            if origin is None and _embedded_elsewhere(scope, headers):
                await _reply(send, 403, "requests from other sites' pages are refused")
                return
        await self.app(scope, receive, send)


def _embedded_elsewhere(scope: dict[str, Any], headers: Mapping[str, str]) -> bool:
    """A browser request made by another site's page (an image, a script, a frame), not a navigation."""
    if headers.get("sec-fetch-site") not in ("cross-site", "same-site"):
        return False  # same-origin, typed in (none), or not a browser
    navigation = headers.get("sec-fetch-mode") == "navigate" and headers.get("sec-fetch-dest") == "document"
    return not (navigation and scope.get("method") == "GET")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_body`` bytes (``limits[path]`` for the paths named
    there, e.g. image uploads), declared or streamed (chunked), before parsing. A streamed body is cut
    off where it passes the limit: the 413 is sent then, and the endpoint sees the client gone."""

    def __init__(self, app: Any, max_body: int, limits: Mapping[str, int] | None = None) -> None:
        self.app, self.max_body, self.limits = app, max_body, dict(limits or {})

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope.get("path", ""), self.max_body)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, f"body over {limit} bytes")
            return
        seen, over, started = 0, False, False

        async def limited() -> dict[str, Any]:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                if not started:
                    await _reply(send, 413, f"body over {limit} bytes")
                return {"type": "http.disconnect"}
            return message

        async def answer(message: dict[str, Any]) -> None:
            nonlocal started
            if over:
                return  # the 413 has been sent: whatever the endpoint makes of the cut-off body is dropped
            started = True
            await send(message)

        try:
            await self.app(scope, limited, answer)
        except Exception:
            if not over:
                raise  # (the endpoint's complaint about a body that stopped short: answered already)


def named_files(values: dict[str, Any]) -> list[str]:
    """Image paths a search body names, whether or not they exist (checked before any is looked at):
    images, and ``add``/``sub`` terms that look like paths, absolute or not (a relative one as the server
    would read it), with or without their weight; model files too."""
    texts = [v for v in (values.get("image"), values.get("rerank_weights")) if isinstance(v, str)]
    found = [t["image"] for t in _list(values.get("terms")) if isinstance(t, dict) and isinstance(t.get("image"), str)]
    found += texts
    for raw in [r for r in (*_list(values.get("add")), *_list(values.get("sub"))) if isinstance(r, str)]:
        m = WEIGHT_RE.match(raw)
        for value in (raw, m.group(2)) if m else (raw,):
            if not value.startswith("text:") and (os.path.isabs(value) or looks_like_path(value)):
                found.append(value if "\0" in value else os.path.abspath(value))
    rerank = values.get("rerank")
    found += [rerank[10:]] if isinstance(rerank, str) and rerank.startswith("local-dir:") else []
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, str) else []
