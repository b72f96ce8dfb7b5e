"""The fast way in for a plain `mmcli search` or `mmcli classify`: the resident helper answers it
(``mmcli.serve.daemon``), and this process imports neither Typer nor the model libraries. A plain
search that no helper answers (none yet, ``MMCLI_DAEMON=off``) runs here, in-process, with the same
engine as the command, still without Typer and pydantic (~0.2 s of a cold search).

``run`` reads the arguments itself (``mmcli.cli.argv.read_strictly``), for the options in ``SEARCH``
and ``CLASSIFY`` only, and builds the request with the same code as the commands (search.py,
classify.py). It hands the command back to the command line (returns None, having written nothing)
for anything else: another option (--help, --model for search, --server, --html, ...), an argument
it would read differently, an error (the command line says it, as always), a found `mmcli serve`,
videos, or a helper that cannot answer (none yet, dead, hung, foreign: ``daemon_client.Unusable``).
Output goes through the commands' renderers and messages (``output``, ``views``, ``console``), so
stdout and stderr are the same either way (tests compare the bytes).

When a helper could have answered but none did, ``pending`` names it, and ``mmcli.cli.entry`` starts
it after the command has worked in-process and succeeded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.cli.argv import Grammar, Reading, expand_multi_values, read_strictly
from mmcli.errors import ExitCode, MmcliError, NoImagesError

if TYPE_CHECKING:
    from mmcli.cli.output import View
    from mmcli.serve.daemon_client import Helper

SEARCH = Grammar(
    values={
        "--image": "image",
        "--add": "add",
        "--sub": "sub",
        "--top-k": "top_k",
        "-k": "top_k",
        "--threshold": "threshold",
        "--in": "within",
        "--after": "after",
        "--before": "before",
        "--sort": "sort",
        "--index": "index",
        "-i": "index",
        "--format": "fmt",
        "-f": "fmt",
    },
    flags={"--exact": "exact", "--all-moments": "all_moments", "-0": "null", "--null": "null"},
    many=frozenset({"add", "sub"}),
)
CLASSIFY = Grammar(
    values={
        "--labels": "labels",
        "-l": "labels",
        "--labels-file": "labels_file",
        "--template": "template",
        "--templates": "templates",
        "--threshold": "threshold",
        "--top-k": "top_k",
        "-k": "top_k",
        "--format": "fmt",
        "-f": "fmt",
        "--max-pixels": "max_pixels",
        "--model": "model",
        "-m": "model",
    },
    flags={"--multi-label": "multi_label", "--quiet": "quiet", "-q": "quiet", "--include-hidden": "include_hidden"},
    many=frozenset({"labels", "template"}),
)

pending: Helper | None = None  # a helper to start once the command has worked in-process


class _Decline(Exception):
    """Not for the fast path: the command line runs the command."""


def run(argv: list[str]) -> int | None:
    """The exit code of ``mmcli *argv`` (``search ...`` or ``classify ...``) answered by the helper, or
    None when the command line must run it (nothing was written then)."""
    from mmcli.cli.console import handled
    from mmcli.config import settings

    try:
        if argv[0] == "search":
            reading = read_strictly(argv[1:], SEARCH)
            return None if reading is None else _search(reading, settings().daemon)
        if not settings().daemon:
            return None  # MMCLI_DAEMON=off: the command line, as before
        reading = read_strictly(expand_multi_values(argv[1:]), CLASSIFY)
        return None if reading is None else _classify(reading)
    except (_Decline, MmcliError, OSError):  # (OSError: e.g. a folder gone; the command line says it)
        return None
    except KeyboardInterrupt as exc:
        return handled(exc)


def start_pending() -> None:
    """Start the helper that could have answered this command (after it worked in-process)."""
    from mmcli.config import settings
    from mmcli.serve.daemon_client import start

    if pending is not None:
        start(pending, settings().daemon_idle)


def _later(helper: Helper) -> None:
    global pending
    pending = helper


def _number(text: str | None, kind: type[float], low: float | None = None, high: float | None = None) -> Any:
    """An option's value as Click converts it (``int(text)`` / ``float(text)``, then its range)."""
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise _Decline from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Decline
    return value


