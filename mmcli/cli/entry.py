"""``mmcli``'s entry point. A plain `search` or `classify` goes to the fast path first
(``mmcli.cli.fast``: the resident helper answers, no Typer import); everything else, and whatever the
fast path hands back, goes to the Typer app (``mmcli.cli.app``)."""

from __future__ import annotations

import sys
from types import ModuleType

FAST_COMMANDS = ("search", "classify")


def main() -> None:
    fast: ModuleType | None = None
    if sys.argv[1:2] and sys.argv[1] in FAST_COMMANDS:
        from mmcli.cli import fast

        code = fast.run(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    from mmcli.cli import app

    try:
        app()
    except SystemExit as done:
        if fast is not None and done.code in (0, None):
            fast.start_pending()  # it worked in-process; the next one need not
        raise
