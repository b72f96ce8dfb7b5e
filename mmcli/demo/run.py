"""`mmcli demo`: the main job end to end, offline, on generated shape images and mmcli-tiny.

1. write a folder of shape images; 2. index it; 3. search "a red circle"; 4. classify a few images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mmcli.demo.shapes import all_specs, write_corpus
from mmcli.engine.local import LocalEngine
from mmcli.index.job import IndexJob
from mmcli.index.sync import IndexSummary, run_index
from mmcli.queries import ClassifyRequest, SearchRequest, build_terms
from mmcli.results import Classification, Hit

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
    start = time.perf_counter()
    written = write_corpus(folder, count, seed=seed)
    index = folder / ".mmcli-index"
    summary = run_index(index, IndexJob([str(folder)], model=DEMO_MODEL, device="cpu", precision="fp32", workers=1))
    engine = LocalEngine(index, DEMO_MODEL, None, "cpu", "fp32", workers=1)
    hits = engine.search(SearchRequest(build_terms(DEMO_QUERY, None), top_k=5)).hits
    truth = {str(p): spec.label for p, spec in written}
    red_circles = sum(1 for h in hits if truth.get(h.path) == "red circle")

    labels = [s.label for s in all_specs()]
    sample = tuple(str(p) for p, _ in written[:classify_count])
    run = engine.classify(ClassifyRequest(sample, tuple(labels), top_k=2))
    results = [r for r in run.items if isinstance(r, Classification)]
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
