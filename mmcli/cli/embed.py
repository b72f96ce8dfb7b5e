"""`mmcli embed`: L2-normalised embeddings of images or texts, as JSON Lines or a .npy file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.groups import InputChoice, ModelChoice, RunChoice, input_options, model_options, run_options
from mmcli.cli.options import QuietOpt, command
from mmcli.errors import NoImagesError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from mmcli.engine import LocalEngine


@command(
    examples=(
        "mmcli embed ./photos --output photos.npy     (also writes photos.paths.json)",
        "mmcli embed --text 'a red car' 'a blue car' | jq '.embedding | length'",
    ),
    multi_value=True,
)
@input_options
@model_options
@run_options
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
) -> None:
    """L2-normalised embeddings of images or texts."""
    with funnel():
        from mmcli.atomic import write_embeddings
        from mmcli.engine import LocalEngine

        if text and source.inputs:
            raise UsageError("give images or --text, not both")
        if output is not None and output.suffix != ".npy":
            raise UsageError(f"--output must end in .npy: {output}")
        engine = LocalEngine(None, *model_choice.args, batch_size=run.batch_size, workers=run.workers)
        if text:
            keys, key_name, vectors = _texts(engine, text, stream=output is None)
        else:
            paths = source.paths()
            keys, key_name, vectors = _images(engine, paths, run, quiet, stream=output is None)
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


def _images(
    engine: LocalEngine, paths: list[str], run: RunChoice, quiet: bool, stream: bool
) -> tuple[list[str], str, np.ndarray]:
    import numpy as np

    from mmcli.embed import embed_stream
    from mmcli.output import Progress, json_line
    from mmcli.results import FileFailure

    start = time.perf_counter()
    encoder = engine.encoder()
    progress = Progress("embedding", enabled=not quiet)
    keys, rows, failed = [], [], 0
    try:
        for item in embed_stream(
            encoder, paths, run.batch_size, run.workers, run.pixel_limit, on_progress=progress.update
        ):
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
