"""One renderer for every command: table on a terminal, JSON Lines when piped, json / csv / tsv /
paths on request. A ``View`` says how one kind of record looks in each format it offers.

Data goes to stdout; progress, warnings and errors go to stderr. Streaming formats (jsonl, csv,
tsv, paths) write each record as soon as it is ready, so a pipeline sees results while the run goes
on; table and json need every record and write at the end.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

from mmcli.cli.console import stdout_safe
from mmcli.errors import UsageError

if TYPE_CHECKING:
    from mmcli.cli.preview import Previewer

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "paths", "urls")


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return stdout_safe(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):  # NaN is not JSON: never written (a damaged vector; issue 28.5)
            from mmcli.errors import NotANumber

            raise NotANumber("a result holds a value that is not a number (a damaged vector)")
        return round(value, 6)
    return value


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(_clean(record), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class View:
    """How one kind of record (a frozen dataclass) is shown. JSON always comes from ``asdict``."""

    columns: tuple[str, ...]
    table_rows: Callable[[Any], Iterable[Sequence[Any]]]  # the table rows (cells) of one record
    csv_header: tuple[str, ...] = ()  # empty: no csv / tsv
    csv_rows: Callable[[Any], Iterable[Sequence[Any]]] | None = None
    paths: Callable[[Any], Sequence[str]] | None = None  # None: no paths format
    urls: Callable[[Any], Sequence[str]] | None = None  # file:// URLs for players (#t= for a moment); None: none
    grouped: bool = False  # paths: an empty entry after each record's paths (groups of files)
    single: bool = False  # json: one object, not a list of them
    right: frozenset[str] = field(default_factory=frozenset)  # right-aligned table columns
    dim: frozenset[str] = field(default_factory=frozenset)  # de-emphasised table columns
    as_dict: Callable[[Any], dict[str, Any]] = asdict  # a record as JSON (a field left out when not asked for)
    previews: Callable[[Any], Sequence[Any]] | None = None  # --preview: a record's pictures (cli.preview.Entry)
    path_column: str | None = None  # the table column of paths: its folders are shortened to fit, never a name
    optional: frozenset[str] = field(default_factory=frozenset)  # table columns left out when empty throughout
    nowrap: frozenset[str] = field(default_factory=frozenset)  # table columns never wrapped (as the right ones)

    @property
    def formats(self) -> tuple[str, ...]:
        skip = {"csv", "tsv"} if self.csv_rows is None else set()
        skip |= {"paths"} if self.paths is None else set()
        skip |= {"urls"} if self.urls is None else set()
        return tuple(f for f in FORMATS if f not in skip)


def choose_format(view: View, fmt: str | None, out: IO[str], nul: bool = False) -> str:
    """The format to write: as asked, else table on a terminal and jsonl in a pipe. ``nul`` means paths."""
    if nul:
        if view.paths is None:
            raise UsageError("-0 gives NUL-separated paths, which this command does not print")
        if fmt not in (None, "paths"):
            raise UsageError(f"-0 gives NUL-separated paths; it cannot be combined with --format {fmt}")
        return "paths"
    if fmt is None:
        return "table" if _isatty(out) else "jsonl"
    if fmt not in view.formats:
        raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(view.formats)}")
    return fmt


class Renderer:
    """Writes records of one view in one format: ``write`` each record, then ``close``."""

    def __init__(
        self, view: View, fmt: str, out: IO[str] | None = None, nul: bool = False, preview: Previewer | None = None
    ) -> None:
        self.view, self.fmt, self.nul = view, fmt, nul
        self.out = out or sys.stdout
        self.preview = preview if fmt == "table" and view.previews is not None else None  # pictures, not a table
        self.held: list[Any] = []
        self._csv: Any = None
        if fmt in ("csv", "tsv"):
            self._csv = csv.writer(self.out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
            self._csv.writerow(view.csv_header)

    def write(self, record: Any) -> None:
        if self.fmt == "jsonl":
            self.out.write(json_line(self.view.as_dict(record)) + "\n")
        elif self._csv is not None:
            assert self.view.csv_rows is not None
            for values in self.view.csv_rows(record):
                self._csv.writerow([stdout_safe(v) if isinstance(v, str) else v for v in values])
        elif self.fmt == "urls":
            assert self.view.urls is not None
            for url in self.view.urls(record):
                self.out.write(stdout_safe(url) + "\n")
        elif self.fmt == "paths":
            assert self.view.paths is not None
            for path in self.view.paths(record):
                self._path(path)
            if self.view.grouped:
                self._path(None)
        elif self.preview is not None:
            assert self.view.previews is not None
            self.preview.show(self.view.previews(record))  # each record as soon as it is ready
        else:
            self.held.append(record)
            return
        self.out.flush()

    def _path(self, path: str | None) -> None:
        if self.nul and hasattr(self.out, "buffer"):
            self.out.flush()
            self.out.buffer.write((os.fsencode(path) if path else b"") + b"\0")
        else:
            self.out.write(("" if path is None else stdout_safe(path)) + ("\0" if self.nul else "\n"))

    def close(self) -> None:
        if self.fmt == "json":
            data = [_clean(self.view.as_dict(r)) for r in self.held]
            shown = data[0] if self.view.single and len(data) == 1 else data
            self.out.write(json.dumps(shown, ensure_ascii=False, indent=2, allow_nan=False) + "\n")
        elif self.fmt == "table" and self.preview is None:
            self._table()
        self.out.flush()

    def _table(self) -> None:
        from rich.console import Console
        from rich.table import Table

        view = self.view
        rows = [[stdout_safe(str(cell)) for cell in cells] for r in self.held for cells in view.table_rows(r)]
        keep = [k for k, col in enumerate(view.columns) if col not in view.optional or any(row[k] for row in rows)]
        columns = [view.columns[k] for k in keep]
        rows = [[row[k] for k in keep] for row in rows]
        console = Console(file=self.out, soft_wrap=False)
        whole = {k for k, col in enumerate(columns) if col in view.right or col in view.nowrap}
        path_k = columns.index(view.path_column) if view.path_column in columns else None
        widths = layout(console.width, columns, rows, whole, path_k)
        if path_k is not None:
            for row in rows:
                row[path_k] = "\n".join(shorten_path(line, widths[path_k]) for line in row[path_k].split("\n"))
        table = Table(show_edge=False, header_style="bold")
        for k, col in enumerate(columns):
            table.add_column(
                col,
                overflow="fold",
                justify="right" if col in view.right else "left",
                style="dim" if col in view.dim else None,
                no_wrap=k in whole,
                width=widths[k],
            )
        for row in rows:
            table.add_row(*row)
        console.print(table)


PATH_ROOM_MIN = 24  # a path column is not squeezed below this while the other columns can wrap instead
FLEX_MIN = 10  # what a column that may wrap keeps at least before the path column's file names are cut
WRAP_MIN = 6  # the narrowest column


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes (a wide character takes two)."""
    from rich.cells import cell_len

    return cell_len(text)


