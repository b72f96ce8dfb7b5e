"""The one choice of engine for a command, and the one fallback.

A running `mmcli serve` when one is named (``--server``, ``MMCLI_SERVER``) or found serving this index
(``RemoteEngine``); else the resident helper for this index or model (``HelperEngine``), unless helpers
are off (``MMCLI_HELPER=off``); else this process (``LocalEngine``). Whatever the first cannot answer
(``Unanswered``: no helper yet, a dead or foreign one, a server that is gone, a path outside its roots,
timelines of videos the server does not stream) is done here, in-process, by ``Fallback``; a helper that
could have answered is started once that worked, for the next command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.engine.local import ClassifyRun, Engine, LocalEngine, Unanswered

if TYPE_CHECKING:
    from mmcli.cli.declare import ModelChoice, RunChoice
    from mmcli.helper.place import Helper
    from mmcli.queries.requests import ClassifyRequest, SearchRequest
    from mmcli.results import Health, ProgressFn, SearchResult


def choose_engine(
    kind: str,
    index: Path | None,
    model: ModelChoice,
    server: str | None,
    *,
    run: RunChoice | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Engine:
    """The engine for a ``kind`` ("search" of ``index``, or "classify") with these settings."""
    batch_size, workers = (run.batch_size, run.workers) if run is not None else (None, None)
    local = LocalEngine(index, *model.args, batch_size=batch_size, workers=workers, on_note=on_note)
    remote = _server(kind, local, server)
    if remote is not None:
        return Fallback(remote, local)
    helper = helper_of(kind, local)
    if helper is not None:
        from mmcli.helper.engine import HelperEngine

        return Fallback(HelperEngine(helper), local, then=lambda: _start(helper))
    return local


def _server(kind: str, local: LocalEngine, server: str | None) -> Engine | None:
    """A server for this work: searches use one only without --model/--weights (it holds the index's model);
    classifications only when it holds the very model ``local`` would load."""
    if local.weights is not None or (local.model is not None and kind == "search"):
        return None
    if server is None and not _maybe_server():
        return None
    from mmcli.serve.client import RemoteEngine, find_server

    found = find_server(server, local.index if kind == "search" else None)
    if found is None:
        return None
    wanted = None
    if kind == "classify":
        from mmcli.config import default_model

        wanted = local.model or default_model()
    return RemoteEngine(found, local.index, wanted_model=wanted)


def _maybe_server() -> bool:
    """Might a server be named (MMCLI_SERVER) or running (its discovery file)? A look without the client."""
    from mmcli.config import settings

    current = settings()
    return current.server is not None or (current.home / "server.json").exists()  # (serve.client.DISCOVERY)


def helper_of(kind: str, local: LocalEngine) -> Helper | None:
    """The resident helper that would answer for ``local``, or None (helpers off, no index yet)."""
    from mmcli.helper.place import helper_for

    engine: dict[str, Any] = {"weights": local.weights, "device": local.device, "precision": local.precision}
    if kind == "search":
        if local.index is None or not (local.index / "index.sqlite").is_file():
            return None
        return helper_for(kind, str(local.index), {"model": local.model, **engine})
    engine.update(batch_size=local.batch_size, workers=local.workers)
    return helper_for(kind, local.model or "", engine)


def _start(helper: Helper) -> None:
    from mmcli.config import settings
    from mmcli.helper.place import start

    start(helper, settings().helper_idle)


class Fallback:
    """``first`` answers; where it cannot (``Unanswered``), ``local`` does, in this process, with what
    ``first`` had to say of it among the warnings; ``then`` runs once the work was done here."""

    def __init__(self, first: Engine, local: LocalEngine, then: Callable[[], None] | None = None) -> None:
        self.first, self.local, self.then = first, local, then

    def search(self, request: SearchRequest) -> SearchResult:
        try:
            return self.first.search(request)
        except Unanswered as why:
            result = self.local.search(request)
            self._done()
            return replace(result, warnings=why.said + result.warnings)

    def classify(
        self, request: ClassifyRequest, on_progress: ProgressFn | None = None, on_labels: ProgressFn | None = None
    ) -> ClassifyRun:
        try:
            return self.first.classify(request, on_progress, on_labels)
        except Unanswered as why:
            run = self.local.classify(request, on_progress, on_labels)
            return ClassifyRun(why.said + run.warnings, self._after(run.items))

    def health(self) -> Health:
        try:
            return self.first.health()
        except Unanswered:
            return self.local.health()

    def _after(self, items: Iterator[Any]) -> Iterator[Any]:
        yield from items
        self._done()

    def _done(self) -> None:
        if self.then is not None:
            self.then()
