"""`mmcli classify`: images (videos: a timeline) in, labels out.

``COMMAND`` declares its options once; ``classify`` is its body, run alike by Typer and by the fast path
(``mmcli.cli.fast``). No Typer here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mmcli.cli.declare import (
    EVERY,
    INPUT_OPTIONS,
    LABELS,
    LABELS_FILE,
    MAX_FRAMES,
    PICTURE_OPTIONS,
    PREVIEW,
    QUIET,
    RUN_OPTIONS,
    SERVER,
    TEMPLATE,
    Command,
    InputChoice,
    ModelChoice,
    Option,
    PictureChoice,
    RunChoice,
    Values,
    choice,
    format_option,
    model_options,
)
from mmcli.cli.views import CLASSIFICATIONS
from mmcli.errors import NoImagesError

OPTIONS = (
    LABELS,
    LABELS_FILE,
    TEMPLATE,
    Option(
        "templates",
        ("--templates",),
        "A template set from configs/templates.toml: default, simple (7), imagenet (80), raw.",
        request=True,
    ),
    Option(
        "multi_label",
        ("--multi-label",),
        "An independent score per label (see README) instead of a softmax over labels.",
        kind="flag",
        request=True,
    ),
    Option(
        "threshold",
        ("--threshold",),
        "Show only labels scoring at least this (default: 0.5 with --multi-label, else all).",
        request=True,
    ),
    Option("top_k", ("--top-k", "-k"), "Show at most K labels per image.", request=True),
    EVERY,
    MAX_FRAMES,
    format_option(CLASSIFICATIONS),
    QUIET,
    SERVER,
    PREVIEW,
    *INPUT_OPTIONS,
    *model_options(),
    *RUN_OPTIONS,
    *PICTURE_OPTIONS,
)


def classify(values: Values) -> int:
    """Zero-shot classify images against labels; videos give a timeline of labelled segments."""
    from mmcli.cli.console import say, summary, warn, warn_all
    from mmcli.cli.engines import choose_engine
    from mmcli.cli.inputs import check_inputs_given, collect_labels
    from mmcli.cli.output import Progress, Renderer, choose_format
    from mmcli.cli.preview import open_preview
    from mmcli.cli.views import classifications, timelines
    from mmcli.queries.build import classify_request
    from mmcli.queries.terms import names_a_video
    from mmcli.results import FileFailure, Segment

    source, model, run = choice(InputChoice, values), choice(ModelChoice, values), choice(RunChoice, values)
    pictures, quiet = choice(PictureChoice, values), values["quiet"]
    check_inputs_given(source.inputs, values["labels"])
    paths = source.paths(videos=True)
    labels_file = values["labels_file"]
    labels = collect_labels(values["labels"], None if labels_file is None else Path(labels_file))
    request = classify_request(**COMMAND.requested(values), paths=paths, labels=labels)
    more = request.top_k - 1 if request.top_k else None if request.multi_label else 1  # what was asked for
    view = timelines(more) if any(names_a_video(p) for p in paths) else classifications(more)
    shown = open_preview(values["preview"], values["fmt"])
    out_format = "table" if shown else choose_format(view, values["fmt"], sys.stdout)
    start = time.perf_counter()
    bars = not quiet and shown is None  # pictures are drawn as results come: no bar redrawn among them
    progress = Progress("classifying", enabled=bars)
    prompts = Progress("embedding label prompts", enabled=bars, unit="prompts")
    note = None if quiet else lambda message: (progress.close(), say(message))  # (the towers' export)
    engine = choose_engine("classify", None, model, values["server"], run=run, on_note=note)
    try:
        result = engine.classify(request, progress.update, prompts.update)
        prompts.close()
        warn_all(result.warnings)
        renderer, done, failed = Renderer(view, out_format, preview=shown), [], 0
        for item in result.items:
            if isinstance(item, FileFailure):
                failed += 1
                warn(f"skipped {item.path}: {item.reason}")
            else:
                done.append(item)
                renderer.write(item)
    finally:
        prompts.close()
        progress.close()
    renderer.close()
    videos = {d.path for d in done if isinstance(d, Segment) or names_a_video(d.path)}
    images = len([d for d in done if d.path not in videos])
    summary("classified", images, failed, time.perf_counter() - start, quiet, len(videos))
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
    return 0


COMMAND = Command(
    "classify",
    short="Classify images (videos: a timeline) against labels.",
    doc=classify.__doc__ or "",
    examples=(
        "mmcli classify photo.jpg --labels cat dog",
        "mmcli classify ./photos --labels-file labels.txt --templates imagenet -f csv > out.csv",
        "find . -name '*.jpg' -print0 | mmcli classify - -z --labels indoor outdoor | jq .labels[0]",
        'mmcli classify talk.mp4 --labels "a person speaking" slides "an audience"   (a timeline of segments)',
        "mmcli classify ./photos --labels cat dog --preview      (each picture beside its labels)",
    ),
    options=OPTIONS,
    body=classify,
    multi_value=True,
)
