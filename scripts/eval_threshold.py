"""Recall and precision of `mmcli search --threshold auto` on a labelled corpus of demo shapes.

    python scripts/eval_threshold.py                        # 400 images, seed 12345, mmcli-tiny
    python scripts/eval_threshold.py --count 1000 --seed 7 --json

The corpus is ``mmcli.demo.shapes.write_corpus`` (JPEG files named NNNN_colour_shape.jpg), indexed with
``mmcli index``'s own code. Each query is "a COLOUR SHAPE" for the 32 combinations; its relevant images
are those of that colour and shape (``--task colour``: "a COLOUR shape" for the 8 colours, relevant: that
colour; ``--task shape``: "a SHAPE" for the 4 shapes). Every query runs through the engine as `mmcli search` runs it,
with ``--threshold auto`` and a top-k as large as the corpus, so the cut-off alone decides what is kept.
Queries without a relevant image in the corpus are left out of the averages (precision is undefined).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmcli.demo.shapes import COLOURS, SHAPES, ShapeSpec, all_specs, write_corpus  # noqa: E402
from mmcli.engine.local import LocalEngine  # noqa: E402
from mmcli.index.job import IndexJob
from mmcli.index.sync import run_index  # noqa: E402
from mmcli.queries import SearchRequest, build_terms  # noqa: E402


@dataclass(frozen=True)
class QueryResult:
    query: str
    relevant: int
    kept: int
    found: int  # relevant among the kept
    threshold: float | None

    @property
    def recall(self) -> float:
        return self.found / self.relevant if self.relevant else 0.0

    @property
    def precision(self) -> float:
        return self.found / self.kept if self.kept else 0.0


def queries(task: str) -> list[tuple[str, Callable[[ShapeSpec], bool]]]:
    """(query text, is an image of this spec relevant) for each query of ``task``."""
    if task == "colour":
        return [(f"a {c} shape", lambda s, c=c: s.colour == c) for c in COLOURS]
    if task == "shape":
        return [(f"a {shape}", lambda s, shape=shape: s.shape == shape) for shape in SHAPES]
    return [(f"a {t.colour} {t.shape}", lambda s, t=t: s == t) for t in all_specs()]


def build(folder: Path, count: int, seed: int, model: str) -> tuple[Path, list[tuple[Path, ShapeSpec]]]:
    """A labelled corpus of ``count`` shapes in ``folder``/photos, indexed in ``folder``/index."""
    written = write_corpus(folder / "photos", count, seed=seed)
    run_index(folder / "index", IndexJob([str(folder / "photos")], model=model, device="cpu", precision="fp32"))
    return folder / "index", written


def evaluate(index: Path, written: list[tuple[Path, ShapeSpec]], task: str = "colour+shape") -> list[QueryResult]:
    """Every query of ``task`` with ``--threshold auto`` and a top-k of the whole corpus."""
    engine = LocalEngine(index, device="cpu", precision="fp32")
    results = []
    for text, wanted in queries(task):
        relevant = {str(p) for p, s in written if wanted(s)}
        answer = engine.search(SearchRequest(build_terms(text, None), top_k=len(written), threshold="auto"))
        kept = {h.path for h in answer.hits}
        results.append(QueryResult(text, len(relevant), len(kept), len(kept & relevant), answer.threshold))
    return results


def summary(results: list[QueryResult], count: int) -> dict[str, float]:
    judged = [r for r in results if r.relevant]
    return {
        "queries": len(judged),
        "recall": sum(r.recall for r in judged) / len(judged),
        "precision": sum(r.precision for r in judged) / len(judged),
        "kept_fraction": sum(r.kept for r in judged) / (len(judged) * count),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mmcli-tiny")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--task", choices=("colour+shape", "colour", "shape"), default="colour+shape")
    ap.add_argument("--json", action="store_true", help="one JSON object: every query and the averages")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index, written = build(Path(tmp), args.count, args.seed, args.model)
        results = evaluate(index, written, args.task)
    averages = summary(results, args.count)
    if args.json:
        rows = [{**asdict(r), "recall": r.recall, "precision": r.precision} for r in results]
        print(json.dumps({"queries": rows, "average": averages}, indent=2))
        return
    print(f"{'query':20s} {'relevant':>8s} {'kept':>5s} {'recall':>7s} {'precision':>9s} {'threshold':>9s}")
    for r in results:
        cut = "-" if r.threshold is None else f"{r.threshold:.4f}"
        note = "" if r.relevant else "  (no relevant image: not averaged)"
        print(f"{r.query:20s} {r.relevant:8d} {r.kept:5d} {r.recall:7.3f} {r.precision:9.3f} {cut:>9s}{note}")
    print(
        f"average over {averages['queries']} {args.task} queries "
        f"({args.count} images, seed {args.seed}, {args.model}): "
        f"recall {averages['recall']:.3f}, precision {averages['precision']:.3f}, "
        f"kept {100 * averages['kept_fraction']:.1f} % of the corpus per query"
    )


if __name__ == "__main__":
    main()
