"""`mmcli index` and `mmcli info`: bring an index up to date; say what it holds.

`mmcli index` is a declared command (``COMMAND``: its options once, a Typer-free body); `mmcli indexes` and
`mmcli info` are Typer functions."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.cli.console import RATE_MIN_IMAGES, funnel, say, warn, warn_all
from mmcli.cli.declare import (
    EVERY,
    HIDDEN,
    INDEX,
    MAX_FRAMES,
    QUIET,
    RUN_OPTIONS,
    Command,
    ModelChoice,
    Option,
    RunChoice,
    Values,
    choice,
    model_options,
)
from mmcli.cli.options import IndexOpt, command, format_option
from mmcli.cli.ray_group import RAY_OPTIONS, RayChoice
from mmcli.cli.views import INDEXES, INFO
from mmcli.errors import UsageError

IndexesFormat = format_option(INDEXES)
InfoFormat = format_option(INFO)

if TYPE_CHECKING:
    from mmcli.index.sync import IndexSummary
    from mmcli.index.watch import WatchBatch


OPTIONS = (
    Option("paths", (), "Folders (walked recursively), image or video files.", kind="words"),
    INDEX,
    Option(
        "rebuild",
        ("--rebuild",),
        "Forget every entry and embed everything again (needed to switch models).",
        kind="flag",
    ),
    Option("exclude", ("--exclude",), "Skip names or paths matching this glob (repeatable).", kind="many"),
    Option(
        "prune",
        ("--prune",),
        "Drop the entries of files that are gone (otherwise they are kept as missing: out of searches, their "
        "vectors kept for when the files come back, e.g. a drive that was not mounted).",
        kind="flag",
    ),
    EVERY,
    MAX_FRAMES,
    HIDDEN,
    QUIET,
    Option(
        "watch",
        ("--watch",),
        "After the first pass, keep the index current as files appear, change, move or vanish (batched; the model "
        "stays loaded). Ctrl-C stops.",
        kind="flag",
    ),
    Option(
        "from_embeddings",
        ("--from-embeddings",),
        "Record vectors made elsewhere instead of running the model: the folder (or .npy) `mmcli embed -o` wrote, "
        "or clip-retrieval's output folder. See README, Import embeddings made elsewhere.",
    ),
    Option(
        "path_prefix",
        ("--path-prefix",),
        "With --from-embeddings: read paths under OLD as under NEW here (OLD=NEW, repeatable).",
        kind="many",
    ),
    Option(
        "keep_not_found", ("--keep-not-found",), "With --from-embeddings: record files not found here too.", kind="flag"
    ),
    Option(
        "read_hash",
        ("--hash",),
        "With --from-embeddings: read each file whole for its content hash, so that renamed and copied files are "
        "recognised later without the model (default: a header read, for the date).",
        kind="flag",
    ),
    *RAY_OPTIONS,
    *model_options("indexing"),
    *RUN_OPTIONS,
)
IMPORT_ONLY = ("from_embeddings", "path_prefix", "keep_not_found", "read_hash")


def index_body(values: Values) -> int:
    """Add folders of images and videos to an index, incrementally (new, changed, renamed, deleted files)."""
    from mmcli.cli.output import Progress
    from mmcli.index.job import IndexJob
    from mmcli.index.open import index_folder
    from mmcli.index.sync import run_index
    from mmcli.queries.build import convert

    model_choice, run, ray = choice(ModelChoice, values), choice(RunChoice, values), choice(RayChoice, values)
    if any(values[name] for name in IMPORT_ONLY):
        return _import(values, model_choice, ray)
    paths, quiet = values["paths"], values["quiet"]
    if not paths:
        raise UsageError("give the folders or files to index, or --from-embeddings PATH")
    folder = index_folder(values["index"])
    model, weights, device, precision = model_choice.args
    progress = Progress("indexing", enabled=not quiet)
    job = IndexJob(  # (the values as typed, converted by the job's field types; the job checks them)
        paths,
        **{name: convert(IndexJob, name, values[name]) for name in ("rebuild", "prune", "every", "max_frames")},
        model=model,
        weights=weights,
        device=device,
        precision=precision,
        include_hidden=values["include_hidden"],
        exclude=values["exclude"] or (),
        batch_size=run.batch_size,
        workers=run.workers,
        max_pixels=run.pixel_limit,
        ray=ray.options,
        on_progress=progress.update,
        on_failure=lambda f: warn(f"skipped {f.path}: {f.reason}"),
        on_note=None if quiet else lambda m: (progress.close(), say(m)),
    )
    try:
        if values["watch"]:
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
    return 0


def _import(values: Values, model_choice: ModelChoice, ray: RayChoice) -> int:
    """`--from-embeddings`: vectors made elsewhere, recorded as if indexed here."""
    from mmcli.cli.output import Progress
    from mmcli.index.imports import import_embeddings, parse_prefix
    from mmcli.index.open import index_folder

    source, quiet = values["from_embeddings"], values["quiet"]
    if source is None:
        raise UsageError("--path-prefix, --keep-not-found and --hash go with --from-embeddings PATH")
    extra = [values["paths"] and "PATHS", values["rebuild"] and "--rebuild", values["watch"] and "--watch"]
    extra += [values["prune"] and "--prune", values["exclude"] and "--exclude", ray.options is not None and "--ray"]
    given = [str(e) for e in extra if e]
    if given:
        raise UsageError(f"--from-embeddings imports; it does not go with {', '.join(given)}")
    folder = index_folder(values["index"])
    model, weights, _, _ = model_choice.args
    progress = Progress("importing", enabled=not quiet, unit="rows")
    try:
        s = import_embeddings(
            folder, Path(source), model=model, weights=weights,
            path_prefix=[parse_prefix(p) for p in values["path_prefix"] or ()], keep_not_found=values["keep_not_found"],
            read_hash=values["read_hash"], on_progress=progress.update,
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
    return 0


COMMAND = Command(
    "index",
    short="Add folders of images and videos to an index.",
    doc=index_body.__doc__ or "",
    examples=(
        "mmcli index ~/Pictures                      (again later: only new or changed files are embedded)",
        "mmcli index ./photos --index holiday --exclude '*.tmp.jpg' --model mmcli-tiny",
        "mmcli index ~/Pictures --rebuild --model vit-b-16",
        "mmcli index ~/Videos --every 1 --max-frames 500       (videos: a frame every second, and at cuts)",
        "mmcli index /shared/photos --ray-address head:6379      (on a Ray cluster; see README, Large collections)",
        "mmcli index ~/Pictures --watch              (then keep it current as files come and go; Ctrl-C stops)",
        "mmcli index --from-embeddings photos/ --path-prefix /mnt/gpu/photos=~/Pictures   (vectors made elsewhere)",
    ),
    options=OPTIONS,
    body=index_body,
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
