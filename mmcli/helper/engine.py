"""``HelperEngine``: an engine whose work runs in the resident helper for this index or model
(``mmcli.helper.server``), beside ``LocalEngine`` (this process) and ``RemoteEngine`` (`mmcli serve`).

Requests go as ``mmcli.wire`` writes them and results come back read and checked by it: a search
as one reply; a classification as its label prompts' progress, its warnings, then each file's result
as it comes (with the images' progress), so output streams as it does in-process. Image paths travel
absolute (the helper runs in ``/``) and results come back under the names the user gave.

When the helper cannot answer (none yet, dead, hung, foreign, declining, leaving) before anything was
shown, it raises ``Unanswered`` and the command works in-process (``mmcli.cli.engines``); after output
has begun, a helper that stops answering is an error. Standard library and light mmcli modules only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mmcli import wire
from mmcli.engine.local import ClassifyRun, Unanswered
from mmcli.errors import MmcliError
from mmcli.helper.place import Helper
from mmcli.helper.talk import FINAL, Unusable, exchange, messages
from mmcli.queries.requests import ClassifyRequest, SearchRequest
from mmcli.results import Health, ProgressFn, SearchResult


class HelperEngine:
    """Search and classify through the resident helper ``helper``."""

    def __init__(self, helper: Helper) -> None:
        self.helper = helper

    def search(self, request: SearchRequest) -> SearchResult:
        kind, found = self._ask("search", wire.search_values(request))
        try:
            return wire.read(SearchResult, found)
        except wire.WireError as exc:
            raise Unanswered(f"it answered a malformed reply ({exc})") from None

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun:
        here = os.getcwd()
        given = {os.path.join(here, p): p for p in request.paths}  # (absolute -> as the user gave it)
        absolute = replace(request, paths=tuple(given))
        body = {"request": wire.classify_values(absolute), "progress": on_progress is not None}
        stream = messages(self.helper, "classify", body)
        try:
            for kind, found in stream:
                if kind == "warnings" and isinstance(found, list) and all(isinstance(w, str) for w in found):
                    return ClassifyRun(tuple(found), self._items(stream, given, on_progress))
                if not _progress(kind, found, on_progress, on_labels):
                    _final(kind, found)  # its error raised, or Unanswered
                    raise Unanswered("it replied before its warnings")
        except Unusable as why:
            stream.close()
            raise Unanswered(str(why)) from None
        raise Unanswered("it closed the connection")  # pragma: no cover - messages ends with a final one

    def _items(
        self, stream: Iterator[tuple[str, Any]], given: dict[str, str], on_progress: ProgressFn | None
    ) -> Iterator[Any]:
        try:
            for kind, found in stream:
                if kind == "item":
                    item = wire.read_item(found)
                    yield replace(item, path=given.get(item.path, item.path))
                elif kind == "reply":
                    return
                elif not _progress(kind, found, on_progress, None):
                    raise wire.read_error(found) if kind == "error" else MmcliError(f"the mmcli helper gave up: {kind}")
        except (Unusable, wire.WireError) as why:
            raise MmcliError(f"the mmcli helper stopped answering: {why}") from None
        finally:
            stream.close()

    def health(self) -> Health:
        from mmcli import __version__

        kind, found = self._ask("status", {})
        if not isinstance(found, dict):
            raise Unanswered("it answered a malformed status")
        served = found.get("served") if isinstance(found.get("served"), dict) else {}
        pid = found.get("pid") if isinstance(found.get("pid"), int) else 0
        return Health("ok", str(found.get("model")), self.helper.identity["target"], pid, __version__, dict(served))

    def _ask(self, op: str, body: dict[str, Any]) -> tuple[str, Any]:
        """The helper's final word on ``op``: its reply; its error raised; anything else Unanswered."""
        try:
            kind, found = exchange(self.helper, op, body)
        except Unusable as why:
            raise Unanswered(str(why)) from None
        _final(kind, found)
        return kind, found


def _progress(kind: str, found: Any, on_progress: ProgressFn | None, on_labels: ProgressFn | None) -> bool:
    """A progress message handed on; False for any other."""
    if kind not in ("progress", "labels"):
        return False
    if not (isinstance(found, list) and len(found) == 2 and all(type(v) is int for v in found)):
        raise Unusable("it sent malformed progress")
    report = on_progress if kind == "progress" else on_labels
    if report is not None:
        report(*found)
    return True


def _final(kind: str, found: Any) -> None:
    """Raise for a final word that is no reply: its error, or Unanswered (declined, or not a word at all)."""
    if kind == "error":
        raise wire.read_error(found)
    if kind == "decline":
        raise Unanswered(f"it declined: {found}")
    if kind != "reply":
        raise Unanswered(f"it sent an unexpected {kind!r}" if kind not in FINAL else f"it ended with {kind!r}")
