"""What a user asks for, parsed once, before it reaches an engine: search terms (``terms``), the dates
users give (``dates``), the requests and the rule of what each may hold (``requests``), and the one
way from user values to a request (``build``)."""

from mmcli.queries.build import classify_request, search_request
from mmcli.queries.dates import as_text, parse_date, period
from mmcli.queries.requests import (
    AUTO,
    DEFAULT_TEMPLATE,
    RERANK_K,
    SORTS,
    ClassifyRequest,
    SearchRequest,
)
from mmcli.queries.terms import (
    IMAGE_SUFFIXES,
    MOMENT_RE,
    VIDEO_SUFFIXES,
    WEIGHT_RE,
    Term,
    Visible,
    build_terms,
    describe,
    image_term,
    looks_like_path,
    names_a_file,
    parse_term,
    split_moment,
)

__all__ = [
    "AUTO", "DEFAULT_TEMPLATE", "IMAGE_SUFFIXES", "MOMENT_RE", "RERANK_K", "SORTS", "VIDEO_SUFFIXES", "WEIGHT_RE",
    "ClassifyRequest", "SearchRequest", "Term", "Visible", "as_text", "build_terms", "classify_request", "describe",
    "image_term", "looks_like_path", "names_a_file", "parse_date", "parse_term", "period", "search_request",
    "split_moment",
]  # fmt: skip
