"""Every option shared by several commands, declared once, and the two option groups.

``@model_options`` adds --model/--weights/--device/--precision to a command and hands it one
``ModelChoice``; ``@run_options`` adds --batch-size/--workers/--max-pixels as a ``RunChoice``.
Flag meanings are the same in every command: ``-0`` is NUL-separated *output* (paths), ``-z`` is
NUL-separated *input* (paths read from stdin).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from mmcli.pictures import Tile

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
        help="table | json | jsonl | csv | tsv | paths, as the command offers (default: table on a terminal, "
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
        help="Use a running `mmcli serve` at this URL (default: $MMCLI_SERVER, or one found running; "
        "MMCLI_SERVER=off never uses one).",
        show_default=False,
    ),
]


# ------------------------------------------------------------------------------------ option groups
@dataclass(frozen=True)
class ModelChoice:
    """--model, --weights, --device, --precision."""

    model: str | None
    weights: Path | None
    device: str
    precision: str

    @property
    def args(self) -> tuple[str | None, str | None, str, str]:
        """(model, weights, device, precision): the leading arguments of every engine."""
        return self.model, str(self.weights) if self.weights else None, self.device, self.precision


@dataclass(frozen=True)
class RunChoice:
    """--batch-size, --workers, --max-pixels (None: $MMCLI_MAX_PIXELS or the default)."""

    batch_size: int
    workers: int | None
    max_pixels: int | None

    @property
    def pixel_limit(self) -> int:
        from mmcli.config import settings

        return self.max_pixels if self.max_pixels is not None else settings().max_pixels


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


MODEL_PARAMS = (
    _param(
        "model",
        Annotated[
            Optional[str],
            typer.Option(
                "--model",
                "-m",
                help="ARCH:TAG, hf-hub:ORG/REPO, local-dir:DIR or an alias (see `mmcli models`). "
                "Default: $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "weights",
        Annotated[
            Optional[Path],
            typer.Option(
                "--weights",
                help="Local checkpoint (safetensors or a PyTorch state dict) for the ARCH given with --model.",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "device",
        Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).")],
        "auto",
    ),
    _param(
        "precision",
        Annotated[
            str,
            typer.Option(
                "--precision",
                help="auto | fp32 | bf16 | fp16 (auto: fp16 on GPUs; bf16 on CPUs with native bf16, else fp32).",
            ),
        ],
        "auto",
    ),
)
RUN_PARAMS = (
    _param("batch_size", Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per model batch.")], 32),
    _param(
        "workers",
        Annotated[
            Optional[int],
            typer.Option(
                "--workers",
                min=0,
                help="Decoding processes (default: $MMCLI_WORKERS or the CPU count; 0 or 1 decodes in-process).",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "max_pixels",
        Annotated[
            Optional[int],
            typer.Option(
                "--max-pixels",
                min=1,
                help="Refuse images with more pixels (decompression bombs). Default: $MMCLI_MAX_PIXELS or 256000000.",
                show_default=False,
            ),
        ],
        None,
    ),
)


def _group(target: str, params: Sequence[inspect.Parameter], build: Callable[..., Any]) -> Callable[[F], F]:
    """Replace the parameter ``target`` of a command by ``params``, gathered into ``build(**values)``."""

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        kept = [p for p in sig.parameters.values() if p.name != target]
        names = [p.name for p in params]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[target] = build(**{n: kwargs.pop(n) for n in names})
            return fn(*args, **kwargs)

        full = kept + list(params)
        wrapper.__signature__ = sig.replace(parameters=full)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in full}
        del wrapper.__wrapped__  # Typer reads the signature above, not the wrapped function's
        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class InputChoice:
    """The image inputs of a command: arguments, ``-`` for stdin (``-z``: NUL-separated), --include-hidden."""

    inputs: list[str] | None
    null_input: bool
    old_null: bool
    include_hidden: bool

    def paths(self) -> list[str]:
        import sys

        from mmcli.errors import UsageError
        from mmcli.inputs import gather_paths

        if self.old_null:
            raise UsageError("-0 is NUL-separated output; NUL-separated paths on stdin are -z (--null-input)")
        return gather_paths(self.inputs, getattr(sys.stdin, "buffer", None), self.null_input, self.include_hidden)


@dataclass(frozen=True)
class PictureChoice:
    """--html and --grid: pictures of the results besides the data on stdout."""

    html: Path | None
    grid: Path | None

    def write(self, tiles: Sequence[Tile], title: str, subtitle: str) -> None:
        from mmcli.cli.console import say
        from mmcli.pictures import write_pictures

        for path in write_pictures(tiles, self.html, self.grid, title, subtitle):
            say(f"wrote {path}")


INPUT_PARAMS = (
    _param(
        "inputs",
        Annotated[
            Optional[list[str]],
            typer.Argument(
                help="Image files, folders (searched recursively), or - to read paths from stdin.", show_default=False
            ),
        ],
        None,
    ),
    _param(
        "null_input",
        Annotated[
            bool,
            typer.Option("-z", "--null-input", help="Paths read from stdin ('-') are NUL-separated (find -print0)."),
        ],
        False,
    ),
    _param("old_null", Annotated[bool, typer.Option("-0", hidden=True, help="Moved: -z.")], False),
    _param("include_hidden", HiddenOpt, False),
)
PICTURE_PARAMS = (
    _param(
        "html",
        Annotated[
            Optional[Path],
            typer.Option(
                "--html",
                help="Also write a self-contained HTML page of the results (thumbnails embedded).",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "grid",
        Annotated[
            Optional[Path],
            typer.Option("--grid", help="Also write a PNG contact sheet of the results.", show_default=False),
        ],
        None,
    ),
)


def input_options(fn: F) -> F:
    """Adds the inputs argument, -z, --include-hidden; the command receives ``source: InputChoice``."""
    return _group("source", INPUT_PARAMS, InputChoice)(fn)


def picture_options(fn: F) -> F:
    """Adds --html and --grid; the command receives ``pictures: PictureChoice``."""
    return _group("pictures", PICTURE_PARAMS, PictureChoice)(fn)


def model_options(fn: F) -> F:
    """Adds --model/--weights/--device/--precision; the command receives ``model_choice: ModelChoice``."""
    return _group("model_choice", MODEL_PARAMS, ModelChoice)(fn)


def run_options(fn: F) -> F:
    """Adds --batch-size/--workers/--max-pixels; the command receives ``run: RunChoice``."""
    return _group("run", RUN_PARAMS, RunChoice)(fn)
