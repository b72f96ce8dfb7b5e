"""``mmcli``'s entry point. `search` and `classify` go to the fast path first (``mmcli.cli.fast``: their
arguments read without Typer, their body run here); everything else, and whatever the fast path hands
back, goes to the Typer app (``mmcli.cli.app``)."""

from __future__ import annotations

import sys

FAST_COMMANDS = ("search", "classify")


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in FAST_COMMANDS:
        from mmcli.cli import fast

        code = fast.run(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from mmcli.cli import app

    app()
