"""`mmcli serve`'s wire format (``mmcli.serve.wire``) for the resident helper's client, without
pydantic: the client builds the bodies and checks the replies here (tests compare both with the
pydantic models); the helper validates with the models themselves."""

from __future__ import annotations

from typing import Any

from mmcli.queries import SearchRequest
from mmcli.results import Classification, FileFailure, Hit, LabelScore, SearchResult
from mmcli.serve.daemon_client import Unusable


def search_body(request: SearchRequest) -> dict[str, Any]:
    """``mmcli.serve.wire.SearchBody.of(request)``, without pydantic (a test compares the two)."""
    from mmcli.media.taken import as_text

    return {
        "terms": [{"weight": t.weight, ("image" if t.is_image else "text"): t.value} for t in request.terms],
        "top_k": request.top_k,
        "threshold": request.threshold,
        "within": request.within,
        "exact": request.exact,
        "max_pixels": request.max_pixels,
        "after": None if request.after is None else as_text(request.after),
        "before": None if request.before is None else as_text(request.before),
        "sort": request.sort,
        "all_moments": request.all_moments,
    }


def _check(value: Any, kinds: tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        raise Unusable(f"it answered a malformed {what}")
    return value


def search_result(reply: Any) -> SearchResult:
    """``SearchReply.model_validate(reply).result()``, without pydantic: anything else is Unusable."""
    _check(reply, (dict,), "reply")
    hits = []
    for h in _check(reply.get("hits"), (list,), "reply"):
        _check(h, (dict,), "hit")
        time_ = _check(h.get("time"), (int, float, type(None)), "hit")
        hits.append(
            Hit(
                _check(h.get("rank"), (int,), "hit"),
                _check(h.get("path"), (str,), "hit"),
                None if time_ is None else float(time_),
                float(_check(h.get("score"), (int, float), "hit")),
                _check(h.get("taken"), (str, type(None)), "hit"),
                _check(h.get("taken_source"), (str, type(None)), "hit"),
            )
        )
    warnings = [_check(w, (str,), "warning") for w in _check(reply.get("warnings", []), (list,), "reply")]
    return SearchResult(tuple(hits), tuple(warnings))


def classify_item(item: Any) -> Classification | FileFailure:
    """``ClassifyItem.model_validate(item).item(path)``, without pydantic (the path as the helper
    sends it: as the user gave it)."""
    _check(item, (dict,), "result")
    path = _check(item.get("path"), (str,), "result")
    labels = item.get("labels")
    if labels is None:
        return FileFailure(path, _check(item.get("reason"), (str, type(None)), "result") or "failed")
    scores = []
    for x in _check(labels, (list,), "result"):
        _check(x, (dict,), "label")
        scores.append(
            LabelScore(_check(x.get("label"), (str,), "label"), float(_check(x.get("score"), (int, float), "label")))
        )
    return Classification(path, tuple(scores))
