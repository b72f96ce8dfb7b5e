"""`mmcli mcp`: an index for AI assistants, as a Model Context Protocol server over stdio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mmcli.cli.console import funnel, say
from mmcli.cli.groups import ModelChoice, model_options
from mmcli.cli.options import IndexOpt, command


@command(
    "mcp",
    short="Serve an index to AI assistants (MCP over stdio), read-only.",
    examples=(
        "claude mcp add mmcli -- mmcli mcp            (Claude Code; see README for Claude Desktop and others)",
        "mmcli mcp --index holiday --allow-root ~/Pictures/2024",
    ),
)
@model_options
def mcp(
    index: IndexOpt = None,
    allow_root: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--allow-root",
            help="Folders whose files tools may name (repeatable; default: the folders the index was made from).",
            show_default=False,
        ),
    ] = None,
    *,
    model_choice: ModelChoice,
) -> None:
    """Serve an index to AI assistants over the Model Context Protocol (stdio), read-only: tools search,
    similar, classify, dupes and info."""
    with funnel():
        from mmcli.config import cache_dir
        from mmcli.engine.local import LocalEngine
        from mmcli.errors import UsageError
        from mmcli.index.open import index_folder, open_index

        try:
            import mcp as _sdk  # noqa: F401
        except ImportError:
            from mmcli.serve.mcp_server import INSTALL_HINT

            raise UsageError("mmcli mcp needs the MCP Python SDK", hint=INSTALL_HINT) from None
        from mmcli.explore.dupes import find_dupes
        from mmcli.serve.mcp_server import create_server, serve_stdio

        folder = index_folder(index)
        store = open_index(folder)  # a missing or empty index is an error now, not at the first call
        try:
            recorded = [Path(r) for r in store.roots()]
        finally:
            store.close()
        roots = tuple(allow_root or recorded)
        if not roots:
            raise UsageError(f"the index at {folder} records no folders", hint="name them with --allow-root")
        engine = LocalEngine(folder, *model_choice.args, workers=1, warm=True)
        server = create_server(engine, roots, cache_dir(), lambda threshold: find_dupes(folder, threshold))
        say(f"mmcli mcp: index {folder}; files allowed under: {', '.join(str(r) for r in roots)} (stdio)")
        serve_stdio(server)
