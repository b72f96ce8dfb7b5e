"""Keywords written into XMP sidecars, where darktable, digiKam, Lightroom and Immich read them.

Each keyword goes in twice: flat in ``dc:subject`` and under a prefix in ``lr:hierarchicalSubject``
(``mmcli|label|sunset``), both ``rdf:Bag``s. The sidecar of ``photo.jpg`` is ``photo.jpg.xmp``
(darktable, digiKam: style ``darktable``, the default) or ``photo.xmp`` (Adobe: style ``adobe``);
the chosen style's name is used when that file exists, else the other style's when it exists, else
a new file of the chosen style.

An existing sidecar is edited in place, byte for byte: the new ``rdf:li`` items are inserted where its
own lists end (indented like their neighbours), a list it lacks is added in a new ``rdf:Description``
of its own, and nothing else moves: other namespaces, darktable's history, exiftool's fields, comments,
unknown XML, the ``xpacket`` wrapper and its padding stay as they were. (A library that re-serialises
the packet, as Exempi does, keeps the data but not the file: darktable's attributes become elements,
its history items ``rdf:parseType="Resource"``.) A keyword already there is not added again, so a
second run changes nothing and writes nothing. With ``replace``, the keywords under our prefix that
are not given now are taken out, with their flat twins: a ``dc:subject`` item is ours when it equals
what follows our prefix in a removed ``lr:hierarchicalSubject`` item, and it stays when a keyword kept
(ours or another hierarchy's leaf) is the same word. Nothing outside the prefix is ever removed.

A sidecar that is not XML, not XMP (no ``rdf:RDF``), has a DTD, is not UTF-8, is larger than
``MAX_SIDECAR``, or holds these properties in a form other than a list is skipped with the reason:
nothing is overwritten. Writes are atomic (``mmcli.atomic``), keep the file's mode (and owner, where
allowed), and follow a symbolic link to the file it names. The picture itself is only named, never
opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmcli.atomic import atomic_write_bytes
from mmcli.errors import UsageError
from mmcli.xmp.packet import (
    HIERARCHICAL,
    RDF,
    SUBJECT,
    Edit,
    Skip,
    add_items,
    apply_edits,
    description,
    find_list,
    parse,
    rdf_of,
    remove_items,
    remove_property,
)

DEFAULT_PREFIX = "mmcli|label"
STYLES = ("darktable", "adobe")
MAX_SIDECAR = 16 << 20


@dataclass(frozen=True)
class SidecarChange:
    """What writing keywords did to one picture's sidecar. ``state``: "new" (a sidecar made),
    "changed", "unchanged" (nothing to add or take out: not written), "skipped" (``reason`` says why);
    ``written`` is False for a dry run. ``added``/``removed``: the keywords, flat and hierarchical."""

    path: str
    sidecar: str
    state: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    written: bool = False
    reason: str | None = None


# ------------------------------------------------------------------------------ names and values
def check_style(style: str) -> str:
    if style not in STYLES:
        raise UsageError(f"--xmp-style {style}: use darktable (photo.jpg.xmp) or adobe (photo.xmp)")
    return style


def check_prefix(prefix: str) -> str:
    """A keyword hierarchy: parts joined by ``|``, none empty (``mmcli|label``)."""
    parts = prefix.split("|")
    if not prefix or any(not p.strip() or p != p.strip() for p in parts):
        raise UsageError(f"--xmp-prefix {prefix!r}: give names joined by |, none empty", hint="e.g. mmcli|label")
    check_keyword(prefix, "--xmp-prefix")
    return prefix


def check_keyword(text: str, what: str = "label") -> str:
    """A keyword XMP can hold and give back unchanged: no control characters (a carriage return would
    come back as a newline), no surrogates, not empty."""
    bad = next((c for c in text if ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF), None)
    if not text.strip() or bad is not None or "\ufffe" in text or "\uffff" in text:
        raise UsageError(f"{what} {text!r} cannot be an XMP keyword (empty, or a control character)")
    return text


def sidecar_names(path: str | os.PathLike[str]) -> dict[str, Path]:
    """The sidecar of ``path`` in each style: ``photo.jpg.xmp`` (darktable), ``photo.xmp`` (adobe)."""
    p = Path(path)
    return {"darktable": p.with_name(p.name + ".xmp"), "adobe": p.with_name(p.stem + ".xmp")}


def sidecar_for(path: str | os.PathLike[str], style: str = "darktable") -> Path:
    """The sidecar to read and write: the chosen style's if it exists, else the other's if it does,
    else the chosen style's (new)."""
    names = sidecar_names(path)
    other = STYLES[1 - STYLES.index(check_style(style))]
    for name in (names[style], names[other]):
        if os.path.lexists(name):
            return name
    return names[style]


# ------------------------------------------------------------------------------ keywords in, sidecar out
@dataclass(frozen=True)
class Plan:
    """What a sidecar becomes: its new bytes (None: unchanged), the keywords added and taken out."""

    data: bytes | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _skeleton() -> bytes:
    from mmcli import __version__

    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="mmcli {__version__}">\n'
        f' <rdf:RDF xmlns:rdf="{RDF}">\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>\n'
    ).encode()


