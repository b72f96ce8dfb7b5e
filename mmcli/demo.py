"""`mmcli demo`: the main job end to end, offline, on generated shape images and mmcli-tiny.

1. write a folder of shape images; 2. index it; 3. search "a red circle"; 4. classify a few images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mmcli.index.sync import IndexSummary, run_index
from mmcli.results import Classification, Hit
from mmcli.search import build_terms, run_search
from mmcli.shapes import all_specs, write_corpus

DEMO_MODEL = "mmcli-tiny"
DEMO_QUERY = "a red circle"


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    index: Path
    summary: IndexSummary
    hits: tuple[Hit, ...]
    red_circles_in_hits: int
    labels: tuple[str, ...]
    classifications: tuple[Classification, ...]
    correct: int
    seconds: float


def run_demo(folder: Path, count: int = 48, seed: int = 7, classify_count: int = 8) -> DemoResult:
    from mmcli.classify import build_label_set, classify_stream
    from mmcli.models import load_encoder, parse_model_spec
    from mmcli.textcache import TextCache

    start = time.perf_counter()
    written = write_corpus(folder, count, seed=seed)
    index = folder / ".mmcli-index"
    summary = run_index(index, [str(folder)], model=DEMO_MODEL, device="cpu", precision="fp32", workers=1)
    hits = run_search(index, build_terms(DEMO_QUERY, None, (), ()), top_k=5, device="cpu", precision="fp32")
    truth = {str(p): spec.label for p, spec in written}
    red_circles = sum(1 for h in hits if truth.get(h.path) == "red circle")

    encoder = load_encoder(parse_model_spec(DEMO_MODEL), device="cpu", precision="fp32")
    labels = [s.label for s in all_specs()]
    label_set = build_label_set(encoder, labels, ["a photo of a {}."], TextCache())
    sample = [str(p) for p, _ in written[:classify_count]]
    results = [
        r for r in classify_stream(encoder, sample, label_set, top_k=2, workers=1) if isinstance(r, Classification)
    ]
    correct = sum(1 for r in results if r.labels and r.labels[0].label == truth[r.path])
    return DemoResult(
        folder,
        index,
        summary,
        tuple(hits),
        red_circles,
        tuple(labels),
        tuple(results),
        correct,
        time.perf_counter() - start,
    )
