"""mmcli: zero-shot image classification and text-to-image search with CLIP-family models.

The Python API (``mmcli.api``): ``mmcli.Index(name_or_path)`` with ``.add``, ``.search`` and ``.info``,
``mmcli.classify(paths, labels)`` and ``mmcli.ocr(paths)``. Importing ``mmcli`` loads nothing heavy: the API's
modules are imported on first use of a name below (``__init__.pyi`` gives type checkers the same names).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Index": "mmcli.api",
    "classify": "mmcli.api",
    "ocr": "mmcli.api",
    "write_keywords": "mmcli.api",
    "SidecarChange": "mmcli.xmp.keywords",
    "MmcliWarning": "mmcli.api",
    "MmcliError": "mmcli.errors",
    "UsageError": "mmcli.errors",
    "ImageLoadError": "mmcli.errors",
    "IndexMissing": "mmcli.errors",
    "IndexSummary": "mmcli.index.sync",
    "ImportSummary": "mmcli.index.imports",
    "Hit": "mmcli.results",
    "Classification": "mmcli.results",
    "LabelScore": "mmcli.results",
    "Segment": "mmcli.results",
    "PictureText": "mmcli.results",
    "TextLine": "mmcli.results",
    "OcrUnavailable": "mmcli.errors",
    "IndexInfo": "mmcli.results",
}

__all__ = [  # (types for checkers: __init__.pyi)
    "Classification",
    "Hit",
    "ImageLoadError",
    "ImportSummary",
    "Index",
    "IndexInfo",
    "IndexMissing",
    "IndexSummary",
    "LabelScore",
    "MmcliError",
    "MmcliWarning",
    "OcrUnavailable",
    "PictureText",
    "Segment",
    "SidecarChange",
    "TextLine",
    "UsageError",
    "__version__",
    "classify",
    "ocr",
    "write_keywords",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmcli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