def _natural(columns: Sequence[str], rows: Sequence[Sequence[str]], k: int) -> int:
    """The width column ``k`` takes unwrapped: its header's or its longest line's."""
    return max([_cells(columns[k])] + [_cells(line) for row in rows for line in row[k].split("\n")])


def layout(
    width: int, columns: Sequence[str], rows: Sequence[Sequence[str]], whole: set[int], path_k: int | None
) -> list[int]:
    """Column widths for a table ``width`` wide (rich, no edges: a space either side of each cell, a rule
    between columns). Columns in ``whole`` (numbers, times, dates) keep their natural width; the path
    column gets what the others leave, or room for its longest file name, or ``PATH_ROOM_MIN``, as far
    as the other columns can wrap (its folders are then shortened, see ``shorten_path``); the rest
    share what is left, the narrow ones whole."""
    n = len(columns)
    natural = [_natural(columns, rows, k) for k in range(n)]
    budget = width - 3 * n + 1
    widths = list(natural)
    if sum(natural) <= budget:
        return widths
    flexible = sorted((k for k in range(n) if k not in whole and k != path_k), key=lambda k: natural[k])
    if path_k is not None:
        others = sum(w for k, w in enumerate(natural) if k != path_k)
        most = budget - sum(natural[k] for k in whole) - sum(min(natural[k], FLEX_MIN) for k in flexible)
        lines = [line for row in rows for line in row[path_k].split("\n")]
        names = max((_cells(line.rpartition("/")[2]) + 2 for line in lines), default=0)
        room = max(budget - others, min(names, most), min(PATH_ROOM_MIN, most))  # whole file names, if it can
        widths[path_k] = max(WRAP_MIN, min(natural[path_k], room))
    left = budget - sum(widths[k] for k in range(n) if k not in flexible)
    for done, k in enumerate(flexible):
        widths[k] = min(natural[k], max(WRAP_MIN, left // (len(flexible) - done)))
        left -= widths[k]
    return widths


def shorten_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters where it can be: the folders nearest the file kept, the
    rest shown as "…"; the file name always whole (a name longer than ``width`` is left to wrap)."""
    if _cells(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if not sep:
        return path
    kept = name
    for part in reversed(head.split("/")):
        if _cells(part) + 1 + _cells(kept) + 2 > width:
            break
        kept = f"{part}/{kept}"
    return "…/" + kept


def render(
    records: Iterable[Any],
    view: View,
    fmt: str,
    out: IO[str] | None = None,
    nul: bool = False,
    preview: Previewer | None = None,
) -> None:
    renderer = Renderer(view, fmt, out, nul, preview)
    for record in records:
        renderer.write(record)
    renderer.close()


class Progress:
    """A progress bar on stderr when stderr is a terminal; silent otherwise. It appears on the first
    ``update`` (which gives the total), so work that turns out to need none shows none."""

    def __init__(self, description: str, enabled: bool = True, unit: str = "img") -> None:
        self.description, self.unit = description, unit
        self.enabled = enabled and _isatty(sys.stderr)
        self._bar: Any = None
        self._task: Any = None

    def update(self, done: int, total: int) -> None:
        if self._bar is None and self.enabled and total > 1:
            self._bar = _rich_bar(self.unit)
            self._task = self._bar.add_task(self.description, total=total)
            self._bar.start()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _rich_bar(unit: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:.1f} {unit}/s" if task.speed else f"- {unit}/s")

    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
