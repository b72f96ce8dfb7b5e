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


class MmcliCommand(TyperCommand):
    """Every command: ``--preview`` may be given without a mode."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_bare_preview(args))


class MultiValueCommand(MmcliCommand):
    """A command whose ``--labels`` / ``--text`` take several values after one flag."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_values(args))


def command(name: str | None = None, *, examples: Sequence[str], multi_value: bool = False) -> Callable[[F], F]:
    """Mark a function as a command; ``mmcli.cli.app`` registers it. Every command shows examples."""

    def mark(fn: F) -> F:
        epilog = "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
        settings: dict[str, Any] = {"epilog": epilog, "cls": MultiValueCommand if multi_value else MmcliCommand}
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
PreviewOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preview",
        metavar="[auto|kitty|iterm|sixel|blocks|off]",
        help="Each result's thumbnail beside its score and name, in the terminal. auto (--preview alone): kitty, "
        "iTerm2 or sixel pictures where the terminal shows them, else Unicode half blocks; nothing when stdout is "
        "not a terminal. A protocol named is written anyway.",
        show_default=False,
    ),
]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", min=1, help="Videos: at most this many frames per video.")]
