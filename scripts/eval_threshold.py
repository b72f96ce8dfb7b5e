"""How well `mmcli search --threshold auto` keeps what matches and drops what does not.

    python scripts/eval_threshold.py                  # shapes: corpora of 30, 48, 100 and 400 images, mmcli-tiny
    python scripts/eval_threshold.py --count 48 --seed 7     # one corpus (`mmcli demo`'s own 48 images)
    python scripts/eval_threshold.py --synthetic      # large indexes: synthetic scores, 10,000 to 1,000,000
    python scripts/eval_threshold.py --json

Shapes: a corpus from ``mmcli.demo.shapes.write_corpus`` (JPEG files named NNNN_colour_shape.jpg), indexed
with ``mmcli index``'s own code. The queries: "a COLOUR SHAPE" for the 32 kinds, "a COLOUR shape" for the 8
colours, "a SHAPE" for the 4 shapes, six texts the shapes do not show ("a photo of a dog", ...), and a new
drawing of each of the 32 kinds as an image query (not in the corpus). A query's relevant images are those of
its kind (colour, shape); by how many there are, it is a query that matches none, one or several. Every
query runs through the engine as `mmcli search` runs it, with ``--threshold auto`` and a top-k as large as
the corpus, so the cut-off alone decides what is kept. Figures per kind of query: recall and precision
(averaged over the queries that match one or several), and how many a query that matches none keeps.

Synthetic: the rule itself (``choose_cutoff``) on the scores of an index of N vectors drawn from a normal, a
Gumbel (an exponential tail) or a Student t (5 degrees of freedom: a heavier tail) distribution, with
nothing, one, several or six equal matches planted clearly above its best, or 100 that merge into its top
(between its 99.99th percentile and a little above its best), as ``auto_cutoff`` sees them: the best
``head_size(N)`` scores and a background of 2,048 spread over the index.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmcli.demo.shapes import COLOURS, SHAPES, ShapeSpec, all_specs, draw_shape, write_corpus  # noqa: E402
from mmcli.engine import cutoff  # noqa: E402
from mmcli.engine.local import LocalEngine  # noqa: E402
from mmcli.index.job import IndexJob  # noqa: E402
from mmcli.index.sync import run_index  # noqa: E402
from mmcli.queries import SearchRequest, build_terms  # noqa: E402

CORPORA = ((30, 1), (30, 2), (48, 7), (48, 8), (64, 3), (100, 6), (100, 9), (400, 12345))  # (images, seed)
UNSHOWN = ("a photo of a dog", "a car", "sunset over the sea", "a person smiling", "a page of text", "a bowl of fruit")


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

    @property
    def kind(self) -> str:
        return "none" if not self.relevant else "one" if self.relevant == 1 else "several"


def queries(task: str, drawings: Path | None = None) -> list[tuple[str, Callable[[ShapeSpec], bool]]]:
    """(query, is an image of this spec relevant) for each query of ``task``; "all" with ``drawings`` (a
    folder of ``draw_queries``) adds the texts the shapes do not show and the image queries."""
    if task == "colour":
        return [(f"a {c} shape", lambda s, c=c: s.colour == c) for c in COLOURS]
    if task == "shape":
        return [(f"a {shape}", lambda s, shape=shape: s.shape == shape) for shape in SHAPES]
    kinds = [(f"a {t.colour} {t.shape}", lambda s, t=t: s == t) for t in all_specs()]
    if task != "all":
        return kinds
    images = [(str(p), lambda s, t=t: s == t) for p, t in draw_queries(drawings)] if drawings is not None else []
    unshown = [(text, lambda s: False) for text in UNSHOWN]
    return kinds + queries("colour") + queries("shape") + unshown + images


def draw_queries(folder: Path) -> list[tuple[Path, ShapeSpec]]:
    """A new drawing of each of the 32 kinds (seeds no corpus uses), written once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    for k, spec in enumerate(all_specs()):
        path = folder / f"query_{spec.colour}_{spec.shape}.jpg"
        if not path.exists():
            draw_shape(spec, size=160, seed=10_000 + k).save(path, quality=92)
        drawn.append((path, spec))
    return drawn


