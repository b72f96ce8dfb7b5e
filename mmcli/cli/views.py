"""How each kind of result looks in each output format (see ``mmcli.cli.output.View``)."""

from __future__ import annotations

from dataclasses import asdict

from mmcli.cli.output import View
from mmcli.media.taken import short


def _when(seconds: float | None) -> str:
    if seconds is None:  # an image: no need to import the video module (and numpy) to say nothing
        return ""
    from mmcli.media.video import format_time

    return format_time(seconds)


def _url(path: str, seconds: float | None) -> str:
    from mmcli.media.video import media_url

    return media_url(path, seconds)


HITS = View(
    columns=("rank", "score", "path", "time", "taken"),
    table_rows=lambda h: [(h.rank, f"{h.score:.4f}", h.path, _when(h.time), short(h.taken))],
    csv_header=("rank", "path", "time", "score", "taken", "taken_source"),  # the order of the JSON fields
    csv_rows=lambda h: [
        (
            h.rank,
            h.path,
            "" if h.time is None else f"{h.time:.3f}",
            f"{h.score:.6f}",
            h.taken or "",
            h.taken_source or "",
        )
    ],
    paths=lambda h: [h.path],
    urls=lambda h: [_url(h.path, h.time)],
    right=frozenset({"time"}),
    dim=frozenset({"taken"}),
)


def classifications(more: int | None = 1) -> View:
    """Classifications: the best label, and ``more`` of the others (None: every one kept) in the table."""
    return View(
        columns=("path", "label", "score", "runner-up" if more == 1 else "others"),
        table_rows=lambda c: [
            (
                c.path,
                c.labels[0].label if c.labels else "-",
                f"{c.labels[0].score:.3f}" if c.labels else "-",
                ", ".join(f"{ls.label} {ls.score:.3f}" for ls in c.labels[1 : None if more is None else 1 + more]),
            )
        ],
        csv_header=("path", "label", "score"),
        csv_rows=lambda c: [(c.path, ls.label, f"{ls.score:.6f}") for ls in c.labels],
        right=frozenset({"score"}),
        dim=frozenset({"runner-up", "others"}),
    )


CLASSIFICATIONS = classifications()


def timelines(more: int | None = 1) -> View:
    """Classifications of images and timelines of videos (``Segment``s) in one listing."""
    from mmcli.results import Segment

    images = classifications(more)

    def rows(r: object) -> list[tuple[object, ...]]:
        if isinstance(r, Segment):
            return [(r.path, f"{_when(r.start)} - {_when(r.end)}", r.label, f"{r.score:.3f}", "")]
        return [(row[0], "", *row[1:]) for row in images.table_rows(r)]

    def csv_rows(r: object) -> list[tuple[object, ...]]:
        if isinstance(r, Segment):
            return [(r.path, f"{r.start:.3f}", f"{r.end:.3f}", r.label, f"{r.score:.6f}")]
        assert images.csv_rows is not None
        return [(p, "", "", label, sc) for p, label, sc in images.csv_rows(r)]

    return View(
        columns=(images.columns[0], "time", *images.columns[1:]),
        table_rows=rows,
        csv_header=("path", "start", "end", "label", "score"),
        csv_rows=csv_rows,
        right=images.right,
        dim=images.dim,
    )


DUPES = View(
    columns=("group", "size", "min_score", "paths"),
    table_rows=lambda g: [(g.group, len(g.paths), f"{g.min_score:.3f}", "\n".join(g.paths))],
    paths=lambda g: list(g.paths),
    grouped=True,
)

CLUSTERS = View(
    columns=("cluster", "size", "labels", "samples"),
    table_rows=lambda c: [
        (c.cluster, c.size, ", ".join(f"{ls.label} {ls.score:.2f}" for ls in c.labels), "\n".join(c.samples))
    ],
    paths=lambda c: list(c.samples),  # -f paths / -0: each cluster's samples, a blank entry between clusters
    grouped=True,
)

INDEXES = View(
    columns=("name", "roots", "model", "images", "size", "updated"),
    table_rows=lambda e: [
        (
            e.name,
            "\n".join(e.roots) or "-",
            e.model if e.state == "ok" else e.state,
            f"{e.images}" + (f" (+{e.missing} missing)" if e.missing else ""),
            f"{e.size_bytes / 1e6:.1f} MB",
            e.updated,
        )
    ],
    csv_header=("name", "folder", "roots", "model", "images", "missing", "size_bytes", "updated", "state"),
    csv_rows=lambda e: [
        (e.name, e.folder, ";".join(e.roots), e.model, e.images, e.missing, e.size_bytes, e.updated, e.state)
    ],
    paths=lambda e: [e.folder],
)

INFO = View(
    columns=("key", "value"),
    table_rows=lambda info: [(k, "-" if v is None else v) for k, v in asdict(info).items()],
    single=True,
)

MODELS = View(
    columns=("name", "spec", "local", "description"),
    table_rows=lambda m: [(m.name, m.spec, "yes" if m.local else "no", m.description)],
    csv_header=("name", "spec", "local", "description"),
    csv_rows=lambda m: [(m.name, m.spec, m.local, m.description)],
)

HELPERS = View(
    columns=("kind", "target", "model", "pid", "up", "idle", "served"),
    table_rows=lambda h: [
        (
            h.kind,
            h.target or "(default model)",
            h.model,
            h.pid,
            f"{h.up_s:.0f} s",
            f"{h.idle_s:.0f} of {h.idle_limit_s:.0f} s",
            h.searches + h.classifications,
        )
    ],
    csv_header=("kind", "target", "model", "pid", "up_s", "idle_s", "idle_limit_s", "searches", "classifications"),
    csv_rows=lambda h: [
        (h.kind, h.target, h.model, h.pid, h.up_s, h.idle_s, h.idle_limit_s, h.searches, h.classifications)
    ],
    paths=lambda h: [h.socket],
)
