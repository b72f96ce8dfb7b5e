"""`mmcli helper` (also `mmcli daemon`, its older name): the resident helpers of search and classify
(``mmcli.helper``): list, stop."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mmcli.cli.console import funnel, say
from mmcli.cli.options import FormatOpt, command


@command(
    short="The resident helpers that keep searches warm: list or stop them.",
    examples=("mmcli helper", "mmcli helper stop", "MMCLI_HELPER=off mmcli search 'a red car'   (none used)"),
)
def helper(
    action: Annotated[str, typer.Argument(help="status: list this user's helpers | stop: stop them all.")] = "status",
    fmt: FormatOpt = None,
) -> None:
    """The resident helpers: the first `mmcli search` / `mmcli classify` starts one in the background,
    which answers the next ones warm and exits after $MMCLI_HELPER_IDLE seconds (600) without a query.
    `mmcli daemon` is the same command under its older name."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.views import HELPERS
        from mmcli.errors import UsageError
        from mmcli.helper.admin import helpers, status_of, stop_all

        if action == "stop":
            stopped, removed = stop_all()
            say(f"mmcli helper: stopped {stopped} helper{'s' if stopped != 1 else ''}")
            if removed:
                say(f"mmcli helper: removed {removed} stale socket{'s' if removed != 1 else ''}")
            return
        if action != "status":
            raise UsageError(f"unknown action {action!r}", hint="choose status or stop")
        out_format = choose_format(HELPERS, fmt, sys.stdout)
        found = [s for s in (status_of(path) for path in helpers()) if s is not None]
        render(found, HELPERS, out_format)
        if not found:
            say("mmcli helper: no helper is running")
