"""The ``mmcli`` command line: parse -> call one core function -> render. See ``app.py``.

``main`` (``entry.py``) imports little: a plain search or classify may be answered before Typer is
imported (``fast.py``). ``app``, the Typer app, is imported on first use.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from mmcli.cli.entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        import mmcli.cli.app  # noqa: F401  (sets ``app`` below, through _Package.__setattr__)

        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(ModuleType):
    """``mmcli.cli.app`` is the Typer app, not the module ``app.py`` that defines it (as when this
    package imported it eagerly): importing that module sets this attribute, and it is kept to the app."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "app" and isinstance(value, ModuleType):
            value = value.app
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
