"""The fast way in for `mmcli search` and `mmcli classify`: their arguments read without Typer, by the
grammar derived from each command's declaration (``mmcli.cli.argv.Grammar.of``), and their body run
here, the very body Typer runs (``search.py``, ``classify.py``). Neither Typer nor pydantic is imported;
a search the resident helper answers imports none of the model libraries either (``mmcli.helper``).

``run`` hands the command back to the command line (returns None, having written nothing) only for
arguments this reader does not take on: ``--help``, an option it does not know, a value or a positional
argument starting with "-" (``-`` for stdin too), ``--flag=value``, short options run together. Errors,
helpers, servers: the body deals with them, as it does under Typer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcli.cli.argv import Grammar, prepared, read_strictly

if TYPE_CHECKING:
    from mmcli.cli.declare import Command


def command_named(name: str) -> Command:
    """The declared command the fast path reads (only its module is imported)."""
    if name == "search":
        from mmcli.cli.search import COMMAND
    else:
        from mmcli.cli.classify import COMMAND
    return COMMAND


def run(argv: list[str]) -> int | None:
    """The exit code of ``mmcli *argv`` (``search ...`` or ``classify ...``) run here, or None when the
    command line must read the arguments (nothing was written then)."""
    command = command_named(argv[0])
    reading = read_strictly(prepared(argv[1:], command.multi_value), Grammar.of(command))
    if reading is None:
        return None
    given = dict(reading.options)
    words = next(o.name for o in command.options if o.kind == "words")
    given[words] = list(reading.positional) or None
    return command(command.values(given))
