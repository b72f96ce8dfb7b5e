"""One wire format for what crosses a process: requests and results as JSON values, for the resident
helper (``mmcli.helper``) and the server (``mmcli.serve``) alike.

A request travels as the values its builder reads (``mmcli.queries.build``): ``search_values(request)``
is the JSON object that ``search_request(**object)`` reads back to the same request (terms built, image
paths absolute, dates as exact instants), so a request keeps one shape from the command line to the
engine, and the server reads what users send (``query``, ``add``, dates as they type them) with the same
builder. Results travel as their dataclasses' fields (``dataclasses.asdict``) and are read back, checked
against those fields' types, by ``read``: a reply that is not what was asked is a ``WireError``. The
JSON schemas the server publishes are made from the same dataclasses (``schema``). Standard library only.

Paths travel as JSON strings; names that are not valid UTF-8 travel as ``\\udcXX`` escapes
(``ensure_ascii`` JSON) and round-trip.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from mmcli.errors import ExitCode, MmcliError
from mmcli.queries.dates import as_text
from mmcli.queries.requests import ClassifyRequest, SearchRequest
from mmcli.queries.terms import Term
from mmcli.results import Classification, FileFailure, LabelScore, Segment

T = TypeVar("T")
Item = Classification | Segment | FileFailure  # what a classification gives, one file (or stretch) at a time


class WireError(ValueError):
    """A value that is not what the wire format says (a foreign or broken peer)."""


# ------------------------------------------------------------------------------------- requests
def term_value(term: Term) -> dict[str, Any]:
    """``{"weight", "text"}`` or ``{"weight", "image", "time"}``: a term as the server takes it."""
    if not term.is_image:
        return {"weight": term.weight, "text": term.value}
    return {"weight": term.weight, "image": term.value, "time": term.time}


def search_values(request: SearchRequest) -> dict[str, Any]:
    """The values ``search_request`` reads back to ``request``."""
    values = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    values["terms"] = [term_value(t) for t in request.terms]
    for name in ("after", "before"):
        values[name] = None if values[name] is None else as_text(values[name])  # instants: read back exactly
    return values


def classify_values(request: ClassifyRequest) -> dict[str, Any]:
    """The values ``classify_request`` reads back to ``request`` (templates as a list: the templates)."""
    return {f.name: _plain(getattr(request, f.name)) for f in dataclasses.fields(request)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------- results
def value(result: Any) -> Any:
    """A result (a frozen dataclass of ``mmcli.results``) as a JSON value."""
    return dataclasses.asdict(result)


def item_value(item: Item) -> dict[str, Any]:
    """One classified file (``labels``), one stretch of a video's timeline (``start``/``end`` in seconds,
    one label), or a file that could not be used (``reason``)."""
    if isinstance(item, FileFailure):
        return {"path": item.path, "labels": None, "reason": item.reason, "start": None, "end": None}
    if isinstance(item, Segment):
        labels = [{"label": item.label, "score": item.score}]
        return {"path": item.path, "labels": labels, "reason": None, "start": item.start, "end": item.end}
    labels = [dataclasses.asdict(x) for x in item.labels]
    return {"path": item.path, "labels": labels, "reason": None, "start": None, "end": None}


def read_item(found: Any) -> Item:
    """``item_value`` read back, checked."""
    if not isinstance(found, dict):
        raise WireError("item: not an object")
    path = read(str, found.get("path"), "item.path")
    labels = read(tuple[LabelScore, ...] | None, found.get("labels"), "item.labels")  # type: ignore[arg-type]
    reason = read(str | None, found.get("reason"), "item.reason")  # type: ignore[arg-type]
    start, end = (read(float | None, found.get(k), f"item.{k}") for k in ("start", "end"))  # type: ignore[arg-type]
    if labels is None:
        return FileFailure(path, reason or "failed")
    if start is not None and end is not None and labels:
        return Segment(path, start, end, labels[0].label, labels[0].score)
    return Classification(path, labels)


def error_value(exc: MmcliError) -> dict[str, Any]:
    return {"message": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}


def read_error(found: Any) -> MmcliError:
    """An error the other side met, as this process says it (its exit code kept)."""
    if not isinstance(found, dict) or not isinstance(found.get("message"), str):
        return MmcliError(f"the mmcli helper gave up: {found}")
    error = MmcliError(found["message"], found.get("hint") if isinstance(found.get("hint"), str) else None)
    code = found.get("exit_code")
    error.exit_code = ExitCode(code) if code in set(ExitCode) else ExitCode.ERROR
    return error


# ------------------------------------------------------------------------------------- reading back
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def read(kind: type[T], found: Any, where: str = "") -> T:
    """``found`` (a JSON value) as ``kind``: a dataclass (its fields by name; unknown names ignored, a
    field without a default required), ``int``, ``float``, ``str``, ``bool``, ``X | None``, ``tuple[X,
    ...]``, ``dict[str, X]``. A WireError naming the place of the first value of the wrong type."""
    return _read(kind, found, where or getattr(kind, "__name__", "value"))


def _read(kind: Any, found: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(found, dict):
            raise WireError(f"{where}: not an object")
        given = {}
        for f in dataclasses.fields(kind):
            if f.name in found:
                given[f.name] = _read(_hints(kind)[f.name], found[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{where}.{f.name}: missing")
        try:
            return kind(**given)
        except MmcliError as exc:
            raise WireError(f"{where}: {exc.message}") from None
    if origin in (typing.Union, types.UnionType):
        if found is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _read(option, found, where)
            except WireError:
                continue
        raise WireError(f"{where}: not {' or '.join(getattr(a, '__name__', str(a)) for a in args)}")
    if origin is tuple:
        if not isinstance(found, list):
            raise WireError(f"{where}: not a list")
        return tuple(_read(args[0], x, f"{where}[{i}]") for i, x in enumerate(found))
    if origin is dict:
        if not isinstance(found, dict) or not all(isinstance(k, str) for k in found):
            raise WireError(f"{where}: not an object")
        return {k: _read(args[1], v, f"{where}.{k}") for k, v in found.items()}
    if kind is float and isinstance(found, (int, float)) and not isinstance(found, bool):
        return float(found)
    if kind in (int, str, bool) and isinstance(found, kind) and (kind is bool or not isinstance(found, bool)):
        return found
    raise WireError(f"{where}: not {getattr(kind, '__name__', kind)}")


# ------------------------------------------------------------------------------------- schemas
def schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of ``kind``'s wire form (the server's /openapi.json)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        required = [
            f.name
            for f in dataclasses.fields(kind)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        props = {f.name: schema(hints[f.name]) for f in dataclasses.fields(kind)}
        return {"title": kind.__name__, "type": "object", "properties": props, "required": required}
    if args and origin is not tuple and origin is not dict:
        return {"anyOf": [schema(a) for a in args]}
    if origin is tuple:
        return {"type": "array", "items": schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema(args[1])}
    names = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}
    return {"type": names.get(kind, "string")}


def search_schema() -> dict[str, Any]:
    """POST /search: the request's fields, the terms' shorthand, dates as users type them."""
    body = schema(SearchRequest)
    props = body["properties"]
    text, texts = {"type": "string"}, {"type": "array", "items": {"type": "string"}}
    term = {
        "type": "object",
        "properties": {"weight": {"type": "number"}, "text": text, "image": text, "time": {"type": "number"}},
    }
    props.update(query=text, image=text, add=texts, sub=texts, terms={"type": "array", "items": term})
    props.update(after=text, before=text, threshold={"anyOf": [{"type": "number"}, {"const": "auto"}]})
    body.update(title="SearchBody", required=[])
    return body


def classify_schema() -> dict[str, Any]:
    """POST /classify: absolute paths, labels, templates and the request's other fields."""
    body = schema(ClassifyRequest)
    body.update(title="ClassifyBody", required=["paths", "labels"])
    return body
