"""How each kind of result looks in each output format (see ``mmcli.cli.output.View``)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from mmcli.cli.console import counted
from mmcli.cli.output import View
from mmcli.cli.preview import Entry
from mmcli.media.taken import short

if TYPE_CHECKING:
    from mmcli.results import Classification, Cluster, DupeGroup, Hit, IndexInfo


def _when(seconds: float | None) -> str:
    if seconds is None:  # an image: no need to import the video module (and numpy) to say nothing
        return ""
    from mmcli.media.video import format_time

    return format_time(seconds)


def _url(path: str, seconds: float | None) -> str:
    from mmcli.media.video import media_url

    return media_url(path, seconds)


def _name(path: str) -> str:
    import os

    return os.path.basename(path) or path


def _hit_entry(h: Hit) -> list[Entry]:
    first = f"#{h.rank}  {h.score:.4f}  {_name(h.path)}"
    extra = (f"at {_when(h.time)}",) if h.time is not None else ()
    taken = (f"taken {short(h.taken)}",) if h.taken else ()
    return [Entry(h.path, (first, h.path, *extra, *taken), h.time)]


def _classification_entry(c: Classification, more: int | None) -> Entry:
    if not c.labels:
        return Entry(c.path, (_name(c.path), c.path))
    best, others = c.labels[0], c.labels[1 : None if more is None else 1 + more]
    rest = (", ".join(f"{ls.label} {ls.score:.3f}" for ls in others),) if others else ()
    return Entry(c.path, (f"{best.label} {best.score:.3f}  {_name(c.path)}", c.path, *rest))


def _group_entries(paths: tuple[str, ...], heading: str) -> list[Entry]:
    """A group's pictures (near-duplicates, a cluster's samples), the heading before the first."""
    return [Entry(p, (_name(p), p), heading=None if i else heading) for i, p in enumerate(paths)]


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
    previews=_hit_entry,
    path_column="path",
    optional=frozenset({"time", "taken"}),  # no video among the hits, no dates in the index
    nowrap=frozenset({"taken"}),
    as_dict=lambda h: {k: v for k, v in asdict(h).items() if k != "explain" or v is not None},
)


def _explained(h: object) -> str:
    """``a red car 0.31 · 2×sunset 0.12 · −people 0.05``: each term's cosine with the hit (--explain)."""
    import os

    parts = []
    for t in getattr(h, "explain", None) or ():
        name = os.path.basename(t.term) if os.path.isabs(t.term) else t.term
        name = name if len(name) <= 24 else name[:23] + "\u2026"
        sign = "\u2212" if t.weight < 0 else ""
        weight = "" if abs(t.weight) == 1 else f"{abs(t.weight):g}\u00d7"
        parts.append(f"{sign}{weight}{name} {t.cosine:.2f}")
    return " \u00b7 ".join(parts)


