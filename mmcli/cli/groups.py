"""Option groups: a decorator adds several options to a command and hands it one typed value.

``@model_options``   --model/--weights/--device/--precision     -> ``model_choice: ModelChoice``
                    (``@index_model_options``, ``@indexing_model_options``: the same, saying that the
                    model is the index's)
``@run_options``     --batch-size/--workers/--max-pixels        -> ``run: RunChoice``
``@input_options``   inputs argument, -z, --include-hidden      -> ``source: InputChoice``
``@picture_options`` --html/--grid                              -> ``pictures: PictureChoice``
``@ray_options``     --ray/--ray-address/--ray-actors/--ray-gpus-per-actor -> ``ray_choice: RayChoice``
                    (in ``ray_group.py``)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer

from mmcli.cli.console import funnel

if TYPE_CHECKING:
    from mmcli.cli.pictures import Tile

F = TypeVar("F", bound=Callable[..., Any])


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

    batch_size: int | None  # None: chosen for the device (embed.default_batch_size)
    workers: int | None
    max_pixels: int | None

    @property
    def pixel_limit(self) -> int:
        from mmcli.config import settings

        return self.max_pixels if self.max_pixels is not None else settings().max_pixels


def _opt(name: str, kind: Any, default: Any, *flags: str, **settings: Any) -> inspect.Parameter:
    """One keyword-only command parameter ``name: Annotated[kind, typer.Option(*flags)] = default``."""
    settings.setdefault("show_default", default is not None and default is not False)
    info = typer.Argument(**settings) if not flags else typer.Option(*flags, **settings)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])


MODEL_FORMS = "ARCH:TAG, hf-hub:ORG/REPO, local-dir:DIR or an alias (see `mmcli models`)."
MODEL_DEFAULTS = {  # what --model is without it, for commands without an index, indexing, and using one
    "none": "Default: $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
    "indexing": "Default: the index's own model; for a new index $MMCLI_MODEL or ViT-B-32-256:datacomp_s34b_b86k.",
    "index": "Default: the model the index was built with (another is an error).",
}


def _model_params(default: str) -> tuple[inspect.Parameter, ...]:
    return (_opt("model", Optional[str], None, "--model", "-m", help=f"{MODEL_FORMS} {default}"), *MODEL_PARAMS[1:])


MODEL_PARAMS = (
    _opt("model", Optional[str], None, "--model", "-m", help=f"{MODEL_FORMS} {MODEL_DEFAULTS['none']}"),
    _opt(
        "weights",
        Optional[Path],
        None,
        "--weights",
        help="Local checkpoint (safetensors or a PyTorch state dict) for the ARCH given with --model.",
    ),
    _opt("device", str, "auto", "--device", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu)."),
    _opt(
        "precision",
        str,
        "auto",
        "--precision",
        help="auto | fp32 | bf16 | fp16 (auto: fp16 on GPUs; bf16 on CPUs with native bf16, else fp32).",
    ),
)
RUN_PARAMS = (
    _opt(
        "batch_size",
        Optional[int],
        None,
        "--batch-size",
        "-b",
        min=1,
        help="Images per model batch [default: 256 on a CUDA GPU, 32 otherwise].",
    ),
    _opt(
        "workers",
        Optional[int],
        None,
        "--workers",
        min=0,
        help="Decoding processes (default: $MMCLI_WORKERS or the CPU count; 0 or 1 decodes in-process).",
    ),
    _opt(
        "max_pixels",
        Optional[int],
        None,
        "--max-pixels",
        min=1,
        help="Refuse images with more pixels (decompression bombs). Default: $MMCLI_MAX_PIXELS or 256000000.",
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
            with funnel():  # a group may refuse its values (a usage error)
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

    def paths(self, videos: bool = False) -> list[str]:
        import sys

        from mmcli.cli.inputs import gather_paths
        from mmcli.errors import UsageError

        if self.old_null:
            raise UsageError("-0 is NUL-separated output; NUL-separated paths on stdin are -z (--null-input)")
        return gather_paths(
            self.inputs, getattr(sys.stdin, "buffer", None), self.null_input, self.include_hidden, videos
        )


@dataclass(frozen=True)
class PictureChoice:
    """--html and --grid: pictures of the results besides the data on stdout."""

    html: Path | None
    grid: Path | None

    def __post_init__(self) -> None:
        from mmcli.atomic import check_output

        for path in (self.html, self.grid):
            if path is not None:
                check_output(path)  # before the work: a bad path is an error now, not after it

    def write(self, tiles: Sequence[Tile], title: str, subtitle: str) -> None:
        from mmcli.cli.console import say
        from mmcli.cli.pictures import write_pictures

        for path in write_pictures(tiles, self.html, self.grid, title, subtitle):
            say(f"wrote {path}")


INPUT_PARAMS = (
    _opt(
        "inputs",
        Optional[list[str]],
        None,
        help="Image files, folders (searched recursively), or - to read paths from stdin.",
    ),
    _opt("null_input", bool, False, "-z", "--null-input", help="Paths read from stdin ('-') are NUL-separated."),
    _opt("old_null", bool, False, "-0", hidden=True, help="Moved: -z."),
    _opt("include_hidden", bool, False, "--include-hidden", help="Also walk hidden files and folders."),
)
PICTURE_PARAMS = (
    _opt("html", Optional[Path], None, "--html", help="Also write a self-contained HTML page of the results."),
    _opt("grid", Optional[Path], None, "--grid", help="Also write a PNG contact sheet of the results."),
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


def indexing_model_options(fn: F) -> F:
    """``model_options`` of `mmcli index`: the model defaults to the index's own."""
    return _group("model_choice", _model_params(MODEL_DEFAULTS["indexing"]), ModelChoice)(fn)


def index_model_options(fn: F) -> F:
    """``model_options`` of a command that uses an index (search, cluster, serve): its model is the index's."""
    return _group("model_choice", _model_params(MODEL_DEFAULTS["index"]), ModelChoice)(fn)


def run_options(fn: F) -> F:
    """Adds --batch-size/--workers/--max-pixels; the command receives ``run: RunChoice``."""
    return _group("run", RUN_PARAMS, RunChoice)(fn)
