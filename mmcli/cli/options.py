"""Every option shared by several commands, declared once (groups of them: ``groups.py``).

Flag meanings are the same in every command: ``-0`` is NUL-separated *output* (paths), ``-z`` is
NUL-separated *input* (paths read from stdin).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperCommand

from mmcli.cli.argv import MULTI_VALUE_OPTIONS, expand_multi_values  # noqa: F401 (read without Click too)

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])


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
EveryOpt = Annotated[
    float,
    typer.Option(
        "--every",
        min=0.01,
        help="Videos: sample a frame every this many seconds (and where the picture changes sharply).",
    ),
]
MaxFramesOpt = Annotated[int, typer.Option("--max-frames", min=1, help="Videos: at most this many frames per video.")]
