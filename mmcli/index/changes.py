"""What changed under the roots since the last `mmcli index`: the walk, the stat comparison, the hashes.

Files whose size and mtime match their row are unchanged. Rows whose file was not found are
*gone*, except under folders that could not be read (nothing is known about those). A root that
holds indexed images but where the walk found none (an unmounted drive, an emptied folder) is
reported, so the caller can say so instead of quietly dropping everything.

Hashing a new or changed file is its one read: the capture time comes from the same bytes (the
EXIF header lies in the first chunk), so dates cost no second read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmcli.index.schema import stat_int
from mmcli.index.store import FileRow, Store
from mmcli.media.images import walk_images


@dataclass(frozen=True)
class Changes:
    scan: dict[str, tuple[int, int]]  # path -> (size, mtime_ns) of every image and video found (``stat_int``)
    existing: dict[str, FileRow]  # the rows under the roots
    unchanged: frozenset[str]
    candidates: tuple[str, ...]  # new or changed: to hash
    gone: tuple[FileRow, ...]  # rows whose file was not found (not under an unreadable folder)
    unreadable: tuple[str, ...]  # folders that could not be listed
    empty_roots: tuple[tuple[str, int], ...]  # (root, rows it held) for roots where no image was found


def find_changes(store: Store, roots: Sequence[Path], include_hidden: bool, exclude: Sequence[str]) -> Changes:
    unreadable: list[str] = []
    scan: dict[str, tuple[int, int]] = {}
    for root in roots:
        files = [root] if root.is_file() else walk_images(root, include_hidden, exclude, unreadable, videos=True)
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            scan[os.fsdecode(path)] = (stat_int(st.st_size), stat_int(st.st_mtime_ns))  # as the store holds them
    existing = store.rows_under([os.fsdecode(r) for r in roots])
    unchanged = frozenset(
        p for p, st in scan.items() if p in existing and (existing[p].size, existing[p].mtime_ns) == st
    )
    blind = tuple(d.rstrip(os.sep) + os.sep for d in unreadable)
    gone = tuple(row for p, row in existing.items() if p not in scan and not p.startswith(blind))
    empty = []
    for root in roots:
        prefix = os.fsdecode(root).rstrip(os.sep) + os.sep
        held = sum(1 for p in existing if p == os.fsdecode(root) or p.startswith(prefix))
        found = any(p == os.fsdecode(root) or p.startswith(prefix) for p in scan)
        if not found:
            empty.append((os.fsdecode(root), held))
    candidates = tuple(p for p in scan if p not in unchanged)
    return Changes(scan, existing, unchanged, candidates, gone, tuple(unreadable), tuple(empty))
