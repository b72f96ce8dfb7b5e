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
from typer.core import TyperCommand

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])
MULTI_VALUE_OPTIONS = ("--labels", "-l", "--text", "-t")


def expand_multi_values(args: Sequence[str], options: Sequence[str] = MULTI_VALUE_OPTIONS) -> list[str]:
    """``--labels cat dog -f csv`` -> ``--labels cat --labels dog -f csv``.

    The values of a multi-value option run up to the next argument that starts with "-" (an
    option, "--", or "-" for stdin). Put inputs before the option, or after "--".
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in options:
            first = True
            while i < len(args) and not args[i].startswith("-"):
                if not first:
                    out.append(arg)
                out.append(args[i])
                first = False
                i += 1
    return out


class MultiValueCommand(TyperCommand):
    """A command whose ``--labels`` / ``--text`` take several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


def command(name: str | None = None, *, examples: Sequence[str], multi_value: bool = False) -> Callable[[F], F]:
    """Mark a function as a command; ``mmcli.cli.app`` registers it. Every command shows examples."""

    def mark(fn: F) -> F:
        epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
        settings: dict[str, Any] = {"epilog": epilog}
        if multi_value:
            settings["cls"] = MultiValueCommand
        fn.mmcli_command = (name, settings)  # type: ignore[attr-defined]
        return fn

    return mark


# ----------------------------------------------------------------------------------- single options
FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format",
        "-f",
        help="table | json | jsonl | csv | tsv | paths | urls, as the command offers (default: table on a terminal, "
        "jsonl when piped).",
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
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", min=1, help="Videos: at most this many frames per video.")]