def build(folder: Path, count: int, seed: int, model: str) -> tuple[Path, list[tuple[Path, ShapeSpec]]]:
    """A labelled corpus of ``count`` shapes in ``folder``/photos, indexed in ``folder``/index."""
    written = write_corpus(folder / "photos", count, seed=seed)
    run_index(
        folder / "index",
        IndexJob([str(folder / "photos")], model=model, device="cpu", precision="fp32", workers=1),
    )
    return folder / "index", written


def evaluate(
    index: Path, written: list[tuple[Path, ShapeSpec]], task: str = "colour+shape", drawings: Path | None = None
) -> list[QueryResult]:
    """Every query of ``task`` with ``--threshold auto`` and a top-k of the whole corpus."""
    engine = LocalEngine(index, device="cpu", precision="fp32", workers=1)
    results = []
    for text, wanted in queries(task, drawings):
        relevant = {str(p) for p, s in written if wanted(s)}
        answer = engine.search(SearchRequest(build_terms(text, None), top_k=len(written), threshold="auto"))
        kept = {h.path for h in answer.hits}
        results.append(QueryResult(text, len(relevant), len(kept), len(kept & relevant), answer.threshold))
    return results


def summary(results: list[QueryResult], count: int) -> dict[str, float]:
    """Averages over the queries that match something (recall, precision, the share of the corpus kept),
    and what the queries that match nothing keep."""
    judged = [r for r in results if r.relevant]
    empty = [r.kept for r in results if not r.relevant]
    return {
        "queries": len(judged),
        "recall": sum(r.recall for r in judged) / len(judged),
        "precision": sum(r.precision for r in judged) / len(judged),
        "kept_fraction": sum(r.kept for r in judged) / (len(judged) * count),
        "none_queries": len(empty),
        "none_kept_mean": sum(empty) / len(empty) if empty else 0.0,
        "none_kept_max": max(empty, default=0),
    }


def by_kind(results: list[QueryResult]) -> dict[str, dict[str, float]]:
    """Per kind of query (one, several, none): how many, recall, precision and images kept (mean, max)."""
    out = {}
    for kind in ("one", "several", "none"):
        rows = [r for r in results if r.kind == kind]
        if rows:
            kept = [r.kept for r in rows]
            out[kind] = {
                "queries": len(rows),
                "recall": sum(r.recall for r in rows) / len(rows) if kind != "none" else 1.0,
                "precision": sum(r.precision for r in rows) / len(rows) if kind != "none" else 1.0,
                "kept_mean": sum(kept) / len(rows),
                "kept_max": max(kept),
            }
    return out


