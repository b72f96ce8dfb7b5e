"""`mmcli classify` and `mmcli embed`: images (or texts) in, labels or vectors out."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.groups import (
    InputChoice,
    ModelChoice,
    PictureChoice,
    RunChoice,
    input_options,
    model_options,
    picture_options,
    run_options,
)
from mmcli.cli.options import (
    EveryOpt,
    LabelsFileOpt,
    LabelsOpt,
    MaxFramesOpt,
    PreviewOpt,
    QuietOpt,
    ServerOpt,
    TemplateOpt,
    command,
    format_option,
)
from mmcli.cli.views import CLASSIFICATIONS
from mmcli.errors import NoImagesError

if TYPE_CHECKING:
    from mmcli.engine.keywords import XmpOptions
    from mmcli.xmp.keywords import SidecarChange

ClassifyFormat = format_option(CLASSIFICATIONS)


@command(
    short="Classify images (videos: a timeline) against labels.",
    examples=(
        "mmcli classify photo.jpg --labels cat dog",
        "mmcli classify ./photos --labels-file labels.txt --templates imagenet -f csv > out.csv",
        "find . -name '*.jpg' -print0 | mmcli classify - -z --labels indoor outdoor | jq .labels[0]",
        'mmcli classify talk.mp4 --labels "a person speaking" slides "an audience"   (a timeline of segments)',
        "mmcli classify ./photos --labels cat dog --preview      (each picture beside its labels)",
        "mmcli classify ./photos --labels beach city --top-k 1 --write-xmp   (keywords into photo.jpg.xmp sidecars)",
    ),
    multi_value=True,
)
@input_options
@model_options
@run_options
@picture_options
def classify(
    labels: LabelsOpt = None,
    labels_file: LabelsFileOpt = None,
    template: TemplateOpt = None,
    templates: Annotated[
        Optional[str],
        typer.Option(
            "--templates",
            help="A template set from configs/templates.toml: default, simple (7), imagenet (80), raw.",
            show_default=False,
        ),
    ] = None,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label", help="An independent score per label (see README) instead of a softmax over labels."
        ),
    ] = False,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Show only labels scoring at least this (default: 0.5 with --multi-label, else all).",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", "-k", min=1, help="Show at most K labels per image.", show_default=False)
    ] = None,
    write_xmp: Annotated[
        bool,
        typer.Option(
            "--write-xmp",
            help="Write the labels kept as keywords into each picture's XMP sidecar (README: photo managers).",
        ),
    ] = False,
    xmp_style: Annotated[
        str,
        typer.Option("--xmp-style", help="Sidecar names: darktable (photo.jpg.xmp, digiKam too) or adobe (photo.xmp)."),
    ] = "darktable",
    xmp_prefix: Annotated[
        str, typer.Option("--xmp-prefix", help="Where the keywords hang in lr:hierarchicalSubject.")
    ] = "mmcli|label",
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="With --write-xmp: take out our keywords (under the prefix) this run does not give."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --write-xmp: say on stderr what each sidecar would get; write none.")
    ] = False,
    every: EveryOpt = 2.0,
    max_frames: MaxFramesOpt = 2000,
    fmt: ClassifyFormat = None,
    quiet: QuietOpt = False,
    server: ServerOpt = None,
    preview: PreviewOpt = None,
    *,
    source: InputChoice,
    model_choice: ModelChoice,
    run: RunChoice,
    pictures: PictureChoice,
) -> None:
    """Zero-shot classify images against labels; videos give a timeline of labelled segments."""
    with funnel():
        from mmcli.cli.inputs import check_inputs_given, choose_templates, collect_labels
        from mmcli.cli.output import Progress, Renderer, choose_format
        from mmcli.cli.preview import open_preview
        from mmcli.cli.views import classifications, timelines
        from mmcli.engine.local import LocalEngine
        from mmcli.media.video import is_video
        from mmcli.queries import ClassifyRequest
        from mmcli.results import FileFailure, Segment
        from mmcli.serve.client import choose_engine

        check_inputs_given(source.inputs, labels)
        xmp = xmp_options(write_xmp, xmp_style, xmp_prefix, replace, dry_run)
        paths = source.paths(videos=True)
        more = top_k - 1 if top_k else None if multi_label else 1  # what was asked for
        view = timelines(more) if any(is_video(p) for p in paths) else classifications(more)
        shown = open_preview(preview, fmt)
        out_format = "table" if shown else choose_format(view, fmt, sys.stdout)
        cut = threshold if threshold is not None else (0.5 if multi_label else None)
        request = ClassifyRequest(
            tuple(paths),
            tuple(collect_labels(labels, labels_file)),
            tuple(choose_templates(template, templates)),
            multi_label,
            top_k,
            cut,
            run.pixel_limit,
            every,
            max_frames,
        )
        if xmp is not None:
            from mmcli.engine.keywords import SidecarWriter, check_labels

            check_labels(request.labels)
            sidecars = SidecarWriter(request, xmp)
        start = time.perf_counter()
        bars = not quiet and shown is None  # pictures are drawn as results come: no bar redrawn among them
        progress = Progress("classifying", enabled=bars)
        prompts = Progress("embedding label prompts", enabled=bars, unit="prompts")
        note = None if quiet else lambda message: (progress.close(), say(message))  # (the towers' export)
        local = LocalEngine(None, *model_choice.args, batch_size=run.batch_size, workers=run.workers, on_note=note)
        engine = choose_engine(server, local, for_classify=True)
        try:
            result = engine.classify(request, progress.update, prompts.update)
            prompts.close()
            warn_all(result.warnings)
            renderer, done, failed, changes = Renderer(view, out_format, preview=shown), [], 0, []
            for item in result.items:
                if isinstance(item, FileFailure):
                    failed += 1
                    warn(f"skipped {item.path}: {item.reason}")
                else:
                    done.append(item)
                    renderer.write(item)
                if xmp is not None:
                    changes += tell_sidecars(sidecars.add(item), xmp.dry_run)
            if xmp is not None:
                changes += tell_sidecars(sidecars.finish(), xmp.dry_run)
        finally:
            prompts.close()
            progress.close()
        renderer.close()
        videos = {d.path for d in done if isinstance(d, Segment) or is_video(d.path)}
        images = len([d for d in done if d.path not in videos])
        summary("classified", images, failed, time.perf_counter() - start, quiet, len(videos))
        if xmp is not None and not quiet:
            say(sidecar_summary(changes, xmp.dry_run))
        if not done:
            raise NoImagesError(f"no image could be classified ({failed} failed)")
        if pictures.html or pictures.grid:
            from mmcli.cli.pictures import Tile
            from mmcli.media.video import format_time

            tiles = [
                Tile(c.path, (f"{c.label} {c.score:.3f}", f"{format_time(c.start)} - {format_time(c.end)}"), c.start)
                if isinstance(c, Segment)
                else Tile(c.path, tuple(f"{ls.label} {ls.score:.3f}" for ls in c.labels[:2]))
                for c in done
            ]
            pictures.write(tiles, "mmcli classify", f"labels: {', '.join(request.labels[:12])}")


def xmp_options(write: bool, style: str, prefix: str, replace: bool, dry_run: bool) -> XmpOptions | None:
    """``--write-xmp`` and its companions as one value (None without it); a companion alone: a usage error."""
    from mmcli.engine.keywords import XmpOptions
    from mmcli.errors import UsageError

    if write:
        return XmpOptions(style, prefix, replace, dry_run)
    defaults = XmpOptions()
    given = [("--xmp-style", style != defaults.style), ("--xmp-prefix", prefix != defaults.prefix)]
    given += [("--replace", replace), ("--dry-run", dry_run)]
    for name, on in given:
        if on:
            raise UsageError(f"{name} needs --write-xmp")
    return None


def tell_sidecars(changes: list[SidecarChange], dry_run: bool) -> list[SidecarChange]:
    """One stderr line per sidecar left as it was for a reason, and with --dry-run per sidecar that
    would change (``+`` keywords added, ``-`` taken out)."""
    for c in changes:
        if c.state == "skipped":
            warn(f"sidecar {c.sidecar} left as it was: {c.reason}")
        elif dry_run and c.state in ("new", "changed"):
            parts = [f"+ {', '.join(c.added)}"] * bool(c.added) + [f"- {', '.join(c.removed)}"] * bool(c.removed)
            say(f"would {'make' if c.state == 'new' else 'change'} {c.sidecar}: {'  '.join(parts)}")
    return changes


def sidecar_summary(changes: list[SidecarChange], dry_run: bool) -> str:
    """``xmp: 3 sidecars written (1 new), 5 unchanged, 1 left as it was`` (``would be written``: a dry run)."""
    from mmcli.cli.console import counted

    count = {state: sum(1 for c in changes if c.state == state) for state in ("new", "changed", "unchanged", "skipped")}
    written = counted(count["new"] + count["changed"], "sidecar") + (" would be written" if dry_run else " written")
    parts = [written + (f" ({count['new']} new)" if count["new"] else "")]
    parts += [f"{count['unchanged']} unchanged"] * bool(count["unchanged"])
    parts += [f"{count['skipped']} left as {'it was' if count['skipped'] == 1 else 'they were'}"] * bool(
        count["skipped"]
    )
    return "xmp: " + ", ".join(parts)
