"""`mmcli ocr`: the text in pictures (the OCR engine of the ``ocr`` extra), one record per picture.
``COMMAND`` declares its options once; ``ocr`` is its body (no Typer here).

The display of text read from pictures is all here (``visible``, ``OCR_VIEW``): a table on a terminal shows
control and format characters as escapes; JSON and the other machine formats keep the text as read.
"""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from typing import TYPE_CHECKING

from mmcli.cli.console import summary, warn
from mmcli.cli.declare import (
    INPUT_OPTIONS,
    NULL,
    QUIET,
    RUN_OPTIONS,
    Command,
    InputChoice,
    Option,
    RunChoice,
    Values,
    choice,
    format_option,
)
from mmcli.cli.output import View
from mmcli.errors import NoImagesError

if TYPE_CHECKING:
    from mmcli.results import PictureText

# control, format (bidi overrides), line and paragraph separators, lone surrogates (bytes that were not UTF-8)
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def visible(text: str) -> str:
    """``text`` with its control and format characters shown as escapes (``\\n``, ``\\x1b``, ``\\u202e``), so
    what a picture says cannot move the cursor, recolour or reorder a terminal. (The one place for it here:
    S6's ``mmcli.errors.shown`` for every name from outside gives the same escapes and replaces it.)"""
    if all(unicodedata.category(c) not in _HIDDEN for c in text):
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _rows(p: PictureText) -> list[tuple[str, str, str]]:
    """A picture's table rows: its path beside its first line, one row per line; ``-`` for no text."""
    shown = visible(p.path)
    if not p.lines:
        return [(shown, "-", "")]
    return [(shown if i == 0 else "", visible(line.text), f"{line.score:.2f}") for i, line in enumerate(p.lines)]


def _box(points: tuple[tuple[int, int], ...]) -> str:
    return " ".join(f"{x},{y}" for x, y in points)


OCR_VIEW = View(
    columns=("path", "text", "score"),
    table_rows=_rows,
    csv_header=("path", "line", "text", "score", "box"),
    csv_rows=lambda p: (
        [(p.path, i + 1, ln.text, f"{ln.score:.4f}", _box(ln.box)) for i, ln in enumerate(p.lines)]
        or [(p.path, "", "", "", "")]
    ),
    paths=lambda p: [p.path] if p.lines else [],  # the pictures with text
    right=frozenset({"score"}),
    path_column="path",
)
OPTIONS = (
    Option(
        "workers",
        ("--workers",),
        "Processes reading pictures (default: $MMCLI_WORKERS, else 1 for a few pictures, else the CPU count; 0 or "
        "1 reads in this process).",
    ),
    RUN_OPTIONS[2],  # --max-pixels
    format_option(OCR_VIEW),
    NULL,
    QUIET,
    *(o for o in INPUT_OPTIONS if o.name != "old_null"),  # (-0 is this command's NUL-separated output)
)


def ocr(values: Values) -> int:
    """Read the text in pictures: each picture's lines, their confidence and where they are.

    Reads Chinese, Japanese, and Latin letters with accents (English and other Latin-script languages),
    digits and common symbols; other scripts are not read. Needs the OCR extra: pip install -e '.[ocr]'
    in a clone, pip install 'mmcli-clip[ocr]' otherwise. A file that cannot be read is reported on stderr
    and the others go on.
    """
    from mmcli.cli.output import Progress, Renderer, choose_format
    from mmcli.config import settings
    from mmcli.media.ocr.reader import read_all
    from mmcli.results import FileFailure

    source, run = choice(InputChoice, values), choice(RunChoice, values)
    nul, quiet = values["null"], values["quiet"]
    paths = source.paths()
    out_format = choose_format(OCR_VIEW, values["fmt"], sys.stdout, nul)
    procs = run.workers if run.workers is not None else settings().workers
    if procs is None:
        procs = 1 if len(paths) < MANY else os.cpu_count() or 1
    start = time.perf_counter()
    progress = Progress("reading text", enabled=not quiet)
    renderer, done, failed = Renderer(OCR_VIEW, out_format, nul=nul), 0, 0
    try:
        for k, item in enumerate(read_all(paths, run.pixel_limit, workers=procs), 1):
            if isinstance(item, FileFailure):
                failed += 1
                warn(f"skipped {visible(item.path)}: {visible(item.reason)}")
            else:
                done += 1
                renderer.write(item)
            progress.update(k, len(paths))
    finally:
        progress.close()
    renderer.close()
    summary("read", done, failed, time.perf_counter() - start, quiet)
    if not done:
        raise NoImagesError(f"no picture could be read ({failed} failed)")
    return 0


COMMAND = Command(
    "ocr",
    short="Read the text in pictures (OCR).",
    doc=ocr.__doc__ or "",
    examples=(
        "mmcli ocr receipt.jpg",
        "mmcli ocr ./photos | jq -r 'select(.text != \"\") | .path'",
        "find . -name '*.png' -print0 | mmcli ocr - -z -f csv > text.csv",
        "mmcli ocr ./photos -f paths      (only the pictures that have text)",
    ),
    options=OPTIONS,
    body=ocr,
)


# Pictures from which reading processes are spawned. 2 processes read 52 pictures for the CPU time 1 did
# (their start and model load included: scripts/eval_ocr.py --workers 2), so they pay from a few pictures;
# 8 keeps a handful in this process, where the first answer comes soonest (not timed on a quiet machine).
MANY = 8
