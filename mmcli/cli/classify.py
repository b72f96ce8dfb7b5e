"""`mmcli classify` and `mmcli embed`: images (or texts) in, labels or vectors out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mmcli.cli.console import funnel, say, summary, warn, warn_all
from mmcli.cli.options import (
    FormatOpt,
    GridOpt,
    HiddenOpt,
    HtmlOpt,
    InputsArg,
    LabelsFileOpt,
    LabelsOpt,
    ModelChoice,
    NulInOpt,
    OldNulOpt,
    QuietOpt,
    RunChoice,
    ServerOpt,
    TemplateOpt,
    command,
    model_options,
    run_options,
)
from mmcli.errors import NoImagesError, UsageError

if TYPE_CHECKING:
    from mmcli.results import Classification


def moved_null_flag(old: bool) -> None:
    if old:
        raise UsageError("-0 is NUL-separated output; NUL-separated paths on stdin are -z (--null-input)")


def input_paths(inputs: list[str] | None, null_input: bool, include_hidden: bool) -> list[str]:
    from mmcli.inputs import gather_paths

    return gather_paths(inputs, getattr(sys.stdin, "buffer", None), null_input, include_hidden)


@command(
    examples=(
        "mmcli classify photo.jpg --labels cat dog",
        "mmcli classify ./photos --labels-file labels.txt --templates imagenet -f csv > out.csv",
        "find . -name '*.jpg' -print0 | mmcli classify - -z --labels indoor outdoor | jq .labels[0]",
    ),
    multi_value=True,
)
@model_options
@run_options
def classify(
    inputs: InputsArg = None,
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
    fmt: FormatOpt = None,
    null_input: NulInOpt = False,
    old_null: OldNulOpt = False,
    include_hidden: HiddenOpt = False,
    quiet: QuietOpt = False,
    server: ServerOpt = None,
    html_out: HtmlOpt = None,
    grid_out: GridOpt = None,
    *,
    model_choice: ModelChoice,
    run: RunChoice,
) -> None:
    """Zero-shot classify images against labels."""
    with funnel():
        from mmcli.cli.views import CLASSIFICATIONS
        from mmcli.engine import choose_engine
        from mmcli.inputs import choose_templates, collect_labels
        from mmcli.output import Progress, Renderer, choose_format
        from mmcli.queries import ClassifyRequest
        from mmcli.results import FileFailure

        moved_null_flag(old_null)
        out_format = choose_format(CLASSIFICATIONS, fmt, sys.stdout)
        cut = threshold if threshold is not None else (0.5 if multi_label else None)
        request = ClassifyRequest(
            tuple(input_paths(inputs, null_input, include_hidden)),
            tuple(collect_labels(labels, labels_file)),
            tuple(choose_templates(template, templates)),
            multi_label,
            top_k,
            cut,
            run.pixel_limit,
        )
        start = time.perf_counter()
        engine = choose_engine(
            server, None, *model_choice.args, batch_size=run.batch_size, workers=run.workers, for_classify=True
        )
        progress = Progress("classifying", enabled=not quiet)
        try:
            result = engine.classify(request, progress.update)
            warn_all(result.warnings)
            renderer, done, failed = Renderer(CLASSIFICATIONS, out_format), [], 0
            for item in result.items:
                if isinstance(item, FileFailure):
                    failed += 1
                    warn(f"skipped {item.path}: {item.reason}")
                else:
                    done.append(item)
                    renderer.write(item)
        finally:
            progress.close()
        renderer.close()
        summary("classified", len(done), failed, time.perf_counter() - start, quiet)
        if not done:
            raise NoImagesError(f"no image could be classified ({failed} failed)")
        _pictures(done, html_out, grid_out, request.labels)


def _pictures(
    done: list[Classification], html_out: Path | None, grid_out: Path | None, labels: tuple[str, ...]
) -> None:
    if not (html_out or grid_out):
        return
    from mmcli.pictures import Tile, write_pictures

    tiles = [Tile(c.path, tuple(f"{ls.label} {ls.score:.3f}" for ls in c.labels[:2])) for c in done]
    subtitle = f"labels: {', '.join(labels[:12])}"
    for path in write_pictures(tiles, html_out, grid_out, "mmcli classify", subtitle):
        say(f"wrote {path}")
