"""The Typer app: every command registered, the root options, ``main``.

Each command lives in a module of this package named for its family and is registered here: a
declared command (``search``, ``classify``: options and body, ``mmcli.cli.declare``) through the Typer
function derived from it, the others as Typer functions. Heavy modules (torch, open_clip, numpy, PIL,
faiss) are imported inside the commands, so ``mmcli --help`` stays instant (a test checks ``sys.modules``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from mmcli import __version__
from mmcli.cli import assistants, classify, embed, explore, helper, index, models, ocr, search, serve
from mmcli.cli.options import typer_command

app = typer.Typer(
    name="mmcli",
    help="Zero-shot image classification and text-to-image search with CLIP models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMANDS = (
    typer_command(classify.COMMAND),
    typer_command(ocr.COMMAND),
    embed.embed,
    typer_command(index.COMMAND),
    typer_command(search.COMMAND),
    index.info,
    index.indexes,
    explore.dupes,
    explore.cluster,
    serve.serve,
    assistants.mcp,
    helper.helper,
    models.models,
    models.demo,
)
ALIASES = {"daemon": helper.helper}  # older names, kept working (not listed in --help)
for fn in COMMANDS:
    name, settings = fn.mmcli_command  # type: ignore[attr-defined]
    app.command(name, **settings)(fn)
for alias, fn in ALIASES.items():
    app.command(alias, hidden=True, **fn.mmcli_command[1])(fn)  # type: ignore[attr-defined]


def _version(value: bool) -> None:
    if value:
        print(f"mmcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Zero-shot image classification and text-to-image search with CLIP models.

    Exit codes: 0 ok, 1 error (nothing could be done), 2 usage error, 130 interrupted.
    """


def main() -> None:
    app()
