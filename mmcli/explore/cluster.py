"""`mmcli cluster -k N`: k-means over an index (FAISS, spherical), each cluster with its size, the
images nearest its centre and, given labels, the labels that best match its centre (auto-tagging).

Videos: each sampled moment is a point (a video's scenes may fall in different clusters); a
cluster's size counts moments, and its samples name each file once (a video by its best moment)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mmcli.errors import IndexMissing, UsageError
from mmcli.index.open import open_index
from mmcli.index.schema import FRAME_ID_BASE
from mmcli.index.vectors import load_all
from mmcli.queries import DEFAULT_TEMPLATE
from mmcli.results import Cluster, LabelScore

if TYPE_CHECKING:
    from mmcli.engine.local import LocalEngine


def cluster_index(
    engine: LocalEngine,
    k: int,
    labels: Sequence[str] = (),
    templates: Sequence[str] = (DEFAULT_TEMPLATE,),
    samples: int = 5,
    top_labels: int = 3,
    seed: int = 1234,
) -> list[Cluster]:
    """Clusters of ``engine``'s index; its model embeds the labels (loaded only when labels are given)."""
    import faiss

    if engine.index is None:
        raise UsageError("no index to cluster")
    folder = engine.index
    store = open_index(folder)
    try:
        ids, vecs = load_all(store)
        if not len(ids):
            raise IndexMissing(
                f"the index at {folder} holds no images to cluster", hint="add images with `mmcli index PATH`"
            )
        if k < 1 or k > len(vecs):
            raise UsageError(f"-k must be between 1 and the number of points to cluster ({len(vecs)}: images, moments)")
        km = faiss.Kmeans(
            vecs.shape[1],
            k,
            niter=25,
            seed=seed,
            spherical=True,
            min_points_per_centroid=1,
            max_points_per_centroid=100_000,
        )
        km.train(vecs)
        _, assign = km.index.search(vecs, 1)
        assign = assign[:, 0]
        centroids = km.centroids / np.linalg.norm(km.centroids, axis=1, keepdims=True)
        label_scores = _label_scores(engine, centroids, labels, templates)
        out = []
        for c in range(k):
            members = np.flatnonzero(assign == c)
            if len(members) == 0:
                continue
            ranked = members[np.argsort(-(vecs[members] @ centroids[c]), kind="stable")]
            paths = store.paths_for(int(ids[n]) for n in ranked[: samples * 20])
            picked = list(dict.fromkeys(paths[int(ids[n])] for n in ranked[: samples * 20]))[:samples]
            top = label_scores[c][:top_labels] if label_scores else ()
            shots = [int(ids[n]) for n in members if ids[n] >= FRAME_ID_BASE]
            videos = len(set(store.owners(shots).values()))
            out.append((len(members), tuple(picked), tuple(top), len(members) - len(shots), videos, len(shots)))
        out.sort(key=lambda item: (-item[0], item[1]))
        return [Cluster(i, *item) for i, item in enumerate(out, start=1)]
    finally:
        store.close()


def _label_scores(
    engine: LocalEngine, centroids: np.ndarray, labels: Sequence[str], templates: Sequence[str]
) -> list[list[LabelScore]]:
    if not labels:
        return []
    from mmcli.embedding.textcache import TextCache
    from mmcli.engine.classify import build_label_set, score

    encoder = engine.text_encoder()  # the ONNX text tower where there is one: no torch for labels
    label_set = build_label_set(encoder, labels, templates, TextCache())
    probs = score(centroids.astype(np.float32), label_set, encoder.logit_scale, encoder.logit_bias)
    return [[LabelScore(label_set.labels[j], float(row[j])) for j in np.argsort(-row, kind="stable")] for row in probs]
