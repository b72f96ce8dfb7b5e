"""Measure `mmcli ocr` on the labelled set (scripts/make_ocr_set.py): what issue 29 asks of text in pictures.

    python scripts/eval_ocr.py [--set DIR] [--count 200] [--notext 60] [--seed 0] [--workers 1] [--threads 1]
                               [--engine mmcli|rapidocr-onnxruntime|tesseract] [--json OUT.json]

Without ``--set`` the set is made in a temporary folder first. It reports:

- word recall: of the words printed in the pictures with text, the share found in what was read, matched
  as a search matches them (``mmcli.media.ocr.text``: folded, a substring of the picture's folded text;
  target >= 0.9), and matched exactly (the word, case-folded, a substring of the text as read);
- text-free pictures: the share with no text reported (target >= 0.95);
- search: an FTS5 trigram table over every picture's folded text, the picture's own word as the query
  (a word printed in no other picture), ranked by bm25: the share of queries whose picture comes first
  (target >= 0.95) and the mean reciprocal rank;
- folds: recall and first-place share for each set of confusable glyphs folded (which help, which hurt);
- cost: seconds per picture with text and without (wall time of the whole read over the count, and
  the median of each picture's own time when read one at a time).

``--engine`` reads with another engine to compare: ``rapidocr-onnxruntime`` (the 1.4 package, PP-OCRv4)
or ``tesseract`` (the ``tesseract`` command, Debian's tesseract-ocr, ``--psm 3``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_ocr_set import Label, make_set, read_labels  # noqa: E402

from mmcli.media.ocr.text import (  # noqa: E402
    CONFUSABLES,
    EXTRA_CONFUSABLES,
    fold_lines,
    fold_word,
    fts_query,
    whole_words,
)
from mmcli.results import TextLine  # noqa: E402

FOLDS: dict[str, dict[str, str]] = {
    "none": {},
    "O/0": {"0": "o"},
    "O/0 I/1/l (default)": CONFUSABLES,
    "+S/5": {**CONFUSABLES, "5": "s"},
    "+B/8": {**CONFUSABLES, "8": "b"},
    "+Z/2 G/6": {**CONFUSABLES, "2": "z", "6": "g"},
    "all": {**CONFUSABLES, **EXTRA_CONFUSABLES},
}


CPU: list[float] = []  # each picture's CPU seconds (this process, all its threads), one at a time


def read_mmcli(paths: Sequence[str], workers: int, threads: int) -> tuple[list[list[TextLine]], list[float], float]:
    """Each picture's lines (none for a failure), each picture's seconds (one at a time; none with
    ``workers`` > 1), and the whole run's seconds (the model load not counted)."""
    from mmcli.media.ocr.engine import load_engine
    from mmcli.media.ocr.reader import read_all, read_picture
    from mmcli.results import PictureText

    if workers > 1:
        start = time.perf_counter()
        read = read_all(paths, workers=workers, threads=threads)
        out = [list(r.lines) if isinstance(r, PictureText) else [] for r in read]
        return out, [], time.perf_counter() - start
    engine = load_engine(threads)
    lines, each = [], []
    start = time.perf_counter()
    for path in paths:
        t0, c0 = time.perf_counter(), time.process_time()
        lines.append(list(read_picture(path, engine).lines))
        each.append(time.perf_counter() - t0)
        CPU.append(time.process_time() - c0)
    return lines, each, time.perf_counter() - start


def other_engine(name: str) -> Callable[[str], list[str]]:
    """A function reading one file's lines with another engine (for the comparison)."""
    from mmcli.media.ocr.text import is_text

    if name == "rapidocr-onnxruntime":
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        return lambda path: [t for _, t, s in (engine(path)[0] or []) if is_text(t, float(s))]
    if name == "tesseract":
        import subprocess

        def tesseract(path: str) -> list[str]:
            tsv = subprocess.run(["tesseract", path, "stdout", "--psm", "3", "tsv"], capture_output=True, text=True)
            words = [f for f in (row.split("\t") for row in tsv.stdout.splitlines()[1:]) if len(f) == 12]
            return [f[11] for f in words if f[11].strip() and is_text(f[11], float(f[10]) / 100)]

        return tesseract
    raise SystemExit(f"unknown engine {name!r}")


def recall(labels: Sequence[Label], texts: Sequence[list[str]], folds: dict[str, str]) -> tuple[float, dict]:
    found = total = 0
    by_kind: dict[str, list[int]] = {}
    for label, lines in zip(labels, texts):
        if label.kind == "notext":
            continue
        folded = fold_lines(lines, folds)
        kind = by_kind.setdefault(label.kind, [0, 0])
        for word in label.words:
            hit = fold_word(word, folds) in folded
            found, total = found + hit, total + 1
            kind[0], kind[1] = kind[0] + hit, kind[1] + 1
    return found / max(1, total), {k: round(a / b, 3) for k, (a, b) in by_kind.items()}


def exact_recall(labels: Sequence[Label], texts: Sequence[list[str]]) -> float:
    pairs = [(w.casefold(), " ".join(t).casefold()) for lab, t in zip(labels, texts) for w in lab.words]
    return sum(w in t for w, t in pairs) / max(1, len(pairs))


