"""Renderers: table on a terminal, JSON Lines when piped, json / csv / tsv on request.

Data goes to stdout; progress, warnings and errors go to stderr. Streaming formats (jsonl, csv,
tsv) write each record as soon as it is ready, so a pipeline sees results while the run goes on.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import IO, Any

from mmcli.errors import UsageError
from mmcli.images import stdout_safe
from mmcli.results import Classification, Hit

FORMATS = ("table", "json", "jsonl", "csv", "tsv")


def resolve_format(fmt: str | None, stream: IO[str]) -> str:
    if fmt is None:
        return "table" if _isatty(stream) else "jsonl"
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    return fmt


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
        return round(value, 6)
    return value


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(_clean(record), ensure_ascii=False)


class ClassificationWriter:
    """Writes classifications in one format; call ``write`` per image, then ``close``."""

    def __init__(self, fmt: str, out: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.out = out or sys.stdout
        self.rows: list[Classification] = []
        self._csv = None
        if fmt in ("csv", "tsv"):
            self._csv = csv.writer(self.out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
            self._csv.writerow(["path", "label", "score"])

    def write(self, item: Classification) -> None:
        if self.fmt == "jsonl":
            self.out.write(json_line(asdict(item)) + "\n")
            self.out.flush()
        elif self._csv is not None:
            for ls in item.labels:
                self._csv.writerow([stdout_safe(item.path), stdout_safe(ls.label), f"{ls.score:.6f}"])
            self.out.flush()
        else:
            self.rows.append(item)

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps([_clean(asdict(r)) for r in self.rows], ensure_ascii=False, indent=2) + "\n")
        elif self.fmt == "table":
            render_classification_table(self.rows, self.out)


def render_classification_table(rows: Iterable[Classification], out: IO[str], relative_to: Any = None) -> None:
    import os

    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("path", overflow="fold")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("runner-up", style="dim")
    for row in rows:
        best = row.labels[0] if row.labels else None
        others = ", ".join(f"{ls.label} {ls.score:.3f}" for ls in row.labels[1:2])
        shown = os.path.relpath(row.path, relative_to) if relative_to is not None else row.path
        table.add_row(stdout_safe(shown), best.label if best else "-", f"{best.score:.3f}" if best else "-", others)
    Console(file=out, soft_wrap=False).print(table)


def render_records_table(records: list[dict[str, Any]], columns: list[str], out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for rec in records:
        table.add_row(*(stdout_safe(str(rec.get(c, ""))) for c in columns))
    Console(file=out, soft_wrap=False).print(table)


class Progress:
    """A progress bar on stderr when stderr is a terminal; silent otherwise."""

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self._bar = None
        if enabled and total > 1 and _isatty(sys.stderr):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress
            from rich.text import Text

            class RateColumn(ProgressColumn):
                def render(self, task: Any) -> Text:
                    return Text(f"{task.speed:.1f} img/s" if task.speed else "- img/s")

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._task = self._bar.add_task(description, total=total)
            self._bar.start()

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def render_hits(hits: list[Hit], fmt: str | None, out: IO[str], nul: bool = False) -> None:
    """Search results: table, json, jsonl, csv, tsv, or paths (newline or NUL separated)."""
    fmt = fmt or ("table" if _isatty(out) else "jsonl")
    if fmt == "paths":
        sep = "\0" if nul else "\n"
        for hit in hits:
            if nul and hasattr(out, "buffer"):
                out.flush()
                out.buffer.write(os.fsencode(hit.path) + b"\0")
            else:
                out.write(stdout_safe(hit.path) + sep)
        out.flush()
    elif fmt == "jsonl":
        for hit in hits:
            out.write(json_line(asdict(hit)) + "\n")
    elif fmt == "json":
        out.write(json.dumps([_clean(asdict(h)) for h in hits], ensure_ascii=False, indent=2) + "\n")
    elif fmt in ("csv", "tsv"):
        w = csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        w.writerow(["rank", "score", "path"])
        for hit in hits:
            w.writerow([hit.rank, f"{hit.score:.6f}", stdout_safe(hit.path)])
    else:
        render_records_table(
            [{"rank": h.rank, "score": f"{h.score:.4f}", "path": h.path} for h in hits], ["rank", "score", "path"], out
        )