# ------------------------------------------------------------------------------------------ search
def _search(r: Reading, daemon: bool) -> int | None:
    from mmcli.cli.output import choose_format
    from mmcli.cli.views import HITS
    from mmcli.index.open import index_folder
    from mmcli.media.taken import period
    from mmcli.queries import SearchRequest, build_terms
    from mmcli.serve import daemon_client as dc
    from mmcli.serve import daemon_wire as dw

    top_k = _number(r.text("top_k", "10"), int, low=1)
    threshold = _number(r.text("threshold"), float)
    null = r.flag("null")
    out_format = choose_format(HITS, r.text("fmt"), sys.stdout, nul=null)
    query = " ".join(r.positional) if r.positional else None
    terms = build_terms(query, r.text("image"), r.texts("add") or (), r.texts("sub") or ())
    start, stop = period(r.text("after"), r.text("before"))
    request = SearchRequest(
        terms,
        top_k,
        threshold,
        SearchRequest.folder(r.text("within")),
        r.flag("exact"),
        after=start,
        before=stop,
        sort=r.text("sort", "score") or "",
        all_moments=r.flag("all_moments"),
    )
    folder = index_folder(r.text("index"))
    if not (folder / "index.sqlite").is_file() or dc.serve_found():
        return None
    helper = dc.helper_for("search", os.fspath(folder)) if daemon else None
    if helper is not None:
        try:
            kind, value = dc.exchange(helper, "search", dw.search_body(request))
            if kind == "reply":
                return _show_hits(dw.search_result(value), HITS, out_format, null, threshold is not None)
            if kind != "decline":
                return None  # an error: the command line says it
        except dc.Unusable:
            pass
        _later(helper)  # none answered (or it is leaving: the index's model changed): started after this one
    return _search_here(folder, request, out_format, null, threshold is not None)


def _search_here(folder: Path, request: Any, out_format: str, null: bool, threshold: bool) -> int | None:
    """The search in this process, as the command runs it without a server; the helper that could have
    answered is started once it has worked. An error: None, and the command line says it."""
    from mmcli.cli.console import say
    from mmcli.cli.views import HITS
    from mmcli.engine.local import LocalEngine

    result = LocalEngine(folder, on_note=say).search(request)  # (on_note: a tower's export, seconds, once)
    code = _show_hits(result, HITS, out_format, null, threshold)
    if code == 0:
        start_pending()
    return code


def _show_hits(result: Any, view: View, out_format: str, null: bool, threshold: bool) -> int:
    from mmcli.cli.console import handled, say, warn_all
    from mmcli.cli.output import render

    try:
        warn_all(result.warnings)
        render(result.hits, view, out_format, nul=null)
        if not result.hits:
            say("mmcli: no results" + (" above the threshold" if threshold else ""))
    except (MmcliError, OSError) as exc:
        return handled(exc) or 0
    return 0


