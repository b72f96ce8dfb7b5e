"""ASGI middleware of `mmcli serve` that shapes requests and answers (refusals are ``guards``): HEAD
answers as GET does, without the body; the JSON endpoints read a JSON body whatever its declared
type; and an error no handler knew becomes a JSON 500 and one line on stderr, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any


class HeadAsGet:
    """HEAD on a GET route: the GET answer's status and headers (Content-Length included), no body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class JsonBodies:
    """Bodies of ``paths`` are JSON whatever their Content-Type says: ``curl -d '{...}'`` declares a
    form. (Another site's page posting a form is refused before this by its Origin: ``guards``.)"""

    def __init__(self, app: Any, paths: Collection[str]) -> None:
        self.app, self.paths = app, frozenset(paths)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope.get("path") in self.paths:
            headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


class NoTracebacks:
    """The outermost layer: an exception that reached it is told in one line (``log``) and, if no
    answer has started, answered with a JSON 500; it never reaches the server's own logging."""

    def __init__(self, app: Any, log: Callable[[str], None]) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the last resort: no traceback reaches a client or the terminal
            if scope["type"] != "http":
                raise
            what = f"{type(exc).__name__}: {exc}"[:300]
            self.log(f"{scope.get('method')} {scope.get('path')}: internal error ({what})")
            if not started:
                body = json.dumps({"error": f"internal error ({what})"}).encode()
                await send(
                    {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})
