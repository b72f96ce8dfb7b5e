"""`mmcli models` and `mmcli demo`: what models there are, and the whole job offline in seconds."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mmcli.cli.console import funnel, say
from mmcli.cli.options import command, format_option
from mmcli.cli.views import MODELS

ModelsFormat = format_option(MODELS)


@command(
    short="List model aliases and which are downloaded.",
    examples=("mmcli models", "mmcli models --all -f jsonl | jq -r 'select(.local) | .spec'"),
)
def models(
    all_: Annotated[bool, typer.Option("--all", help="Also list every open_clip architecture:tag.")] = False,
    fmt: ModelsFormat = None,
) -> None:
    """List model aliases and which weights are already on this machine (loads no model)."""
    with funnel():
        from mmcli.cli.output import choose_format, render
        from mmcli.cli.views import MODELS
        from mmcli.models.catalog import list_models

        render(list_models(include_all=all_), MODELS, choose_format(MODELS, fmt, sys.stdout))


@command(short="Offline demo: shape images, indexed and searched.", examples=("mmcli demo --dir ./shapes --count 100",))
def demo(
    folder: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            help="Where to write the sample images (default: $MMCLI_CACHE/demo, reused by every run).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", min=8, max=5000, help="How many sample images.")] = 48,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated images.")] = 7,
) -> None:
    """Offline demo: generate shape images, index them, search and classify with the bundled mmcli-tiny."""
    with funnel():
        import os
        from dataclasses import replace

        from mmcli.cli.output import render
        from mmcli.cli.views import CLASSIFICATIONS, HITS
        from mmcli.config import cache_dir
        from mmcli.demo.run import DEMO_QUERY, run_demo

        target = (folder or cache_dir() / "demo").resolve()
        if folder is None and target.is_dir():
            import shutil

            shutil.rmtree(target)  # the demo's own folder: each run starts afresh there, nothing piles up
        say(f"1. writing {count} shape images to {target}")
        say("2. indexing them with the bundled mmcli-tiny model; 3. searching; 4. classifying")
        result = run_demo(target, count=count, seed=seed)
        say(f"\nindexed {result.summary.added} images in {result.summary.seconds:.1f} s (index: {result.index})")
        reds = f"{result.red_circles_in_hits} of the top {len(result.hits)} are red circles"
        say(f'\nmmcli search "{DEMO_QUERY}" -> {reds}:')
        render(result.hits, HITS, "table", sys.stdout)
        say(
            f"\nmmcli classify -> {result.correct}/{len(result.classifications)} top labels match the drawn shape "
            f"(32 labels: 'red circle', 'blue star', ...):"
        )
        shown = [replace(c, path=os.path.relpath(c.path, target)) for c in result.classifications]
        render(shown, CLASSIFICATIONS, "table", sys.stdout)
        say(
            f"\ndone in {result.seconds:.1f} s. Try:\n"
            f"  mmcli search 'a yellow star' --index {result.index}\n"
            f"  mmcli classify {target} --model mmcli-tiny --labels red green blue --template 'a {{}} shape'"
        )
