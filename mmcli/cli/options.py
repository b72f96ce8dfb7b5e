"""Typer's side of the declarations (``mmcli.cli.declare``): a command's parameters and its Typer
function derived from its options, how values are named in help, the @command marker.

Flag meanings are the same in every command: ``-0`` is NUL-separated *output* (paths), ``-z`` is
NUL-separated *input* (paths read from stdin).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from mmcli.cli.argv import expand_bare_preview, expand_multi_values
from mmcli.cli.declare import (
    HIDDEN,
    INDEX,
    LABELS,
    LABELS_FILE,
    NULL,
    PREVIEW,
    QUIET,
    SERVER,
    TEMPLATE,
    Command,
    Option,
)
from mmcli.cli.declare import format_option as declared_format

F = TypeVar("F", bound=Callable[..., Any])


# What each value is called in help (``--labels LABEL...``), by the option's long name; any other option
# is named from its type (N, NUMBER, PATH, TEXT): help never shows Python types such as <list[str]>.
METAVARS = {
    "--labels": "LABEL...", "--labels-file": "FILE", "--template": "TEMPLATE", "--templates": "NAME",
    "--threshold": "SCORE", "--top-k": "K", "--clusters": "K", "--every": "SECONDS", "--max-frames": "N",
    "--format": "FORMAT", "--server": "URL", "--html": "FILE.html", "--grid": "FILE.png", "--batch-size": "N",
    "--workers": "N", "--max-pixels": "N", "--model": "MODEL", "--weights": "FILE", "--device": "DEVICE",
    "--precision": "PRECISION", "--index": "INDEX", "--exclude": "GLOB", "--image": "FILE", "--add": "TERM",
    "--sub": "TERM", "--in": "FOLDER", "--after": "DATE", "--before": "DATE", "--sort": "ORDER",
    "--output": "FILE", "--shard-rows": "N", "--text": "TEXT...", "--ray-address": "ADDRESS",
    "--ray-actors": "N", "--ray-gpus-per-actor": "GPUS", "--host": "HOST", "--port": "PORT",
    "--allow-root": "FOLDER", "--allow-host": "HOST", "--allow-origin": "URL", "--max-body": "BYTES",
    "--max-upload": "BYTES", "--dir": "FOLDER", "--count": "N", "--seed": "N", "--samples": "N",
    "--rerank": "MODEL", "--rerank-weights": "FILE", "--rerank-k": "N", "--preview": "MODE",
}  # fmt: skip
ARGUMENT_METAVARS = {"inputs": "PATH", "paths": "PATH", "query": "TEXT"}


def _type_metavar(param: Any) -> str:
    """N, NUMBER, PATH or TEXT from the option's declared type (Typer resolves click's types lazily, so
    the annotation is read where Typer keeps it, else click's type)."""
    import typing
    from pathlib import Path

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is not None:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
        kind = kinds[0]
        if kind is bool:
            return "BOOLEAN"
        if kind is int:
            return "N"
        if kind is float:
            return "NUMBER"
        if isinstance(kind, type) and issubclass(kind, Path):
            return "PATH"
        return "TEXT"
    import click

    kind = getattr(param, "type", None)
    if isinstance(kind, (click.types.IntParamType, click.IntRange)):
        return "N"
    if isinstance(kind, (click.types.FloatParamType, click.FloatRange)):
        return "NUMBER"
    if isinstance(kind, click.Path):
        return "PATH"
    return "TEXT"


class _NamedArgument(TyperArgument):
    """An argument shown by its metavar: ``PATH...`` in help and usage, no ``<list[str]>``, no braces."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _rich_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"


class MmcliCommand(TyperCommand):
    """Every mmcli command: its values named in help (``METAVARS``), never Python types; ``--preview``
    may be given without a mode."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.metavar = param.metavar or ARGUMENT_METAVARS.get(param.name or "", (param.name or "").upper())
                param.__class__ = _NamedArgument
            elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
                long = next((o for o in param.opts if o.startswith("--")), "")
                param.metavar = METAVARS.get(long) or _type_metavar(param)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_bare_preview(args))


class MultiValueCommand(MmcliCommand):
    """A command whose ``--labels`` / ``--text`` take several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


def command(
    name: str | None = None, *, examples: Sequence[str], short: str | None = None, multi_value: bool = False
) -> Callable[[F], F]:
    """Mark a function as a command; ``mmcli.cli.app`` registers it. Every command shows examples.
    ``short``: its line in ``mmcli --help``, shown whole (keep it to one line at 80 columns); default:
    the docstring's first sentence, also whole (Click would cut it with "...")."""

    def mark(fn: F) -> F:
        epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
        first = " ".join((fn.__doc__ or "").split()).split(". ")[0].rstrip(".")
        settings: dict[str, Any] = {"epilog": epilog, "short_help": short or first}
        settings["cls"] = MultiValueCommand if multi_value else MmcliCommand
        fn.mmcli_command = (name, settings)  # type: ignore[attr-defined]
        return fn

    return mark


# ----------------------------------------------------------------------------- from the declarations
def annotated(option: Option) -> Any:
    """The Typer annotation of a declared option: values reach the command as typed (text), converted
    where they are used (``mmcli.queries.build.convert``), the same whichever way the command was read."""
    settings: dict[str, Any] = {"help": option.help, "hidden": option.hidden}
    settings["show_default"] = option.default is not None and option.kind != "flag"
    if option.kind == "words":
        return Annotated[Optional[list[str]], typer.Argument(**settings)]
    if option.kind == "flag":
        return Annotated[bool, typer.Option(*option.flags, **settings)]
    kind = Optional[list[str]] if option.kind == "many" else Optional[str] if option.default is None else str
    return Annotated[kind, typer.Option(*option.flags, **settings)]


def parameter(option: Option) -> inspect.Parameter:
    """``name: Annotated[..., typer.Option(...)] = default`` for a command function's signature."""
    default = False if option.kind == "flag" else option.default
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotated(option))


def typer_command(declared: Command) -> Callable[..., None]:
    """The Typer function of a declared command: its parameters are the options; it hands their values
    to the command's body, which the fast path runs too (``mmcli.cli.fast``)."""

    def run(**values: Any) -> None:
        code = declared(values)
        if code:
            raise typer.Exit(code)

    params = [parameter(o) for o in declared.options]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__name__ = run.__qualname__ = declared.name
    run.__doc__ = declared.doc
    return command(declared.name, examples=declared.examples, short=declared.short, multi_value=declared.multi_value)(
        run
    )


def format_option(view: Any) -> Any:
    """``-f/--format`` listing the formats ``view`` offers, as a Typer annotation."""
    return annotated(declared_format(view))


FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="Output format (default: table on a terminal, jsonl when piped); an unknown one lists those offered.",
        show_default=False,
    ),
]
IndexOpt = annotated(INDEX)
NulOutOpt = annotated(NULL)
HiddenOpt = annotated(HIDDEN)
QuietOpt = annotated(QUIET)
ServerOpt = annotated(SERVER)
PreviewOpt = annotated(PREVIEW)
LabelsOpt = annotated(LABELS)
LabelsFileOpt = annotated(LABELS_FILE)
TemplateOpt = annotated(TEMPLATE)
