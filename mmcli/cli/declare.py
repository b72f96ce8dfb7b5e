"""Commands and their options, declared once, without Typer.

A ``Command`` is its options and its body. Typer's parameters are derived from the declaration
(``mmcli.cli.options.typer_command``), and so is the strict reader of the fast path
(``mmcli.cli.argv.Grammar.of``): both hand the body the same values, by option name, as typed (text;
``True``/``False`` for flags; lists for repeated options and for the positional words), and the body
builds what it needs from them once: the request (``mmcli.queries.build``: its fields are the options
marked ``request``) and the typed choices below (``choice``). Options shared by several commands are
declared here; each command's own live with its body (``search.py``, ``classify.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mmcli.errors import MmcliError
from mmcli.queries.build import convert
from mmcli.queries.requests import whole

if TYPE_CHECKING:
    from mmcli.cli.output import View
    from mmcli.cli.pictures import Tile

Values = Mapping[str, Any]  # option name -> value as typed (text, a flag, a list of texts, or None)
C = TypeVar("C")


@dataclass(frozen=True, eq=False)
class Option:
    """One option of a command, or its positional words (``flags`` empty). ``kind``: "value" (one
    value; the last one given counts), "many" (repeatable: a list), "flag", "words" (the positional
    arguments). ``request``: the value is a field of the command's request, read by its builder."""

    name: str
    flags: tuple[str, ...]
    help: str
    default: Any = None
    kind: str = "value"
    request: bool = False
    hidden: bool = False


@dataclass(frozen=True, eq=False)
class Command:
    """A command: its help, its options and its body (values -> exit code, having written its output)."""

    name: str
    short: str  # its line in `mmcli --help`
    doc: str  # its help text
    examples: tuple[str, ...]
    options: tuple[Option, ...]
    body: Callable[[Values], int | None]
    multi_value: bool = False  # --labels cat dog: values up to the next option

    def __call__(self, values: Values) -> int:
        """Run the body; an expected failure said on stderr as every command says it. The exit code."""
        from mmcli.cli.console import handled

        try:
            return self.body(values) or 0
        except (MmcliError, KeyboardInterrupt, OSError) as exc:
            return handled(exc) or 0

    def values(self, given: Values) -> dict[str, Any]:
        """Every option's value: the one given, else its default, as Typer hands a command its values
        (a default as text, as Click makes it)."""
        return {o.name: given[o.name] if o.name in given else _default(o) for o in self.options}

    def requested(self, values: Values) -> dict[str, Any]:
        """The values that are the request's fields."""
        return {o.name: values[o.name] for o in self.options if o.request}


def _default(option: Option) -> Any:
    if option.kind == "flag":
        return False
    return option.default if option.default is None or option.kind != "value" else str(option.default)


def choice(cls: type[C], values: Values) -> C:
    """A choice dataclass (``ModelChoice``, ...) from its options' values, converted by its fields' types."""
    return cls(**{f.name: convert(cls, f.name, values.get(f.name)) for f in dataclasses.fields(cls)})  # type: ignore


# ------------------------------------------------------------------------------ options of several commands
def format_option(view: View) -> Option:
    """``-f/--format``, listing the formats ``view`` offers (what ``output.choose_format`` accepts)."""
    return Option(
        "fmt", ("--format", "-f"), f"{' | '.join(view.formats)} (default: table on a terminal, jsonl when piped)."
    )


INDEX = Option(
    "index", ("--index", "-i"), "Index name (under $MMCLI_HOME/indexes, default 'default') or a folder path."
)
NULL = Option("null", ("-0", "--null"), "NUL-separated paths on stdout (for xargs -0).", kind="flag")
QUIET = Option("quiet", ("--quiet", "-q"), "No progress bar or summary on stderr.", kind="flag")
HIDDEN = Option("include_hidden", ("--include-hidden",), "Also walk hidden files and folders.", kind="flag")
SERVER = Option(
    "server",
    ("--server",),
    "Use a running `mmcli serve` at this URL, or `off` for none (default: $MMCLI_SERVER, or one found running; "
    "MMCLI_SERVER=off never uses one).",
)
PREVIEW = Option(
    "preview",
    ("--preview",),
    "Each result's thumbnail beside its score and name, in the terminal. MODE: auto, kitty, iterm, sixel, blocks or "
    "off. auto (--preview alone): kitty, iTerm2 or sixel pictures where the terminal shows them, else Unicode half "
    "blocks; nothing when stdout is not a terminal. A protocol named is written anyway.",
)
LABELS = Option("labels", ("--labels", "-l"), "Labels: --labels cat dog, --labels cat,dog, or repeated.", kind="many")
LABELS_FILE = Option("labels_file", ("--labels-file",), "A file with one label per line.")
TEMPLATE = Option(
    "template",
    ("--template",),
    'Prompt template with {} for the label (repeat to average several); "{}" uses labels as they are. Default: '
    '"a photo of a {}."',
    kind="many",
    request=True,
)
EVERY = Option(
    "every",
    ("--every",),
    "Videos: sample a frame every this many seconds (and where the picture changes sharply).",
    2.0,
    request=True,
)
MAX_FRAMES = Option("max_frames", ("--max-frames",), "Videos: at most this many frames per video.", 2000, request=True)


