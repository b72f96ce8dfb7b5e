"""`mmcli demo`: the main job end to end, offline, on generated shape images and mmcli-tiny."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mmcli.results import Classification
from mmcli.shapes import all_specs, write_corpus

DEMO_MODEL = "mmcli-tiny"


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    labels: tuple[str, ...]
    classifications: tuple[Classification, ...]
    correct: int
    seconds: float


def run_demo(folder: Path, count: int = 12, seed: int = 7) -> DemoResult:
    from mmcli.classify import build_label_set, classify_stream
    from mmcli.models import load_encoder, parse_model_spec
    from mmcli.textcache import TextCache

    start = time.perf_counter()
    written = write_corpus(folder, count, seed=seed)
    encoder = load_encoder(parse_model_spec(DEMO_MODEL), device="cpu", precision="fp32")
    labels = [s.label for s in all_specs()]
    label_set = build_label_set(encoder, labels, ["a photo of a {}."], TextCache())
    results = [
        r
        for r in classify_stream(encoder, [str(p) for p, _ in written], label_set, top_k=3, workers=1)
        if isinstance(r, Classification)
    ]
    truth = {str(p): spec.label for p, spec in written}
    correct = sum(1 for r in results if r.labels and r.labels[0].label == truth[r.path])
    return DemoResult(folder, tuple(labels), tuple(results), correct, time.perf_counter() - start)
