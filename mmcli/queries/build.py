"""Requests built once, from what users give: ``search_request`` and ``classify_request``.

Every way in calls these: the command line and its fast path (values as typed: text), the Python API
and MCP (typed values), the server and the resident helper (JSON values: what ``mmcli.wire`` writes).
A value may be text as typed (``top_k="10"``, ``threshold="auto"``, ``after="2024-05"``) or already of
its type (``top_k=10``); it is converted by the request field's type, then the request checks it
(``mmcli.queries.requests``). Names are the request's fields, besides the terms' shorthand (``query``,
``image``, ``add``, ``sub``, and ``terms`` built already) and the dates users give (``after``,
``before``). A new request field needs nothing here unless its text needs more than its type says.
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from mmcli.errors import UsageError
from mmcli.queries.dates import period
from mmcli.queries.requests import AUTO, ClassifyRequest, SearchRequest, check_templates, option_of
from mmcli.queries.terms import Term, Visible, _everywhere, build_terms

TERM_VALUES = ("query", "image", "add", "sub", "terms")


def search_request(visible: Visible = _everywhere, /, **values: Any) -> SearchRequest:
    """The search asked for by ``values`` (None: not given). ``visible``: the paths that may be looked
    at (a server: its roots); others are never looked up."""
    given = {k: v for k, v in values.items() if v is not None}
    _known(SearchRequest, given, TERM_VALUES)
    terms = _terms(given, visible)
    start, stop = period(_date("after", given.pop("after", None)), _date("before", given.pop("before", None)))
    if "threshold" in given:
        given["threshold"] = _threshold(given["threshold"])
    if "within" in given:
        given["within"] = SearchRequest.folder(_path("within", given["within"]), visible)
    if "rerank" in given:
        given["rerank"] = SearchRequest.model_here(_path("rerank", given["rerank"]))
    if "rerank_weights" in given:
        given["rerank_weights"] = SearchRequest.file_here(_path("rerank_weights", given["rerank_weights"]))
    typed = {name: convert(SearchRequest, name, value) for name, value in given.items()}
    return SearchRequest(terms, after=start, before=stop, **typed)


def classify_request(**values: Any) -> ClassifyRequest:
    """The classification asked for by ``values`` (None: not given): ``paths`` (files, as the user gave
    them), ``labels``, ``templates`` (a set's name, or templates) or ``template`` (templates), and the
    request's other fields. ``threshold`` is 0.5 with ``multi_label`` unless given; ``max_pixels``
    $MMCLI_MAX_PIXELS (or the default) unless given."""
    from mmcli.config import settings, templates_named

    given = {k: v for k, v in values.items() if v is not None}
    _known(ClassifyRequest, given, ("template",))
    paths, labels = given.pop("paths", ()), given.pop("labels", ())
    if isinstance(paths, (str, os.PathLike)) or isinstance(labels, str):
        raise UsageError("paths and labels are lists, e.g. labels=['cat', 'dog']")
    template, templates = given.pop("template", None), given.pop("templates", None)
    if template and templates:
        raise UsageError("give --template or --templates, not both")
    if isinstance(templates, str) or not (template or templates):
        chosen = templates_named(templates if isinstance(templates, str) else "default")
    else:
        chosen = list(template or templates)
    typed = {name: convert(ClassifyRequest, name, value) for name, value in given.items()}
    if "threshold" not in typed and typed.get("multi_label") is True:
        typed["threshold"] = 0.5
    typed.setdefault("max_pixels", settings().max_pixels)
    return ClassifyRequest(tuple(os.fspath(p) for p in paths), tuple(labels), tuple(check_templates(chosen)), **typed)


# ------------------------------------------------------------------------------------- the parts
def _known(cls: type, given: Mapping[str, Any], extra: Sequence[str]) -> None:
    names = {f.name for f in fields(cls)} | set(extra)
    unknown = sorted(set(given) - names)
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}", hint=f"known: {', '.join(sorted(names))}")


def _terms(given: dict[str, Any], visible: Visible) -> tuple[Term, ...]:
    """The main text (words joined), ``image``, ``add``/``sub`` terms as typed, then ``terms`` built already
    (``Term``s, or their JSON: ``{"weight", "text" | "image", "time"}``)."""
    query, image = given.pop("query", None), given.pop("image", None)
    add, sub, built = (_many(name, given.pop(name, ())) for name in ("add", "sub", "terms"))
    if not all(isinstance(t, str) for t in (*add, *sub)):
        raise UsageError("--add and --sub terms are text: [WEIGHT:]TEXT or an image path")
    if query is not None and not isinstance(query, str):
        if not isinstance(query, Sequence) or not all(isinstance(w, str) for w in query):
            raise UsageError(f"the query is text, not {query!r}")
        query = " ".join(query) or None  # the words of the command line, joined
    if image is not None:
        image = _path("image", image)
    asked = query is not None or image is not None or add or sub
    terms = [*build_terms(query, image, add, sub, visible)] if asked else []
    terms += [t if isinstance(t, Term) else _term(t) for t in built]
    if not terms:
        build_terms(None, None)  # "nothing to search for"
    return tuple(terms)


def _term(value: Any) -> Term:
    if not isinstance(value, Mapping) or set(value) - {"weight", "text", "image", "time"}:
        raise UsageError("a term is {weight, text} or {weight, image, time}")
    text, image = value.get("text"), value.get("image")
    if (text is None) == (image is None):
        raise UsageError("a term has exactly one of text and image")
    weight, time = (_float(value.get(k)) for k in ("weight", "time"))
    return Term(1.0 if weight is None else weight, text if image is None else image, image is not None, time)


def _float(value: Any) -> Any:
    """A whole number given where a number goes, as that number (JSON writes 1.0 as 1)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _many(name: str, value: Any) -> list[Any]:
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if not isinstance(value, Sequence):
        raise UsageError(f"{option_of(name)}: a list of values, not {value!r}")
    return list(value)


def _path(name: str, value: Any) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    if not isinstance(value, str):
        raise UsageError(f"{option_of(name)} {value!r}: not a path")
    return value


def _date(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{option_of(name)} {value!r}: not a date (YYYY, YYYY-MM, YYYY-MM-DD or an ISO date and time)")
    return value


def _threshold(value: Any) -> float | str:
    """A cosine similarity, or "auto"; text as typed."""
    if not isinstance(value, str):
        return _float(value)  # (a number; the request checks it)
    if value.strip().lower() == AUTO:
        return AUTO
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"--threshold {value}: not a number or 'auto'", hint="e.g. --threshold 0.25") from None


KINDS = {"int": int, "float": float, "bool": bool, "Path": Path}  # the field types text is converted to


@functools.cache
def _hints(cls: type) -> dict[str, tuple[Any, ...]]:
    """Each field's types, ``None`` left out (``int | None`` -> ``(int,)``): read once per class, from the
    annotations as written (``from __future__ import annotations``: text), without evaluating them; a type
    text is not converted to is kept as its name."""
    found: dict[str, tuple[Any, ...]] = {}
    for f in fields(cls):
        names = [n.strip() for n in (f.type if isinstance(f.type, str) else _name(f.type)).split("|")]
        found[f.name] = tuple(KINDS.get(n, n) for n in names if n != "None")
    return found


def _name(kind: Any) -> str:
    return " | ".join(getattr(k, "__name__", str(k)) for k in typing.get_args(kind) or (kind,))


FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def convert(cls: type, name: str, value: Any) -> Any:
    """``value`` for the field ``name`` of the dataclass ``cls``: text as typed made a whole number, a
    number, a flag (true/false, as a URL's query string gives it) or a path as the field's type says;
    whole numbers given for numbers made numbers; anything else as it is (the dataclass checks it)."""
    if value is None or isinstance(value, bool):
        return value
    kinds = _hints(cls)[name]
    if not isinstance(value, str):
        return _float(value) if kinds == (float,) else value
    if kinds in ((int,), (float,)):
        try:
            return kinds[0](value)
        except ValueError:
            what = "a whole number" if kinds == (int,) else "a number"
            raise UsageError(f"{option_of(name)} {value}: not {what}") from None
    if kinds == (bool,):
        if value.strip().lower() not in FLAGS:
            raise UsageError(f"{option_of(name)} {value!r}: not true or false")
        return FLAGS[value.strip().lower()]
    if kinds == (Path,):
        return Path(value)
    return value