HITS_EXPLAINED = replace(
    HITS,
    columns=(*HITS.columns, "explain"),
    table_rows=lambda h: [(*row, _explained(h)) for row in HITS.table_rows(h)],
    dim=HITS.dim | {"explain"},
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
        # an image with no label kept (none above the --multi-label threshold) still gets its row, label empty
        csv_rows=lambda c: [(c.path, ls.label, f"{ls.score:.6f}") for ls in c.labels] or [(c.path, "", "")],
        right=frozenset({"score"}),
        dim=frozenset({"runner-up", "others"}),
        previews=lambda c: [_classification_entry(c, more)],
        path_column="path",
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

    def previews(r: object) -> list[Entry]:
        if isinstance(r, Segment):
            head = f"{r.label} {r.score:.3f}  {_when(r.start)} - {_when(r.end)}"
            return [Entry(r.path, (head, r.path), r.start)]
        assert images.previews is not None
        return list(images.previews(r))

    return View(
        columns=(images.columns[0], "time", *images.columns[1:]),
        table_rows=rows,
        csv_header=("path", "start", "end", "label", "score"),
        csv_rows=csv_rows,
        right=images.right,
        dim=images.dim,
        previews=previews,
        path_column="path",
        nowrap=frozenset({"time"}),
    )


def _moments(g: DupeGroup) -> list[tuple[str, float | None]]:
    """A group's paths with the time of each video's moment that matched (None for an image)."""
    return list(zip(g.paths, g.times or (None,) * len(g.paths)))


DUPES = View(
    columns=("group", "size", "min_score", "paths"),
    table_rows=lambda g: [
        (
            g.group,
            len(g.paths),
            f"{g.min_score:.3f}",
            "\n".join(p if t is None else f"{p} ({_when(t)})" for p, t in _moments(g)),
        )
    ],
    csv_header=("group", "path", "time", "min_score"),
    csv_rows=lambda g: [(g.group, p, "" if t is None else f"{t:.3f}", f"{g.min_score:.6f}") for p, t in _moments(g)],
    paths=lambda g: list(g.paths),
    grouped=True,
    previews=lambda g: _group_entries(g.paths, f"group {g.group}: {len(g.paths)} images, min score {g.min_score:.3f}"),
    path_column="paths",
)


def held(c: Cluster) -> str:
    """A cluster's points: ``12 images``, ``10 images, 4 moments of 1 video``."""
    moments = f", {counted(c.moments, 'moment')} of {counted(c.videos, 'video')}" if c.moments else ""
    return counted(c.images, "image") + moments


CLUSTERS = View(
    columns=("cluster", "size", "labels", "samples"),
    table_rows=lambda c: [
        (c.cluster, held(c), ", ".join(f"{ls.label} {ls.score:.2f}" for ls in c.labels), "\n".join(c.samples))
    ],
    paths=lambda c: list(c.samples),  # -f paths / -0: each cluster's samples, a blank entry between clusters
    grouped=True,
    previews=lambda c: _group_entries(
        c.samples, f"cluster {c.cluster}: {c.size} images" + "".join(f", {ls.label} {ls.score:.2f}" for ls in c.labels)
    ),
    path_column="samples",
)


def human_size(n: int) -> str:
    """Bytes for people, in one style everywhere: ``812 B``, ``39.9 kB``, ``1.2 GB`` (powers of 1000)."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


def _held(images: int, videos: int, moments: int, missing: int) -> str:
    """What an index holds, for a table cell: ``6 images``, ``1 video: 5 moments``, ``2 missing``."""
    lines = [counted(images, "image")]
    lines += [f"{counted(videos, 'video')}: {counted(moments, 'moment')}"] if videos else []
    lines += [f"{missing} missing"] if missing else []
    return "\n".join(lines)


INDEXES = View(
    columns=("name", "roots", "model", "holds", "size", "updated"),
    table_rows=lambda e: [
        (
            e.name,
            "\n".join(e.roots) or "-",
            e.model if e.state == "ok" else e.state,
            _held(e.images, e.videos, e.moments, e.missing),
            human_size(e.size_bytes),
            e.updated.replace("T", " ")[:16] or "-",
        )
    ],
    csv_header=(
        "name", "folder", "roots", "model", "images", "missing", "size_bytes", "updated", "state", "videos", "moments"
    ),
    csv_rows=lambda e: [
        (
            e.name, e.folder, ";".join(e.roots), e.model, e.images, e.missing, e.size_bytes, e.updated, e.state,
            e.videos, e.moments,
        )
    ],
    paths=lambda e: [e.folder],
    right=frozenset({"size"}),
    path_column="roots",
    nowrap=frozenset({"updated"}),
)  # fmt: skip


def _info_rows(info: IndexInfo) -> list[tuple[str, object]]:
    """``mmcli info`` as key/value rows: the size in the style of ``mmcli indexes``, "-" for what is unknown."""
    rows: list[tuple[str, object]] = []
    for key, value in asdict(info).items():
        if key == "size_bytes":
            rows.append(("size", human_size(value)))
        else:
            rows.append((key, "-" if value is None or value == "" else value))
    return rows


INFO = View(
    columns=("key", "value"),
    table_rows=_info_rows,
    csv_header=("key", "value"),
    csv_rows=lambda info: [(k, "" if v is None else v) for k, v in asdict(info).items()],
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