# ------------------------------------------------------------------------------------------ synthetic
def synthetic_cases(size: int, seed: int) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(background law, case, every score of an index of ``size`` vectors, the planted matches' positions)."""
    rng = np.random.default_rng(seed)
    laws = {
        "normal": lambda: rng.normal(0.20, 0.03, size),
        "gumbel": lambda: 0.15 + 0.02 * rng.gumbel(0.0, 1.0, size),
        "student5": lambda: 0.20 + 0.02 * rng.standard_t(5, size),
    }
    for law, draw in laws.items():
        for case in ("none", "one", "several", "copies", "merging"):
            scores = draw().astype(np.float32)
            top = float(scores.max())  # the matches are planted relative to the background's own best
            planted = {
                "none": [],
                "one": [top + 0.15],
                "several": list(rng.normal(top + 0.10, 0.01, 12)),
                "copies": [top + 0.10] * 6,
                "merging": list(rng.uniform(float(np.quantile(scores, 0.9999)), top + 0.05, 100)),
            }[case]
            where = rng.choice(size, len(planted), replace=False)
            scores[where] = np.asarray(planted, dtype=np.float32)
            yield law, case, scores, where


def synthetic(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), seeds: int = 10) -> list[dict]:
    """What the rule keeps on synthetic indexes, per size, background law and case, over ``seeds`` draws."""
    rows: dict[tuple[int, str, str], list[tuple[int, int, int]]] = {}
    for size in sizes:
        for seed in range(seeds):
            for law, case, scores, where in synthetic_cases(size, seed):
                k = cutoff.head_size(size)
                head = scores[np.argpartition(-scores, k - 1)[:k]] if size > k else scores
                background = scores[np.linspace(0, size - 1, min(cutoff.BACKGROUND, size)).astype(np.int64)]
                cut = cutoff.choose_cutoff(head, background).threshold
                kept = int((scores >= cut).sum())
                found = int((scores[where] >= cut).sum())
                rows.setdefault((size, law, case), []).append((len(where), kept, found))
    out = []
    for (size, law, case), runs in rows.items():
        relevant = runs[0][0]
        recall = [f / relevant for relevant, _, f in runs] if relevant else None
        precision = [f / k if k else 0.0 for _, k, f in runs] if relevant else None
        out.append(
            {
                "vectors": size,
                "law": law,
                "case": case,
                "relevant": relevant,
                "kept_mean": sum(k for _, k, _ in runs) / len(runs),
                "kept_max": max(k for _, k, _ in runs),
                "recall": None if recall is None else sum(recall) / len(recall),
                "precision": None if precision is None else sum(precision) / len(precision),
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ main
def _shapes(args: argparse.Namespace) -> dict:
    corpora = ((args.count, args.seed),) if args.count else CORPORA
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        drawings = Path(tmp) / "queries"
        for count, seed in corpora:
            index, written = build(Path(tmp) / f"c{count}_{seed}", count, seed, args.model)
            results = evaluate(index, written, args.task, drawings)
            report[f"{count} images, seed {seed}"] = {"kinds": by_kind(results), "queries": results}
    return report


def _print_shapes(report: dict, model: str) -> None:
    print(f"--threshold auto on demo shapes ({model}); top-k = the corpus, so only the cut decides")
    print(f"{'corpus':22s} {'kind':8s} {'queries':>7s} {'recall':>7s} {'precision':>9s} {'kept mean':>9s} {'max':>4s}")
    total: dict[str, list[dict]] = {}
    for corpus, part in report.items():
        for kind, row in part["kinds"].items():
            total.setdefault(kind, []).append(row)
            print(
                f"{corpus:22s} {kind:8s} {row['queries']:7d} {row['recall']:7.3f} {row['precision']:9.3f} "
                f"{row['kept_mean']:9.2f} {row['kept_max']:4d}"
            )
    for kind, rows in total.items():
        n = sum(r["queries"] for r in rows)
        mean = {key: sum(r[key] * r["queries"] for r in rows) / n for key in ("recall", "precision", "kept_mean")}
        print(
            f"{'all':22s} {kind:8s} {n:7d} {mean['recall']:7.3f} {mean['precision']:9.3f} "
            f"{mean['kept_mean']:9.2f} {max(r['kept_max'] for r in rows):4d}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mmcli-tiny")
    ap.add_argument("--count", type=int, help="one corpus of this many images (default: several, 30 to 400)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--task", choices=("all", "colour+shape", "colour", "shape"), default="all")
    ap.add_argument("--synthetic", action="store_true", help="the rule on synthetic indexes of 10,000 to 1,000,000")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    args = ap.parse_args()
    if args.synthetic:
        rows = synthetic()
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        print(f"{'vectors':>9s} {'law':9s} {'case':8s} {'relevant':>8s} {'kept mean':>9s} {'max':>5s} recall precision")
        for r in rows:
            rp = "" if r["recall"] is None else f"{r['recall']:6.3f} {r['precision']:9.3f}"
            print(
                f"{r['vectors']:9d} {r['law']:9s} {r['case']:8s} {r['relevant']:8d} {r['kept_mean']:9.2f} "
                f"{r['kept_max']:5d} {rp}"
            )
        return
    report = _shapes(args)
    if args.json:
        for part in report.values():
            part["queries"] = [{**asdict(r), "kind": r.kind} for r in part["queries"]]
        print(json.dumps(report, indent=2))
        return
    _print_shapes(report, args.model)


if __name__ == "__main__":
    main()