def search(
    labels: Sequence[Label],
    texts: Sequence[list[str]],
    folds: dict[str, str],
    report: bool = False,
    rank_whole: bool = True,
) -> tuple[float, float]:
    """First-place share and mean reciprocal rank of each picture's unique word, over an FTS5 trigram table
    of every picture's folded text, ranked by whole-word matches, then bm25 (``rank_whole`` False: bm25)."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(folded, tokenize='trigram')")
    db.executemany(
        "INSERT INTO t(rowid, folded) VALUES (?, ?)", ((i, fold_lines(t, folds)) for i, t in enumerate(texts))
    )
    first = rr = n = 0
    for i, label in enumerate(labels):
        if label.unique is None:
            continue
        n += 1
        query = fts_query(label.unique, folds)
        rows = [r for (r,) in db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t)", (query,))]
        if rank_whole:  # whole words first, then bm25 (a stable sort keeps bm25's order within)
            rows.sort(key=lambda r: -whole_words(label.unique, texts[r], folds))
        if i in rows:
            rank = rows.index(i) + 1
            first += rank == 1
            rr += 1 / rank
            if rank > 1 and report:
                above = ", ".join(labels[r].file for r in rows[: rank - 1][:3])
                print(f"query {label.unique!r}: {label.file} ranked {rank} (below {above})", file=sys.stderr)
        elif report:
            print(f"query {label.unique!r}: {label.file} not found ({len(rows)} others)", file=sys.stderr)
    return first / max(1, n), rr / max(1, n)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, help="a set made by scripts/make_ocr_set.py (default: make one)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--notext", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1: one at a time)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per process (0: one per core)")
    parser.add_argument("--engine", default="mmcli")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--dump", type=Path, help="write each picture's lines (text, score) here, JSON Lines")
    parser.add_argument("--from-dump", type=Path, help="measure the lines of an earlier --dump (no reading)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmcli-ocr-set-") as tmp:
        folder = args.set or Path(tmp)
        if args.set is None:
            make_set(folder, args.count, args.notext, args.seed)
        labels = read_labels(folder)
        paths = [os.fspath(folder / label.file) for label in labels]
        if args.from_dump:
            with open(args.from_dump, encoding="utf-8") as f:
                dumped = {d["file"]: [text for text, _ in d["lines"]] for d in map(json.loads, f)}
            texts, each, wall = [dumped[label.file] for label in labels], [], 0.0
        elif args.engine == "mmcli":
            read_lines, each, wall = read_mmcli(paths, args.workers, args.threads)
            texts = [[line.text for line in lines] for lines in read_lines]
            if args.dump:  # (--from-dump FILE measures again from it, without reading)
                with open(args.dump, "w", encoding="utf-8") as f:
                    for label, lines in zip(labels, read_lines):
                        record = {"file": label.file, "words": label.words, "lines": [(x.text, x.score) for x in lines]}
                        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            read = other_engine(args.engine)
            texts, each = [], []
            start = time.perf_counter()
            for path in paths:
                t0 = time.perf_counter()
                texts.append(read(path))
                each.append(time.perf_counter() - t0)
            wall = time.perf_counter() - start
    blank = [not fold_lines(t) for lab, t in zip(labels, texts) if lab.kind == "notext"]
    with_text = [s for lab, s in zip(labels, each) if lab.kind != "notext"]
    without = [s for lab, s in zip(labels, each) if lab.kind == "notext"]
    word_recall, by_kind = recall(labels, texts, CONFUSABLES)
    first, mrr = search(labels, texts, CONFUSABLES, report=True)
    bm25_first, bm25_mrr = search(labels, texts, CONFUSABLES, rank_whole=False)
    figures = {
        "engine": args.engine,
        "pictures": len(labels),
        "with_text": len(labels) - len(blank),
        "word_recall": round(word_recall, 3),
        "word_recall_by_kind": by_kind,
        "word_recall_exact": round(exact_recall(labels, texts), 3),
        "no_text_on_text_free": round(sum(blank) / max(1, len(blank)), 3),
        "search_first": round(first, 3),
        "search_mrr": round(mrr, 3),
        "search_first_bm25_only": round(bm25_first, 3),
        "search_mrr_bm25_only": round(bm25_mrr, 3),
        "folds": {
            name: {
                "word_recall": round(recall(labels, texts, f)[0], 3),
                "search_first": round(search(labels, texts, f)[0], 3),
            }
            for name, f in FOLDS.items()
        },
        "workers": args.workers,
        "threads": args.threads,
        "seconds_per_picture": round(wall / len(labels), 3),
        "median_s_with_text": round(statistics.median(with_text), 3) if with_text else None,
        "median_s_without_text": round(statistics.median(without), 3) if without else None,
        "median_cpu_s_with_text": _median([c for lab, c in zip(labels, CPU) if lab.kind != "notext"]),
        "median_cpu_s_without_text": _median([c for lab, c in zip(labels, CPU) if lab.kind == "notext"]),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))
    missed = [
        (lab.file, w, " | ".join(t))
        for lab, t in zip(labels, texts)
        for w in lab.words
        if fold_word(w) not in fold_lines(t)
    ]
    for file, word, text in missed[:30]:
        print(f"missed {word!r} in {file}: read {text!r}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
