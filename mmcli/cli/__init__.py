"""The ``mmcli`` command line: parse -> call one core function -> render. See ``app.py``."""

from mmcli.cli.app import app, main

__all__ = ["app", "main"]
