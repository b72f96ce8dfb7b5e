"""`mmcli embed`: L2-normalised embeddings of images or texts, as JSON Lines or a .npy file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.groups import (
    InputChoice,
    ModelChoice,
    RayChoice,
    RunChoice,
    input_options,
    model_options,
    ray_options,
    run_options,
)
from mmcli.cli.options import QuietOpt, command
from mmcli.errors import NoImagesError, UsageError

ProgressFn = Callable[[int, int], None]

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from mmcli.engine import LocalEngine
    from mmcli.ray_embed import RayOptions
    from mmcli.results import FileFailure, ImageVector


@command(
    examples=(
        "mmcli embed ./photos --output photos.npy     (also writes photos.paths.json)",
        "mmcli embed --text 'a red car' 'a blue car' | jq '.embedding | length'",
        "mmcli embed /shared/photos --ray -o photos.npy     (decoding and model on a Ray cluster)",
    ),
    multi_value=True,
)
@input_options
@model_options
@run_options
@ray_options
def embed(
    text: Annotated[
        Optional[list[str]],
        typer.Option(
            "--text", "-t", help="Embed these texts instead of images: --text 'a cat' 'a dog'.", show_default=False
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Write a float32 .npy (rows in input order) and FILE.paths.json / "
            "FILE.texts.json beside it, instead of JSON Lines on stdout.",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
    *,
    source: InputChoice,
    model_choice: ModelChoice,
    run: RunChoice,
    ray_choice: RayChoice,
) -> None:
    """L2-normalised embeddings of images or texts."""
    with funnel():
        from mmcli.atomic import write_embeddings
        from mmcli.engine import LocalEngine

        if text and source.inputs:
            raise UsageError("give images or --text, not both")
        if output is not None and output.suffix != ".npy":
            raise UsageError(f"--output must end in .npy: {output}")
        ray = ray_choice.options
        if text and ray is not None:
            raise UsageError("--ray embeds images; texts are embedded here")
        engine = LocalEngine(None, *model_choice.args, batch_size=run.batch_size, workers=run.workers)
        if text:
            keys, key_name, vectors = _texts(engine, text, stream=output is None)
        else:
            paths = source.paths()
            keys, key_name, vectors = _images(engine, paths, run, ray, quiet, stream=output is None)
        if output is not None:
            companion = write_embeddings(output, vectors, keys, key_name)
            if not quiet:
                say(f"wrote {len(keys)} x {vectors.shape[1]} embeddings to {output} (+ {companion.name})")


def _texts(engine: LocalEngine, texts: list[str], stream: bool) -> tuple[list[str], str, np.ndarray]:
    from mmcli.embed import embed_texts
    from mmcli.output import json_line

    vectors, notes = embed_texts(engine.text_encoder(), texts)
    notes = list(engine.notes) + notes
    warn_all(notes)
    if stream:
        for key, vec in zip(texts, vectors):
            sys.stdout.write(json_line({"text": key, "embedding": vec.tolist()}) + "\n")
    return list(texts), "text", vectors


def _image_stream(
    engine: LocalEngine, paths: list[str], run: RunChoice, ray: RayOptions | None, on_progress: ProgressFn
) -> Iterator[ImageVector | FileFailure]:
    """Here (decoding processes + the model in this process), or on a Ray cluster."""
    if ray is None:
        from mmcli.embed import embed_stream

        return embed_stream(engine.encoder(), paths, run.batch_size, run.workers, run.pixel_limit, on_progress)
    from mmcli.ray_embed import embed_files_on_ray

    return embed_files_on_ray(
        engine.spec, paths, ray, device=engine.device, precision=engine.precision, batch_size=run.batch_size,
        max_pixels=run.pixel_limit, on_progress=on_progress,
    )  # fmt: skip


def _images(
    engine: LocalEngine, paths: list[str], run: RunChoice, ray: RayOptions | None, quiet: bool, stream: bool
) -> tuple[list[str], str, np.ndarray]:
    import numpy as np

    from mmcli.output import Progress, json_line
    from mmcli.results import FileFailure

    start = time.perf_counter()
    progress = Progress("embedding", enabled=not quiet)
    keys, rows, failed = [], [], 0
    try:
        for item in _image_stream(engine, paths, run, ray, progress.update):
            if isinstance(item, FileFailure):
                failed += 1
                warn(f"skipped {item.path}: {item.reason}")
                continue
            if stream:
                sys.stdout.write(json_line({"path": item.path, "embedding": item.vector.tolist()}) + "\n")
            keys.append(item.path)
            rows.append(item.vector)
    finally:
        progress.close()
    summary("embedded", len(keys), failed, time.perf_counter() - start, quiet)
    if not keys:
        raise NoImagesError(f"no image could be embedded ({failed} failed)")
    return keys, "path", np.stack(rows)