# ---------------------------------------------------------------------------------------- classify
def _classify(r: Reading) -> int | None:
    from mmcli.cli.inputs import check_inputs_given, collect_labels
    from mmcli.cli.output import choose_format
    from mmcli.cli.views import classifications
    from mmcli.config import settings, templates_named
    from mmcli.serve import daemon_client as dc

    inputs, labels, model = list(r.positional), r.texts("labels"), r.text("model")
    check_inputs_given(inputs, labels)
    if not inputs or model == "":
        return None
    top_k = _number(r.text("top_k"), int, low=1)
    threshold = _number(r.text("threshold"), float, low=0.0, high=1.0)
    max_pixels = _number(r.text("max_pixels"), int, low=1)
    multi_label, quiet = r.flag("multi_label"), r.flag("quiet")
    more = top_k - 1 if top_k else None if multi_label else 1
    view = classifications(more)  # (videos: the helper declines, the command shows timelines)
    out_format = choose_format(view, r.text("fmt"), sys.stdout)
    labels_file = r.text("labels_file")
    all_labels = collect_labels(labels, Path(labels_file) if labels_file is not None else None)
    template, templates = r.texts("template"), r.text("templates")
    if template and templates:
        return None
    chosen = list(template) if template else templates_named(templates or "default")
    if dc.serve_found():
        return None
    helper = dc.helper_for("classify", model or "")
    if helper is None:
        return None
    body = {
        "inputs": [[given, os.path.join(os.getcwd(), given)] for given in inputs],
        "include_hidden": r.flag("include_hidden"),
        "progress": not quiet and _isatty(sys.stderr),
        "request": {
            "labels": all_labels,
            "templates": chosen,
            "multi_label": multi_label,
            "top_k": top_k,
            "threshold": threshold if threshold is not None else (0.5 if multi_label else None),
            "max_pixels": max_pixels if max_pixels is not None else settings().max_pixels,
        },
    }
    return _Classification(view, out_format, quiet).run(helper, body)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Classification:
    """What `mmcli classify` writes, from the helper's messages: warnings, then each result as it
    comes (a skipped file on stderr), the summary, and the error when nothing could be classified."""

    def __init__(self, view: View, out_format: str, quiet: bool) -> None:
        from mmcli.cli.output import Progress

        self.view, self.out_format, self.quiet = view, out_format, quiet
        self.progress = Progress("classifying", enabled=not quiet)
        self.prompts = Progress("embedding label prompts", enabled=not quiet, unit="prompts")
        self.renderer: Any = None  # made at the helper's "warnings": from then on, output has begun
        self.done: list[Any] = []
        self.failed = 0

    def run(self, helper: Helper, body: dict[str, Any]) -> int | None:
        from mmcli.cli.console import handled
        from mmcli.serve import daemon_client as dc

        start = time.perf_counter()
        try:
            try:
                kind, value = dc.exchange(helper, "classify", body, self.on_message)
            finally:
                self.prompts.close()
                self.progress.close()
            if kind != "reply":
                if self.renderer is None:
                    return None  # the command line does it (and says the error, if it was one)
                return _report_wire_error(value)
            self.renderer.close()
        except dc.Unusable as why:
            if self.renderer is None:
                _later(helper)
                return None
            return handled(MmcliError(f"the mmcli helper stopped answering: {why}"))
        except (MmcliError, OSError) as exc:
            return handled(exc) or 0
        return self._finish(time.perf_counter() - start)

    def on_message(self, kind: str, value: Any) -> None:
        from mmcli.cli.console import warn, warn_all
        from mmcli.cli.output import Renderer
        from mmcli.results import FileFailure
        from mmcli.serve.daemon_client import Unusable
        from mmcli.serve.daemon_wire import classify_item

        if kind in ("progress", "labels"):
            if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
                raise Unusable("it sent malformed progress")
            (self.progress if kind == "progress" else self.prompts).update(*value)
        elif kind == "warnings" and self.renderer is None and isinstance(value, list):
            self.prompts.close()
            warn_all([str(w) for w in value])
            self.renderer = Renderer(self.view, self.out_format)
        elif kind == "item" and self.renderer is not None:
            item = classify_item(value)
            if isinstance(item, FileFailure):
                self.failed += 1
                warn(f"skipped {item.path}: {item.reason}")
            else:
                self.done.append(item)
                self.renderer.write(item)
        else:
            raise Unusable(f"it sent an unexpected {kind!r}")

    def _finish(self, seconds: float) -> int:
        from mmcli.cli.console import handled, summary

        summary("classified", len(self.done), self.failed, seconds, self.quiet)
        if not self.done:
            return handled(NoImagesError(f"no image could be classified ({self.failed} failed)")) or 1
        return 0


def _report_wire_error(value: Any) -> int:
    """An error the helper met after output had begun, said as the command says it."""
    from mmcli.cli.console import handled

    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        return handled(MmcliError(f"the mmcli helper gave up: {value}")) or 1
    error = MmcliError(value["message"], value.get("hint") if isinstance(value.get("hint"), str) else None)
    code = value.get("exit_code")
    error.exit_code = ExitCode(code) if code in set(ExitCode) else ExitCode.ERROR
    return handled(error) or 1
