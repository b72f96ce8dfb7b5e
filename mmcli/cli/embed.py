"""`mmcli embed`: L2-normalised embeddings of images or texts, as JSON Lines or a .npy file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.groups import InputChoice, ModelChoice, RunChoice, input_options, model_options, run_options
from mmcli.cli.options import QuietOpt, command
from mmcli.cli.ray_group import RayChoice, ray_options
from mmcli.errors import NoImagesError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from mmcli.embedding.ray_driver import RayOptions
    from mmcli.engine.local import LocalEngine
    from mmcli.results import FileFailure, ImageVector, ProgressFn


@command(
    examples=(
        "mmcli embed ./photos --output photos.npy     (also writes photos.paths.json)",
        "mmcli embed --text 'a red car' 'a blue car' | jq '.embedding | length'",
        "mmcli embed /shared/photos --ray -o photos.npy     (decoding and model on a Ray cluster)",
    ),
    multi_value=True,
)
@ray_options
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
            "FILE.texts.json beside it, instead of JSON Lines on stdout. A name without .npy is a folder: "
            "shards of --shard-rows rows (.npy + .paths.json, each written atomically as it fills) and a "
            "manifest.json, written last.",
            show_default=False,
        ),
    ] = None,
    shard_rows: Annotated[
        int, typer.Option("--shard-rows", min=1, help="Rows per shard when --output is a folder.")
    ] = 100_000,
    quiet: QuietOpt = False,
    *,
    source: InputChoice,
    model_choice: ModelChoice,
    run: RunChoice,
    ray_choice: RayChoice,
) -> None:
    """L2-normalised embeddings of images or texts."""
    with funnel():
        from mmcli.embedding.shards import check_folder, is_shard_folder
        from mmcli.engine.local import LocalEngine

        if text and source.inputs:
            raise UsageError("give images or --text, not both")
        sharded = output is not None and is_shard_folder(output)
        if sharded and text:
            raise UsageError(f"--text writes one .npy file: {output}")
        if output is not None and sharded:
            check_folder(output)  # before the work
        ray = ray_choice.options
        if text and ray is not None:
            raise UsageError("--ray embeds images; texts are embedded here")
        engine = LocalEngine(None, *model_choice.args, batch_size=run.batch_size, workers=run.workers)
        if text:
            _texts(engine, text, output, quiet)
        elif output is not None and sharded:
            _images_to_shards(engine, source.paths(), run, ray, quiet, output, shard_rows)
        else:
            _images_to_file(engine, source.paths(), run, ray, quiet, output)
        if not text:
            warn_all(engine.write_towers())  # the model is loaded: the towers searches need, if missing


def _texts(engine: LocalEngine, texts: list[str], output: Path | None, quiet: bool) -> None:
    from mmcli.atomic import write_embeddings
    from mmcli.cli.output import json_line
    from mmcli.embedding.batch import embed_texts

    vectors, notes = embed_texts(engine.text_encoder(), texts)
    notes = list(engine.notes) + notes
    warn_all(notes)
    if output is None:
        for key, vec in zip(texts, vectors):
            sys.stdout.write(json_line({"text": key, "embedding": vec.tolist()}) + "\n")
        return
    companion = write_embeddings(output, vectors, list(texts), "text")
    if not quiet:
        say(f"wrote {len(texts)} x {vectors.shape[1]} embeddings to {output} (+ {companion.name})")


def _images_to_file(
    engine: LocalEngine, paths: list[str], run: RunChoice, ray: RayOptions | None, quiet: bool, output: Path | None
) -> None:
    """JSON Lines on stdout as they come, or one .npy (+ .paths.json) at the end."""
    import numpy as np

    from mmcli.atomic import write_embeddings

    if output is None:
        _images(engine, paths, run, ray, quiet, _stdout)
        return
    keys: list[str] = []
    rows: list[np.ndarray] = []
    _images(engine, paths, run, ray, quiet, lambda key, vector: (keys.append(key), rows.append(vector)))
    companion = write_embeddings(output, np.stack(rows), keys, "path")
    if not quiet:
        say(f"wrote {len(keys)} x {rows[0].shape[0]} embeddings to {output} (+ {companion.name})")


def _images_to_shards(
    engine: LocalEngine,
    paths: list[str],
    run: RunChoice,
    ray: RayOptions | None,
    quiet: bool,
    output: Path,
    shard_rows: int,
) -> None:
    from mmcli.embedding.shards import ShardWriter

    writer = ShardWriter(output, shard_rows, engine.spec.canonical)
    _images(engine, paths, run, ray, quiet, writer.add)
    manifest = writer.close()
    if not quiet:
        say(f"wrote {writer.rows} x {writer.dim} embeddings to {output}: {len(writer.shards)} shards + {manifest.name}")


def _image_stream(
    engine: LocalEngine, paths: list[str], run: RunChoice, ray: RayOptions | None, on_progress: ProgressFn
) -> Iterator[ImageVector | FileFailure]:
    """Here (decoding processes + the model in this process), or on a Ray cluster."""
    if ray is None:
        from mmcli.embedding.batch import embed_stream

        return embed_stream(engine.encoder(), paths, run.batch_size, run.workers, run.pixel_limit, on_progress)
    from mmcli.embedding.ray_driver import embed_files_on_ray

    return embed_files_on_ray(
        engine.spec, paths, ray, device=engine.device, precision=engine.precision, batch_size=run.batch_size,
        max_pixels=run.pixel_limit, on_progress=on_progress,
    )  # fmt: skip


def _stdout(key: str, vector: np.ndarray) -> None:
    from mmcli.cli.output import json_line

    sys.stdout.write(json_line({"path": key, "embedding": vector.tolist()}) + "\n")


def _images(
    engine: LocalEngine,
    paths: list[str],
    run: RunChoice,
    ray: RayOptions | None,
    quiet: bool,
    sink: Callable[[str, np.ndarray], None],
) -> None:
    """Each embedded image to ``sink`` in input order; one stderr line per file skipped."""
    from mmcli.cli.output import Progress
    from mmcli.results import FileFailure

    start = time.perf_counter()
    progress = Progress("embedding", enabled=not quiet)
    ok, failed = 0, 0
    try:
        for item in _image_stream(engine, paths, run, ray, progress.update):
            if isinstance(item, FileFailure):
                failed += 1
                warn(f"skipped {item.path}: {item.reason}")
                continue
            sink(item.path, item.vector)
            ok += 1
    finally:
        progress.close()
    summary("embedded", ok, failed, time.perf_counter() - start, quiet)
    if not ok:
        raise NoImagesError(f"no image could be embedded ({failed} failed)")