# ------------------------------------------------------------------------------------- the model
MODEL_FORMS = "ARCH:TAG, hf-hub:ORG/REPO, local-dir:DIR or an alias (see `mmcli models`)."
MODEL_DEFAULTS = {  # what --model is without it, for commands without an index, indexing, and using one
    "none": "Default: $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
    "indexing": "Default: the index's own model; for a new index $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
    "index": "Default: the model the index was built with (another is an error).",
}


def model_options(default: str = "none") -> tuple[Option, ...]:
    """--model, --weights, --device, --precision; ``default`` says what --model is without it."""
    return (
        Option("model", ("--model", "-m"), f"{MODEL_FORMS} {MODEL_DEFAULTS[default]}"),
        Option(
            "weights",
            ("--weights",),
            "Local checkpoint (safetensors or a PyTorch state dict) for the ARCH given with --model.",
        ),
        Option("device", ("--device",), "auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).", "auto"),
        Option(
            "precision",
            ("--precision",),
            "auto | fp32 | bf16 | fp16 (auto: fp16 on GPUs; bf16 on CPUs with native bf16, else fp32).",
            "auto",
        ),
    )


@dataclass(frozen=True, eq=False)
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


# ------------------------------------------------------------------------------------- the run
RUN_OPTIONS = (
    Option("batch_size", ("--batch-size", "-b"), "Images per model batch [default: 256 on a CUDA GPU, 32 otherwise]."),
    Option(
        "workers",
        ("--workers",),
        "Decoding processes (default: $MMCLI_WORKERS or the CPU count; 0 or 1 decodes in-process).",
    ),
    Option(
        "max_pixels",
        ("--max-pixels",),
        "Refuse images with more pixels (decompression bombs). Default: $MMCLI_MAX_PIXELS or 256000000.",
        request=True,
    ),
)


@dataclass(frozen=True, eq=False)
class RunChoice:
    """--batch-size, --workers, --max-pixels (None: $MMCLI_MAX_PIXELS or the default)."""

    batch_size: int | None  # None: chosen for the device (embed.default_batch_size)
    workers: int | None
    max_pixels: int | None

    def __post_init__(self) -> None:
        for name, low in (("batch_size", 1), ("workers", 0), ("max_pixels", 1)):
            if getattr(self, name) is not None:
                whole(name, getattr(self, name), low)

    @property
    def pixel_limit(self) -> int:
        from mmcli.config import settings

        return self.max_pixels if self.max_pixels is not None else settings().max_pixels


# ------------------------------------------------------------------------------------- the inputs
INPUT_OPTIONS = (
    Option("inputs", (), "Image files, folders (searched recursively), or - to read paths from stdin.", kind="words"),
    Option("null_input", ("-z", "--null-input"), "Paths read from stdin ('-') are NUL-separated.", kind="flag"),
    Option("old_null", ("-0",), "Moved: -z.", kind="flag", hidden=True),
    HIDDEN,
)


@dataclass(frozen=True, eq=False)
class InputChoice:
    """The image inputs of a command: arguments, ``-`` for stdin (``-z``: NUL-separated), --include-hidden."""

    inputs: list[str] | None
    null_input: bool
    old_null: bool
    include_hidden: bool

    def paths(self, videos: bool = False) -> list[str]:
        import sys

        from mmcli.cli.inputs import gather_paths
        from mmcli.errors import UsageError

        if self.old_null:
            raise UsageError("-0 is NUL-separated output; NUL-separated paths on stdin are -z (--null-input)")
        return gather_paths(
            self.inputs, getattr(sys.stdin, "buffer", None), self.null_input, self.include_hidden, videos
        )


# ------------------------------------------------------------------------------------- the pictures
PICTURE_OPTIONS = (
    Option("html", ("--html",), "Also write a self-contained HTML page of the results."),
    Option("grid", ("--grid",), "Also write a PNG contact sheet of the results."),
)


@dataclass(frozen=True, eq=False)
class PictureChoice:
    """--html and --grid: pictures of the results besides the data on stdout."""

    html: Path | None
    grid: Path | None

    def __post_init__(self) -> None:
        for path in (self.html, self.grid):
            if path is not None:
                from mmcli.atomic import check_output

                check_output(path)  # before the work: a bad path is an error now, not after it

    def write(self, tiles: list[Tile], title: str, subtitle: str) -> None:
        from mmcli.cli.console import say
        from mmcli.cli.pictures import write_pictures

        for path in write_pictures(tiles, self.html, self.grid, title, subtitle):
            say(f"wrote {path}")
