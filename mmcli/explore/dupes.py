"""`mmcli dupes`: groups of near-duplicate images in an index.

Every vector's neighbours above the threshold come from a FAISS range search; groups are the
connected components of that graph (union-find) over files. Files with the same content hash always
group, whatever the threshold. Largest groups first.

Videos: each sampled moment is a vector, and a video groups with a file (an image, another video)
when one of its moments is a near duplicate of it. Moments of one video are never linked to each
other (a still shot is not a duplicate of itself), so a video appears at most once in a group, with
the time of its moment in the best pair that links it (``DupeGroup.times``).
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
        owners = store.owners(int(i) for i in ids)
        own = [owners[int(i)] for i in ids]  # each vector's file (a moment's video)
        uf = _UnionFind()
        edges: dict[tuple[int, int], float] = {}  # (file, file) -> similarity of their best linking pair
        best: dict[int, tuple[float, int]] = {}  # file -> (score, vector id) of its best linking vector
        for start in range(0, len(vecs), chunk):
            lims, scores, found = index.range_search(vecs[start : start + chunk], float(threshold))
            for row in range(len(lims) - 1):
                a = own[start + row]
                for k in range(lims[row], lims[row + 1]):
                    b = own[int(found[k])]
                    if b > a:  # b == a: the same file, or two moments of one video
                        score = float(scores[k])
                        uf.union(a, b)
                        edges[(a, b)] = max(edges.get((a, b), -1.0), score)
                        for f, n in ((a, start + row), (b, int(found[k]))):
                            if score > best.get(f, (-2.0, 0))[0]:
                                best[f] = (score, int(ids[n]))
        by_hash: dict[str, list[int]] = {}
        present = set(own)
        for rid, digest in store.ok_hashes():
            if rid in present:
                by_hash.setdefault(digest, []).append(rid)
        for members in by_hash.values():
            for other in members[1:]:
                uf.union(members[0], other)
                edges.setdefault((min(members[0], other), max(members[0], other)), 1.0)
        groups: dict[int, list[int]] = {}
        for f in sorted(present):
            if f in uf.parent:
                groups.setdefault(uf.find(f), []).append(f)
        groups = {r: m for r, m in groups.items() if len(m) > 1}
        paths = store.paths_for(f for m in groups.values() for f in m)
        moments = store.locate(best[f][1] for m in groups.values() for f in m if f in best)  # a video: its moment
        when = {f: moments[best[f][1]].time for m in groups.values() for f in m if f in best}
        min_edge: dict[int, float] = {}
        for (a, _b), s in edges.items():
            r = uf.find(a)
            min_edge[r] = min(min_edge.get(r, 1.0), s)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), min(paths[f] for f in kv[1])))
        out = []
        for g, (root, members) in enumerate(ordered, start=1):
            members = sorted(members, key=lambda f: paths[f])
            times = tuple(when.get(f) for f in members)
            out.append(DupeGroup(g, tuple(paths[f] for f in members), round(min_edge.get(root, 1.0), 6), times))
        return out
    finally:
        store.close()