def keywords_in(data: bytes) -> tuple[list[str], list[str]]:
    """The (``dc:subject``, ``lr:hierarchicalSubject``) items of a sidecar's bytes; ``Skip`` if it is
    not one to edit."""
    rdf = rdf_of(parse(data))
    return find_list(rdf, SUBJECT).texts, find_list(rdf, HIERARCHICAL).texts


def plan(data: bytes | None, keywords: Sequence[str], prefix: str = DEFAULT_PREFIX, replace: bool = False) -> Plan:
    """The sidecar ``data`` (None: none yet) with ``keywords`` in it (see the module's docstring)."""
    wanted = list(dict.fromkeys(check_keyword(k) for k in keywords))
    source = _skeleton() if data is None else data
    if len(source) > MAX_SIDECAR:
        raise Skip(f"larger than {MAX_SIDECAR >> 20} MiB (not a sidecar)")
    rdf = rdf_of(parse(source))
    flat, tree = find_list(rdf, SUBJECT), find_list(rdf, HIERARCHICAL)
    ours = {f"{prefix}|{k}": k for k in wanted}
    take_tree: set[str] = set()
    take_flat: set[str] = set()
    if replace:
        take_tree = {t for t in tree.texts if t.startswith(prefix + "|") and t not in ours}
        staying = set(wanted) | {t.rpartition("|")[2] for t in tree.texts if not t.startswith(prefix + "|")}
        take_flat = {t[len(prefix) + 1 :] for t in take_tree} - staying
    add_flat = [k for k in wanted if k not in flat.texts]
    add_tree = [t for t in ours if t not in tree.texts]
    removed = tuple(t for t in flat.texts if t in take_flat) + tuple(t for t in tree.texts if t in take_tree)
    if not (add_flat or add_tree or removed):
        return Plan(None)  # (and no sidecar made for no keywords)
    edits: list[Edit] = []
    missing: dict[tuple[str, str], list[str]] = {}
    for listing, add, take, key in ((flat, add_flat, take_flat, SUBJECT), (tree, add_tree, take_tree, HIERARCHICAL)):
        cut, gone = remove_items(source, listing, take)
        if cut and not add and len(gone) == len(listing.items):
            edits += remove_property(source, listing)  # nothing left in it: the property goes
            continue
        edits += cut
        if add and listing.container is None:
            missing[key] = add
        elif add:
            edits += add_items(source, listing, add, gone)
    if missing:
        edits += description(source, rdf, missing)
    new = apply_edits(source, edits)
    check = keywords_in(new)  # read back: exactly what was meant, or nothing is written
    expect_flat = [t for t in flat.texts if t not in take_flat] + add_flat
    expect_tree = [t for t in tree.texts if t not in take_tree] + add_tree
    if check != (expect_flat, expect_tree):
        raise Skip("could not be edited safely (the result did not read back as planned)")
    return Plan(new, tuple(add_flat + add_tree), removed)


def _read(sidecar: Path) -> bytes | None:
    """The sidecar's bytes (None: there is none); ``Skip`` for something that is not a regular file."""
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(sidecar):
            raise Skip("a symbolic link to nothing") from None
        return None
    except OSError as exc:
        raise Skip(f"cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Skip("not a regular file")
        if st.st_size > MAX_SIDECAR:
            raise Skip(f"larger than {MAX_SIDECAR >> 20} MiB (not a sidecar)")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_SIDECAR + 1)
    except OSError as exc:
        raise Skip(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _write(sidecar: Path, data: bytes) -> None:
    """Atomically, keeping an existing file's mode (and owner, where this process may set it)."""
    target = Path(os.path.realpath(sidecar))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        atomic_write_bytes(target, data)
        return

    def keep(tmp: Path) -> None:
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass  # not ours to give away: the file is now the writer's

    atomic_write_bytes(target, data, prepare=keep)


def write_keywords(
    path: str | os.PathLike[str],
    keywords: Sequence[str],
    *,
    style: str = "darktable",
    prefix: str = DEFAULT_PREFIX,
    replace: bool = False,
    dry_run: bool = False,
) -> SidecarChange:
    """Put ``keywords`` into the XMP sidecar of the picture at ``path`` (see the module's docstring).
    A sidecar that cannot be edited gives a "skipped" change with the reason; nothing raises for it."""
    check_prefix(prefix)
    sidecar = sidecar_for(path, style)
    name = os.fspath(path)
    if not os.path.exists(path):
        return SidecarChange(name, str(sidecar), "skipped", reason=f"no picture {name} beside it")
    try:
        data = _read(sidecar)
        result = plan(data, keywords, prefix, replace)
        if result.data is None:
            return SidecarChange(name, str(sidecar), "unchanged")
        if not dry_run:
            _write(sidecar, result.data)
    except Skip as exc:
        return SidecarChange(name, str(sidecar), "skipped", reason=str(exc))
    except OSError as exc:
        return SidecarChange(name, str(sidecar), "skipped", reason=f"cannot be written ({exc.strerror or exc})")
    state = "new" if data is None else "changed"
    return SidecarChange(name, str(sidecar), state, result.added, result.removed, written=not dry_run)
