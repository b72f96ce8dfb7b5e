"""`mmcli index` and `mmcli info`: bring an index up to date; say what it holds."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import RATE_MIN_IMAGES, funnel, say, warn, warn_all
from mmcli.cli.groups import ModelChoice, RunChoice, VideoChoice, indexing_model_options, run_options, video_options
from mmcli.cli.options import HiddenOpt, IndexOpt, QuietOpt, command, format_option
from mmcli.cli.ray_group import RayChoice, ray_options
from mmcli.cli.views import INDEXES, INFO
from mmcli.errors import UsageError

IndexesFormat = format_option(INDEXES)
InfoFormat = format_option(INFO)

if TYPE_CHECKING:
    from mmcli.index.sync import IndexSummary
    from mmcli.index.watch import WatchBatch


@command(
    "index",
    short="Add folders of images and videos to an index.",
    examples=(
        "mmcli index ~/Pictures                      (again later: only new or changed files are embedded)",
        "mmcli index ./photos --index holiday --exclude '*.tmp.jpg' --model mmcli-tiny",
        "mmcli index ~/Pictures --rebuild --model vit-b-16",
        "mmcli index ~/Videos --every 1 --max-frames 500       (videos: a frame every second, and at cuts)",
        "mmcli index /shared/photos --ray-address head:6379      (on a Ray cluster; see README, Large collections)",
        "mmcli index ~/Pictures --watch              (then keep it current as files come and go; Ctrl-C stops)",
        "mmcli index --from-embeddings photos/ --path-prefix /mnt/gpu/photos=~/Pictures   (vectors made elsewhere)",
    ),
)
@ray_options
@indexing_model_options
@run_options
@video_options
def index_cmd(
    paths: Annotated[
        Optional[list[str]], typer.Argument(help="Folders (walked recursively), image or video files.")
    ] = None,
    index: IndexOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Forget every entry and embed everything again (needed to switch models).")
    ] = False,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option("--exclude", help="Skip names or paths matching this glob (repeatable).", show_default=False),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Drop the entries of files that are gone (otherwise they are kept as missing: out of searches, "
            "their vectors kept for when the files come back, e.g. a drive that was not mounted).",
        ),
    ] = False,
    include_hidden: HiddenOpt = False,
    quiet: QuietOpt = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="After the first pass, keep the index current as files appear, change, move or vanish (batched; "
            "the model stays loaded). Ctrl-C stops.",
        ),
    ] = False,
    from_embeddings: Annotated[
        Optional[Path],
        typer.Option(
            "--from-embeddings",
            help="Record vectors made elsewhere instead of running the model: the folder (or .npy) `mmcli embed "
            "-o` wrote, or clip-retrieval's output folder. See README, Import embeddings made elsewhere.",
            show_default=False,
        ),
    ] = None,
    path_prefix: Annotated[
        Optional[list[str]],
        typer.Option(
            "--path-prefix",
            help="With --from-embeddings: read paths under OLD as under NEW here (OLD=NEW, repeatable).",
            show_default=False,
        ),
    ] = None,
    keep_not_found: Annotated[
        bool,
        typer.Option("--keep-not-found", help="With --from-embeddings: record files not found here too."),
    ] = False,
    read_hash: Annotated[
        bool,
        typer.Option(
            "--hash",
            help="With --from-embeddings: read each file whole for its content hash, so that renamed and copied "
            "files are recognised later without the model (default: a header read, for the date).",
        ),
    ] = False,
    *,
    model_choice: ModelChoice,
    run: RunChoice,
    video: VideoChoice,
    ray_choice: RayChoice,
) -> None:
    """Add folders of images and videos to an index, incrementally (new, changed, renamed, deleted files)."""
    if from_embeddings is not None or path_prefix or keep_not_found or read_hash:
        extra = [paths and "PATHS", rebuild and "--rebuild", watch and "--watch", prune and "--prune"]
        extra += [exclude and "--exclude", ray_choice.options is not None and "--ray"]
        _import(index, from_embeddings, path_prefix or [], keep_not_found, read_hash, model_choice, quiet, extra)
        return
    with funnel():
        if not paths:
            raise UsageError("give the folders or files to index, or --from-embeddings PATH")
        from mmcli.cli.output import Progress
        from mmcli.index.job import IndexJob
        from mmcli.index.open import index_folder
        from mmcli.index.sync import run_index

        folder = index_folder(index)
        model, weights, device, precision = model_choice.args
        progress = Progress("indexing", enabled=not quiet)
        job = IndexJob(
            paths,
            model=model,
            weights=weights,
            device=device,
            precision=precision,
            rebuild=rebuild,
            include_hidden=include_hidden,
            exclude=exclude or (),
            batch_size=run.batch_size,
            workers=run.workers,
            max_pixels=run.pixel_limit,
            prune=prune,
            every=video.every,
            max_frames=video.max_frames,
            ray=ray_choice.options,
            on_progress=progress.update,
            on_failure=lambda f: warn(f"skipped {f.path}: {f.reason}"),
            on_note=None if quiet else lambda m: (progress.close(), say(m)),
        )
        try:
            if watch:
                from mmcli.index.watch import watch_index

                def batch(b: WatchBatch) -> None:
                    progress.close()
                    _report(folder, b.summary, quiet, f"{time.strftime('%H:%M:%S')} " if b.number else "")
                    if b.number == 0:
                        say(f"watching {', '.join(paths)} for changes (Ctrl-C to stop)")

                watch_index(folder, job, batch, on_busy=lambda m: say(f"{m}: trying again"))
            else:
                _report(folder, run_index(folder, job), quiet)
        finally:
            progress.close()


def _import(
    index: str | None,
    source: Path | None,
    prefixes: list[str],
    keep: bool,
    read_hash: bool,
    model_choice: ModelChoice,
    quiet: bool,
    extra: list[object],
) -> None:
    """`--from-embeddings`: vectors made elsewhere, recorded as if indexed here."""
    with funnel():
        from mmcli.cli.output import Progress
        from mmcli.index.imports import import_embeddings, parse_prefix
        from mmcli.index.open import index_folder

        if source is None:
            raise UsageError("--path-prefix, --keep-not-found and --hash go with --from-embeddings PATH")
        given = [str(e) for e in extra if e]
        if given:
            raise UsageError(f"--from-embeddings imports; it does not go with {', '.join(given)}")
        folder = index_folder(index)
        model, weights, _, _ = model_choice.args
        progress = Progress("importing", enabled=not quiet, unit="rows")
        try:
            s = import_embeddings(
                folder, source, model=model, weights=weights, path_prefix=[parse_prefix(p) for p in prefixes],
                keep_not_found=keep, read_hash=read_hash, on_progress=progress.update,
            )  # fmt: skip
        finally:
            progress.close()
        warn_all(s.warnings)
        if not quiet:
            skipped = sum(n for _, n, _ in s.skipped)
            videos = f" ({s.videos} videos, {s.moments} moments)" if s.videos else ""
            say(
                f"imported {s.source} ({s.kind}) into {folder}: {s.rows} rows, {s.added} added{videos}, "
                f"{s.updated} updated, {s.unchanged} unchanged, {skipped} skipped in {s.seconds:.1f} s"
            )


def _report(folder: Path, s: IndexSummary, quiet: bool, prefix: str = "") -> None:
    warn_all(s.warnings)
    if quiet:
        return
    rate = f", {s.images_per_second:.1f} images/s" if s.embedded >= RATE_MIN_IMAGES else ""  # (embedding only)
    back = f", {s.restored} back" if s.restored else ""
    dated = f", {s.dated} dates read" if s.dated else ""
    lazy = "" if s.model_loaded else " (no model loaded)"
    back += f", {s.moments} video frames" if s.moments else ""
    say(
        f"{prefix}indexed {folder}: {s.scanned} scanned, {s.added} added, {s.updated} updated, {s.renamed} renamed, "
        f"{s.copied} copied, {s.missing} missing{back}, {s.removed} removed, {s.failed} failed, "
        f"{s.unchanged} unchanged{dated} in {s.seconds:.1f} s{rate}{lazy}"
    )


@command(
    short="List the indexes: folders, model, size, last update.",
    examples=("mmcli indexes", "mmcli indexes -f jsonl | jq -r .name"),
)
def indexes(fmt: IndexesFormat = None) -> None:
    """The indexes under $MMCLI_HOME/indexes: name, folders indexed, model, images, size, last update."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.views import INDEXES
        from mmcli.index.open import list_indexes

        render(list_indexes(), INDEXES, choose_format(INDEXES, fmt, sys.stdout))


@command(
    short="One index: where, model, counts, size, dates.", examples=("mmcli info", "mmcli info --index holiday -f json")
)
def info(index: IndexOpt = None, fmt: InfoFormat = None) -> None:
    """Where an index lives, its model, counts, size and last update."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.views import INFO
        from mmcli.index.open import index_folder, index_info

        out_format = choose_format(INFO, fmt, sys.stdout)
        render([index_info(index_folder(index))], INFO, out_format)
