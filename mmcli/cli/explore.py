"""`mmcli dupes` and `mmcli cluster`: the shape of an index (near-duplicates, k-means groups)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from mmcli.cli.console import counted, funnel, say
from mmcli.cli.groups import ModelChoice, PictureChoice, index_model_options, picture_options
from mmcli.cli.options import (
    IndexOpt,
    LabelsFileOpt,
    LabelsOpt,
    NulOutOpt,
    PreviewOpt,
    TemplateOpt,
    command,
    format_option,
)
from mmcli.cli.views import CLUSTERS, DUPES

DupesFormat = format_option(DUPES)
ClustersFormat = format_option(CLUSTERS)


@command(
    short="Groups of near-duplicate images in an index.",
    examples=(
        "mmcli dupes",
        "mmcli dupes --threshold 0.9 --html dupes.html",
        "mmcli dupes -0 | tr -s '\\0' | xargs -0 ls -l     (NUL after each path, NUL NUL between groups: tr -s "
        "squeezes them)",
        "mmcli dupes --preview                        (each group's pictures in the terminal)",
    ),
)
@picture_options
def dupes(
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.0, max=1.0, help="Cosine similarity that makes two images near-duplicates."),
    ] = 0.95,
    index: IndexOpt = None,
    fmt: DupesFormat = None,
    null: NulOutOpt = False,
    preview: PreviewOpt = None,
    *,
    pictures: PictureChoice,
) -> None:
    """Groups of near-duplicate images in an index, largest first (exact copies always group)."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.preview import open_preview
        from mmcli.cli.views import DUPES
        from mmcli.explore.dupes import find_dupes
        from mmcli.index.open import index_folder

        shown = open_preview(preview, fmt, null)
        out_format = "table" if shown else choose_format(DUPES, fmt, sys.stdout, nul=null)
        groups = find_dupes(index_folder(index), threshold)
        render(groups, DUPES, out_format, nul=null, preview=shown)
        if pictures.html or pictures.grid:
            from mmcli.cli.pictures import Tile
            from mmcli.media.video import format_time

            tiles = [
                Tile(
                    p,
                    (f"group {g.group} ({_files(g.paths)})", f"min score {g.min_score:.3f}")
                    + ((f"at {format_time(t)}",) if t is not None else ()),
                    t,
                    g.group,
                )
                for g in groups
                for p, t in zip(g.paths, g.times or (None,) * len(g.paths))
            ]
            pictures.write(tiles, "mmcli dupes", f"threshold {threshold}; {len(groups)} groups")
        say(
            f"{counted(len(groups), 'group')} of near-duplicates "
            f"({_files([p for g in groups for p in g.paths])}) at threshold {threshold}"
        )


def _files(paths: Sequence[str]) -> str:
    """``3 images``, ``2 images, 1 video``: videos counted apart."""
    from mmcli.media.video import is_video

    videos = sum(is_video(p) for p in paths)
    return counted(len(paths) - videos, "image") + (f", {counted(videos, 'video')}" if videos else "")


@command(
    short="k-means clusters of an index, with labels.",
    examples=(
        "mmcli cluster -k 20",
        "mmcli cluster -k 8 --labels beach mountain city food people -f jsonl",
        "mmcli cluster -k 5 --samples 3 --preview blocks",
    ),
    multi_value=True,
)
@index_model_options
@picture_options
def cluster(
    k: Annotated[int, typer.Option("-k", "--clusters", min=1, help="How many clusters.")] = 10,
    labels: LabelsOpt = None,
    labels_file: LabelsFileOpt = None,
    template: TemplateOpt = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Sample paths per cluster.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="k-means seed.")] = 1234,
    index: IndexOpt = None,
    fmt: ClustersFormat = None,
    null: NulOutOpt = False,
    preview: PreviewOpt = None,
    *,
    model_choice: ModelChoice,
    pictures: PictureChoice,
) -> None:
    """k-means over an index: each cluster's size, sample images and best-matching labels."""
    with funnel():
        from mmcli.cli.inputs import choose_templates, collect_labels
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.preview import open_preview
        from mmcli.cli.views import CLUSTERS, held
        from mmcli.engine.local import LocalEngine
        from mmcli.explore.cluster import cluster_index
        from mmcli.index.open import index_folder

        shown = open_preview(preview, fmt, null)
        out_format = "table" if shown else choose_format(CLUSTERS, fmt, sys.stdout, nul=null)
        tags = collect_labels(labels, labels_file) if labels or labels_file else []
        engine = LocalEngine(index_folder(index), *model_choice.args)
        clusters = cluster_index(engine, k, tags, choose_templates(template, None), samples=samples, seed=seed)
        render(clusters, CLUSTERS, out_format, nul=null, preview=shown)
        if pictures.html or pictures.grid:
            from mmcli.cli.pictures import Tile

            tiles = [
                Tile(
                    p, (f"cluster {c.cluster} ({held(c)})", ", ".join(ls.label for ls in c.labels[:2])), None, c.cluster
                )
                for c in clusters
                for p in c.samples
            ]
            pictures.write(tiles, "mmcli cluster", f"{len(clusters)} clusters, {samples} samples each")
