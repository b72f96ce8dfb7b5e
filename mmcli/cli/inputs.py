"""What commands read besides images: lists of paths (arguments, stdin), labels, prompt templates."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from mmcli.errors import NoImagesError, UsageError
from mmcli.queries import IMAGE_SUFFIXES

MAX_PATH_BYTES = 64 * 1024  # far above any file system's limit on a path
MAX_BLANK_BYTES = 64 * 1024 * 1024  # of separators and blanks read without a single path
MAX_LABELS_FILE = 64 * 1024 * 1024
CHUNK = 1 << 20


def read_path_list(stream: BinaryIO, nul: bool) -> list[str]:
    """Paths from a stream: one per line, or NUL-separated; any bytes round-trip (os.fsdecode).

    Read in chunks with bounds, so ``< /dev/zero`` is a clear error, not all of memory.
    """
    sep = b"\0" if nul else b"\n"
    paths: list[str] = []
    rest = b""
    blank = 0
    while chunk := stream.read(CHUNK):
        *whole, rest = (rest + chunk).split(sep)
        for part in whole:
            part = part if nul else part.rstrip(b"\r")
            if part.strip():
                paths.append(os.fsdecode(part))
                blank = 0
            else:
                blank += len(part) + 1
        if len(rest) > MAX_PATH_BYTES:
            raise UsageError(
                f"standard input holds a {'NUL-separated entry' if nul else 'line'} over {MAX_PATH_BYTES} bytes: "
                "not a list of paths",
                hint="-z reads NUL-separated paths (find -print0); without it, one path per line",
            )
        if blank > MAX_BLANK_BYTES:
            raise UsageError(f"standard input holds over {MAX_BLANK_BYTES} bytes without a path: not a list of paths")
    if rest.strip() and (nul or rest.rstrip(b"\r").strip()):
        paths.append(os.fsdecode(rest if nul else rest.rstrip(b"\r")))
    return paths


def gather_paths(
    inputs: Sequence[str] | None, stdin: BinaryIO | None, nul: bool, include_hidden: bool, videos: bool = False
) -> list[str]:
    """Image files named by ``inputs``: files, folders (walked; ``videos``: for videos too), and ``-`` for
    the paths on ``stdin``."""
    from mmcli.media.images import expand_inputs

    if not inputs:
        raise UsageError("no inputs given", hint="pass image files or folders, or - to read paths from stdin")
    stray = next((i for i in inputs if i.startswith("-") and i != "-" and not os.path.exists(i)), None)
    if stray is not None:
        raise UsageError(
            f"{stray!r} looks like an option, but it came after '--', where everything is an input",
            hint="put options before --",
        )
    if inputs.count("-") > 1:
        raise UsageError("'-' (stdin) can be given only once")
    items: list[str] = []
    for item in inputs:
        if item == "-":
            if stdin is None:
                raise UsageError("'-' given but there is no standard input")
            items.extend(read_path_list(stdin, nul))
        else:
            items.append(item)
    paths = [os.fsdecode(p) for p in expand_inputs(items, include_hidden, videos)]
    if not paths:
        raise NoImagesError(
            "no image files found in the inputs",
            hint="image types: jpg, png, webp, gif, bmp, tiff (heic with pillow-heif)",
        )
    return paths


def check_inputs_given(inputs: Sequence[str] | None, labels: Sequence[str] | None) -> None:
    """No inputs, but a label names a file: it was surely meant as an input (``--labels`` takes every
    value up to the next option)."""
    if inputs:
        return
    taken = [lab for lab in labels or () if os.path.exists(lab) or lab.lower().endswith(IMAGE_SUFFIXES)]
    if taken:
        raise UsageError(
            f"no inputs given: {taken[0]!r} was taken as a label (--labels takes every value up to the next option)",
            hint=f"put inputs before --labels, or after --: mmcli classify {taken[0]} --labels ...",
        )


def read_labels_file(path: Path) -> list[str]:
    """One label per line (UTF-8, a BOM and CRLF are fine); blank lines and ``#`` comments skipped."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LABELS_FILE + 1)
        if len(raw) > MAX_LABELS_FILE:
            raise UsageError(f"labels file {path} is over {MAX_LABELS_FILE // (1024 * 1024)} MB: not a list of labels")
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels file {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def collect_labels(labels: Sequence[str] | None, labels_file: Path | None) -> list[str]:
    """``--labels`` values (comma lists split) and ``--labels-file`` lines, in order."""
    found: list[str] = []
    for value in labels or []:
        found.extend(part for part in value.split(","))
    if labels_file is not None:
        found.extend(read_labels_file(labels_file))
    if not any(label.strip() for label in found):
        raise UsageError("no labels given", hint="e.g. --labels cat dog, --labels cat,dog or --labels-file FILE")
    return found


def choose_templates(template: Sequence[str] | None, templates: str | None) -> list[str]:
    """``--template`` values, or the ``--templates`` set by name (default: "default")."""
    from mmcli.config import templates_named
    from mmcli.engine.classify import check_templates

    if template and templates:
        raise UsageError("give --template or --templates, not both")
    return check_templates(list(template) if template else templates_named(templates or "default"))
