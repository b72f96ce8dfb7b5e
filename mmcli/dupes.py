"""`mmcli dupes`: groups of near-duplicate images in an index.

Every vector's neighbours above the threshold come from a FAISS range search; groups are the
connected components of that graph (union-find). Files with the same content hash always group,
whatever the threshold. Largest groups first.
"""

from __future__ import annotations

from pathlib import Path

from mmcli.index.open import open_index
from mmcli.index.vectors import load_all
from mmcli.results import DupeGroup


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def find_dupes(folder: Path, threshold: float = 0.95, chunk: int = 4096) -> list[DupeGroup]:
    import faiss

    store = open_index(folder)
    try:
        ids, vecs = load_all(store)
        if not len(ids):
            return []
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        uf = _UnionFind()
        edges: dict[tuple[int, int], float] = {}  # (a, b) -> similarity of every linking pair
        for start in range(0, len(vecs), chunk):
            lims, scores, found = index.range_search(vecs[start : start + chunk], float(threshold))
            for row in range(len(lims) - 1):
                a = start + row
                for k in range(lims[row], lims[row + 1]):
                    b = int(found[k])
                    if b > a:
                        uf.union(a, b)
                        edges[(a, b)] = float(scores[k])
        by_hash: dict[str, list[int]] = {}
        pos = {int(i): n for n, i in enumerate(ids)}
        for rid, digest in store.ok_hashes():
            if rid in pos:
                by_hash.setdefault(digest, []).append(pos[rid])
        for members in by_hash.values():
            for other in members[1:]:
                uf.union(members[0], other)
                edges.setdefault((min(members[0], other), max(members[0], other)), 1.0)
        groups: dict[int, list[int]] = {}
        for n in range(len(vecs)):
            if n in uf.parent:
                groups.setdefault(uf.find(n), []).append(n)
        groups = {r: m for r, m in groups.items() if len(m) > 1}
        paths = store.paths_for(int(ids[n]) for m in groups.values() for n in m)
        min_edge: dict[int, float] = {}
        for (a, _b), s in edges.items():
            r = uf.find(a)
            min_edge[r] = min(min_edge.get(r, 1.0), s)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), min(paths[int(ids[n])] for n in kv[1])))
        return [
            DupeGroup(g, tuple(sorted(paths[int(ids[n])] for n in members)), round(min_edge.get(root, 1.0), 6))
            for g, (root, members) in enumerate(ordered, start=1)
        ]
    finally:
        store.close()
