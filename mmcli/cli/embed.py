"""`mmcli embed`: L2-normalised embeddings of images, video moments or texts, as JSON Lines or .npy files."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.groups import (
    InputChoice,
    ModelChoice,
    RunChoice,
    VideoChoice,
    input_options,
    model_options,
    ray_options,
    run_options,
    video_options,
)
from mmcli.cli.options import QuietOpt, command
from mmcli.cli.ray_group import RayChoice
from mmcli.errors import NoImagesError, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from mmcli.embedding.ray_driver import RayOptions
    from mmcli.engine.local import LocalEngine
    from mmcli.media.video import VideoVectors
    from mmcli.results import FileFailure, ImageVector, ProgressFn


@command(
    short="Embeddings of images, video moments or texts.",
    examples=(
        "mmcli embed ./photos --output photos.npy     (also writes photos.paths.json)",
        "mmcli embed talk.mp4 --every 5 | jq .time     (a row per moment of a video)",
        "mmcli embed --text 'a red car' 'a blue car' | jq '.embedding | length'",
        "mmcli embed /shared/photos --ray -o photos.npy     (decoding and model on a Ray cluster)",
    ),
    multi_value=True,
)
@ray_options
@input_options
@model_options
@run_options
@video_options
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
    video: VideoChoice,
    ray_choice: RayChoice,
) -> None:
    """L2-normalised embeddings of images, video moments or texts."""
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
        how = MediaRun(run, ray, video.every, video.max_frames)
        if text:
            _texts(engine, text, output, quiet)
        elif output is not None and sharded:
            _images_to_shards(engine, source.paths(videos=True), how, quiet, output, shard_rows)
        else:
            _images_to_file(engine, source.paths(videos=True), how, quiet, output)
        if not text:
            warn_all(engine.write_towers(None if quiet else say))  # the model is loaded: the towers searches need


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


def _images_to_file(engine: LocalEngine, paths: list[str], how: MediaRun, quiet: bool, output: Path | None) -> None:
    """JSON Lines on stdout as they come, or one .npy (+ .paths.json) at the end."""
    import numpy as np

    from mmcli.atomic import write_embeddings

    if output is None:
        _images(engine, paths, how, quiet, _stdout)
        return
    keys: list[str] = []
    times: list[float | None] = []
    rows: list[np.ndarray] = []

    def keep(key: str, moment: float | None, vector: np.ndarray) -> None:
        keys.append(key)
        times.append(moment)
        rows.append(vector)

    _images(engine, paths, how, quiet, keep)
    companion = write_embeddings(output, np.stack(rows), keys, "path", times)
    if not quiet:
        say(f"wrote {len(keys)} x {rows[0].shape[0]} embeddings to {output} (+ {companion.name})")


def _images_to_shards(
    engine: LocalEngine, paths: list[str], how: MediaRun, quiet: bool, output: Path, shard_rows: int
) -> None:
    from mmcli.embedding.shards import ShardWriter

    writer = ShardWriter(output, shard_rows, engine.spec.canonical)
    _images(engine, paths, how, quiet, writer.add)
    manifest = writer.close()
    if not quiet:
        say(f"wrote {writer.rows} x {writer.dim} embeddings to {output}: {len(writer.shards)} shards + {manifest.name}")


@dataclass(frozen=True)
class MediaRun:
    """How images and videos are embedded: the run options, Ray or not, the video sampling."""

    run: RunChoice
    ray: RayOptions | None
    every: float
    max_frames: int


def _media_stream(
    engine: LocalEngine, paths: list[str], how: MediaRun, on_progress: ProgressFn
) -> Iterator[ImageVector | VideoVectors | FileFailure]:
    """Here (decoding processes + the model in this process), or on a Ray cluster."""
    run = how.run
    if how.ray is None:
        from mmcli.embedding.video import embed_media

        return embed_media(
            engine.encoder(), paths, every=how.every, max_frames=how.max_frames, batch_size=run.batch_size,
            workers=run.workers, max_pixels=run.pixel_limit, on_progress=on_progress,
        )  # fmt: skip
    from mmcli.embedding.ray_driver import embed_files_on_ray

    return embed_files_on_ray(
        engine.spec, paths, how.ray, device=engine.device, precision=engine.precision, batch_size=run.batch_size,
        max_pixels=run.pixel_limit, on_progress=on_progress, every=how.every, max_frames=how.max_frames,
    )  # fmt: skip


def _stdout(key: str, moment: float | None, vector: np.ndarray) -> None:
    from mmcli.cli.output import json_line

    row: dict[str, object] = {"path": key} if moment is None else {"path": key, "time": moment}
    row["embedding"] = vector.tolist()
    sys.stdout.write(json_line(row) + "\n")


def _images(
    engine: LocalEngine,
    paths: list[str],
    how: MediaRun,
    quiet: bool,
    sink: Callable[[str, float | None, np.ndarray], None],
) -> None:
    """Each embedded image, and each moment of each video, to ``sink`` in input order; one stderr line
    per file skipped."""
    from mmcli.cli.output import Progress
    from mmcli.results import FileFailure, ImageVector

    start = time.perf_counter()
    progress = Progress("embedding", enabled=not quiet, unit="files")
    images, videos, failed = 0, 0, 0
    try:
        for item in _media_stream(engine, paths, how, progress.update):
            if isinstance(item, FileFailure):
                failed += 1
                warn(f"skipped {item.path}: {item.reason}")
            elif isinstance(item, ImageVector):
                sink(item.path, None, item.vector)
                images += 1
            else:
                for moment, vector in zip(item.times, item.vectors):
                    sink(item.path, moment, vector)
                videos += 1
    finally:
        progress.close()
    summary("embedded", images, failed, time.perf_counter() - start, quiet, videos)
    if not images + videos:
        raise NoImagesError(f"no image or video could be embedded ({failed} failed)")
