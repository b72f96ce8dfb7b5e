"""Every option shared by several commands, declared once (groups of them: ``groups.py``).

Flag meanings are the same in every command: ``-0`` is NUL-separated *output* (paths), ``-z`` is
NUL-separated *input* (paths read from stdin).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from mmcli.cli.argv import MULTI_VALUE_OPTIONS, expand_multi_values  # noqa: F401 (read without Click too)

if TYPE_CHECKING:
    from mmcli.cli.output import View

F = TypeVar("F", bound=Callable[..., Any])


def expand_bare_preview(args: Sequence[str]) -> list[str]:
    """``--preview`` not followed by a mode is ``--preview=auto`` (``mmcli search --preview 'a dog'``)."""
    from mmcli.cli.preview import MODES

    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        bare = arg == "--preview" and (i + 1 == len(args) or args[i + 1] not in MODES)
        out.append("--preview=auto" if bare else arg)
    return out


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
    "--rerank": "MODEL", "--rerank-weights": "FILE", "--rerank-k": "N",
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


# ----------------------------------------------------------------------------------- single options
def format_option(view: View) -> Any:
    """``-f/--format`` listing the formats ``view`` offers (what ``output.choose_format`` accepts)."""
    return Annotated[
        Optional[str],
        typer.Option(
            "--format",
            "-f",
            help=f"{' | '.join(view.formats)} (default: table on a terminal, jsonl when piped).",
            show_default=False,
        ),
    ]


FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="Output format (default: table on a terminal, jsonl when piped); an unknown one lists those offered.",
        show_default=False,
    ),
]
NulOutOpt = Annotated[bool, typer.Option("-0", "--null", help="NUL-separated paths on stdout (for xargs -0).")]
HiddenOpt = Annotated[bool, typer.Option("--include-hidden", help="Also walk hidden files and folders.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
IndexOpt = Annotated[
    Optional[str],
    typer.Option(
        "--index",
        "-i",
        help="Index name (under $MMCLI_HOME/indexes, default 'default') or a folder path.",
        show_default=False,
    ),
]
LabelsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--labels", "-l", help="Labels: --labels cat dog, --labels cat,dog, or repeated.", show_default=False),
]
LabelsFileOpt = Annotated[
    Optional[Path], typer.Option("--labels-file", help="A file with one label per line.", show_default=False)
]
TemplateOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--template",
        help='Prompt template with {} for the label (repeat to average several); "{}" uses '
        'labels as they are. Default: "a photo of a {}."',
        show_default=False,
    ),
]
ServerOpt = Annotated[
    Optional[str],
    typer.Option(
        "--server",
        help="Use a running `mmcli serve` at this URL, or `off` for none (default: $MMCLI_SERVER, or one "
        "found running; MMCLI_SERVER=off never uses one).",
        show_default=False,
    ),
]


def _finite_seconds(value: float) -> float:
    """``--every``: a number of seconds (``inf`` would sample one frame of nothing, ``nan`` no time)."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


EveryOpt = Annotated[
    float,
    typer.Option(
        "--every",
        min=0.01,
        callback=_finite_seconds,
        help="Videos: sample a frame every this many seconds (and where the picture changes sharply).",
    ),
]
PreviewOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preview",
        metavar="MODE",
        help="Each result's thumbnail beside its score and name, in the terminal. MODE: auto, kitty, iterm, "
        "sixel, blocks or off. auto (--preview alone): kitty, "
        "iTerm2 or sixel pictures where the terminal shows them, else Unicode half blocks; nothing when stdout is "
        "not a terminal. A protocol named is written anyway.",
        show_default=False,
    ),
]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", min=1, help="Videos: at most this many frames per video.")]
