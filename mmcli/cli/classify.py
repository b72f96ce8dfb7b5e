"""`mmcli classify`: images (videos: a timeline) in, labels out.

``COMMAND`` declares its options once; ``classify`` is its body, run alike by Typer and by the fast path
(``mmcli.cli.fast``). No Typer here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mmcli.cli.console import say, warn
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

if TYPE_CHECKING:
    from mmcli.engine.keywords import XmpOptions
    from mmcli.xmp.keywords import SidecarChange

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
    Option(
        "write_xmp",
        ("--write-xmp",),
        "Write the labels kept as keywords into each picture's XMP sidecar (README: photo managers).",
        kind="flag",
    ),
    Option(
        "xmp_style",
        ("--xmp-style",),
        "Sidecar names: darktable (photo.jpg.xmp, digiKam too) or adobe (photo.xmp).",
        "darktable",
    ),
    Option("xmp_prefix", ("--xmp-prefix",), "Where the keywords hang in lr:hierarchicalSubject.", "mmcli|label"),
    Option(
        "replace",
        ("--replace",),
        "With --write-xmp: take out our keywords (under the prefix) this run does not give.",
        kind="flag",
    ),
    Option(
        "dry_run",
        ("--dry-run",),
        "With --write-xmp: say on stderr what each sidecar would get; write none.",
        kind="flag",
    ),
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
    from mmcli.cli.console import summary, warn_all
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
    xmp = xmp_options(*(values[k] for k in ("write_xmp", "xmp_style", "xmp_prefix", "replace", "dry_run")))
    paths = source.paths(videos=True)
    labels_file = values["labels_file"]
    labels = collect_labels(values["labels"], None if labels_file is None else Path(labels_file))
    request = classify_request(**COMMAND.requested(values), paths=paths, labels=labels)
    if xmp is not None:  # (sidecars are written here, in the user's process, whichever engine answers)
        from mmcli.engine.keywords import SidecarWriter, check_labels

        check_labels(request.labels)
        sidecars = SidecarWriter(request, xmp)
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
    videos = {d.path for d in done if isinstance(d, Segment) or names_a_video(d.path)}
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
    return 0


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
        "mmcli classify ./photos --labels beach city --top-k 1 --write-xmp   (keywords into photo.jpg.xmp sidecars)",
    ),
    options=OPTIONS,
    body=classify,
    multi_value=True,
)
