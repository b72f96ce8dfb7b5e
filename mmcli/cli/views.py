"""How each kind of result looks in each output format (see ``mmcli.output.View``)."""

from __future__ import annotations

from dataclasses import asdict

from mmcli.output import View
from mmcli.taken import short

HITS = View(
    columns=("rank", "score", "path", "taken"),
    table_rows=lambda h: [(h.rank, f"{h.score:.4f}", h.path, short(h.taken))],
    csv_header=("rank", "path", "score", "taken", "taken_source"),  # the order of the JSON fields
    csv_rows=lambda h: [(h.rank, h.path, f"{h.score:.6f}", h.taken or "", h.taken_source or "")],
    paths=lambda h: [h.path],
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
