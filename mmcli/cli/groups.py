"""Option groups for the commands written as Typer functions: a decorator adds several declared options
(``mmcli.cli.declare``) to a command and hands it one typed value.

``@model_options``   --model/--weights/--device/--precision     -> ``model_choice: ModelChoice``
                    (``@index_model_options``, ``@indexing_model_options``: the same, saying that the
                    model is the index's)
``@run_options``     --batch-size/--workers/--max-pixels        -> ``run: RunChoice``
``@video_options``   --every/--max-frames                       -> ``video: VideoChoice``
``@input_options``   inputs argument, -z, --include-hidden      -> ``source: InputChoice``
``@picture_options`` --html/--grid                              -> ``pictures: PictureChoice``
``@ray_options``     --ray/--ray-address/--ray-actors/--ray-gpus-per-actor -> ``ray_choice: RayChoice``
                    (declared in ``ray_group.py``)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mmcli.cli.console import funnel
from mmcli.cli.declare import (
    EVERY,
    INPUT_OPTIONS,
    MAX_FRAMES,
    PICTURE_OPTIONS,
    RUN_OPTIONS,
    InputChoice,
    ModelChoice,
    Option,
    PictureChoice,
    RunChoice,
    choice,
)
from mmcli.cli.declare import (
    model_options as declared_model_options,
)
from mmcli.cli.options import parameter
from mmcli.cli.ray_group import RAY_OPTIONS, RayChoice
from mmcli.queries.requests import MAX_SECONDS, real, whole

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class VideoChoice:
    """--every, --max-frames of the commands written as Typer functions (embed, index)."""

    every: float
    max_frames: int

    def __post_init__(self) -> None:
        real("every", self.every, 0.0, MAX_SECONDS, above=True)
        whole("max_frames", self.max_frames, 1)


__all__ = ["InputChoice", "ModelChoice", "PictureChoice", "RunChoice", "VideoChoice"]  # (the choices, for commands)


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


def _declared(target: str, options: Sequence[Option], cls: type) -> Callable[[F], F]:
    """A group of declared options, handed to the command as ``choice(cls, values)``."""
    return _group(target, [parameter(o) for o in options], lambda **values: choice(cls, values))


def input_options(fn: F) -> F:
    """Adds the inputs argument, -z, --include-hidden; the command receives ``source: InputChoice``."""
    return _declared("source", INPUT_OPTIONS, InputChoice)(fn)


def picture_options(fn: F) -> F:
    """Adds --html and --grid; the command receives ``pictures: PictureChoice``."""
    return _declared("pictures", PICTURE_OPTIONS, PictureChoice)(fn)


def model_options(fn: F) -> F:
    """Adds --model/--weights/--device/--precision; the command receives ``model_choice: ModelChoice``."""
    return _declared("model_choice", declared_model_options(), ModelChoice)(fn)


def indexing_model_options(fn: F) -> F:
    """``model_options`` of `mmcli index`: the model defaults to the index's own."""
    return _declared("model_choice", declared_model_options("indexing"), ModelChoice)(fn)


def index_model_options(fn: F) -> F:
    """``model_options`` of a command that uses an index (search, cluster, serve): its model is the index's."""
    return _declared("model_choice", declared_model_options("index"), ModelChoice)(fn)


def run_options(fn: F) -> F:
    """Adds --batch-size/--workers/--max-pixels; the command receives ``run: RunChoice``."""
    return _declared("run", RUN_OPTIONS, RunChoice)(fn)


def ray_options(fn: F) -> F:
    """Adds --ray/--ray-address/--ray-actors/--ray-gpus-per-actor; the command receives ``ray_choice: RayChoice``."""
    return _declared("ray_choice", RAY_OPTIONS, RayChoice)(fn)


def video_options(fn: F) -> F:
    """Adds --every/--max-frames; the command receives ``video: VideoChoice``."""
    return _declared("video", (EVERY, MAX_FRAMES), VideoChoice)(fn)
