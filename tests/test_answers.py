"""Better answers from `mmcli search`: ``--threshold auto`` (its targets on labelled shapes), ``--explain``
(each term's part in each score) and ``--rerank MODEL`` (a second real model re-scores the best hits:
compared with brute force under that model)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import TINY, run_mmcli
from second_model import write_second_model

from mmcli.engine.cutoff import choose_cutoff

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "eval_threshold.py"
COUNT, SEED = 120, 3  # a small labelled corpus: 32 colour x shape kinds, about 4 of each
CPU = ("--device", "cpu", "--precision", "fp32")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_threshold", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_threshold"] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    script = _script()
    index, written = script.build(tmp_path_factory.mktemp("answers"), COUNT, SEED, TINY)
    return index, written, script


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_second_model(tmp_path_factory.mktemp("second") / "tiny-moved")


def _search(index: Path, *args: str) -> list[dict]:
    proc = run_mmcli("search", *args, "--index", str(index), *CPU, "-f", "json")
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _encoder(model: str):  # noqa: ANN202
    from mmcli.models import load_encoder, parse_model_spec

    return load_encoder(parse_model_spec(model), device="cpu", precision="fp32")


def _embedded(encoder, paths: list[str]) -> dict[str, np.ndarray]:  # noqa: ANN001
    from mmcli.embedding.batch import embed_stream

    return {p: r.vector for p, r in zip(paths, embed_stream(encoder, paths, workers=1))}


def _in_order(scores: list[float]) -> bool:
    """Best first (ties within float noise may come either way)."""
    return all(a >= b - 1e-5 for a, b in zip(scores, scores[1:]))


# --------------------------------------------------------------------------------- --threshold auto
def test_auto_threshold_meets_its_targets_on_labelled_shapes(corpus) -> None:
    index, written, script = corpus
    results = script.evaluate(index, written, "all")  # the 44 kinds of shape, and 6 texts none matches
    average = script.summary(results, COUNT)
    assert average["recall"] >= 0.9 and average["precision"] >= 0.9, average
    assert all(r.kept < COUNT for r in results) and average["kept_fraction"] < 0.2  # it does cut
    assert average["none_queries"] and average["none_kept_max"] <= 2, average  # no match: (almost) nothing


def _said_cut(stderr: bytes) -> tuple[float, str]:
    """The cut-off and the rule that chose it, from ``mmcli: --threshold auto: 0.3870 (a gap after ...)``."""
    found = re.fullmatch(r"mmcli: --threshold auto: (-?[0-9.]+) \((.+)\)", stderr.decode().splitlines()[0])
    assert found, stderr
    return float(found[1]), found[2]


def test_auto_threshold_on_the_command_line(corpus) -> None:
    index, written, _ = corpus
    proc = run_mmcli("search", "a yellow star", "--index", str(index), "--threshold", "auto", "-k", "100", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    cut, why = _said_cut(proc.stderr)
    assert why.startswith(("a gap after the ", "no gap: the background's tail would reach it")), why  # the rule
    hits = json.loads(proc.stdout)
    assert hits and all(h["score"] >= cut for h in hits) and len(hits) < COUNT
    stars = {str(p) for p, spec in written if (spec.colour, spec.shape) == ("yellow", "star")}
    assert {h["path"] for h in hits} <= stars and len(hits) >= len(stars) - 1  # (one: 0.36; others 0.44, next 0.23)
    bad = run_mmcli("search", "a star", "--index", str(index), "--threshold", "high")
    assert bad.returncode == 2 and b"not a number or 'auto'" in bad.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """`mmcli demo`'s own 48 images (seed 7), indexed."""
    script = _script()
    return script.build(tmp_path_factory.mktemp("demo"), 48, 7, TINY)


def test_the_demos_one_clear_match_is_kept_and_a_query_without_one_keeps_nothing(demo) -> None:
    index, written = demo
    kinds = {(s.colour, s.shape) for _, s in written}
    squares = [str(p) for p, s in written if (s.colour, s.shape) == ("blue", "square")]
    assert len(squares) == 1  # (issue 31: its only match, 0.444, the next 0.128; the old cut-off was 0.631)
    proc = run_mmcli("search", "a blue square", "--index", str(index), "--threshold", "auto", "-k", "48", "-f", "json")
    cut, why = _said_cut(proc.stderr)
    assert [h["path"] for h in json.loads(proc.stdout)] == squares and why == "a gap after the 1st best"
    absent = [f"a {c} {s}" for c in ("green", "yellow", "orange", "purple") for s in ("triangle", "star")]
    absent = [q for q in absent if tuple(q.split()[1:]) not in kinds]
    assert len(absent) >= 3  # queries that match none of the 48 (the old rule kept up to 14)
    for query in [*absent, "a photo of a dog"]:
        proc = run_mmcli("search", query, "--index", str(index), "--threshold", "auto", "-k", "48", "-f", "json")
        assert proc.returncode == 0, proc.stderr
        assert len(json.loads(proc.stdout)) <= 1, query


def test_copies_of_one_picture_are_kept_or_dropped_together(demo, tmp_path: Path) -> None:
    from mmcli.demo.shapes import ShapeSpec, draw_shape

    _, written = demo
    photos = tmp_path / "photos"
    photos.mkdir()
    for path, _ in written[1:4]:
        shutil.copyfile(path, photos / path.name)
    original, spec = written[0]
    for i in range(6):
        shutil.copyfile(original, photos / f"copy{i}.jpg")  # six byte-identical copies (one batch: float noise)
    index = tmp_path / "index"
    assert run_mmcli("index", str(photos), "--index", str(index), "--model", TINY, *CPU).returncode == 0
    similar = tmp_path / "similar.jpg"
    draw_shape(ShapeSpec(spec.colour, spec.shape), size=160, seed=99).save(similar, quality=92)  # not a copy
    proc = run_mmcli("search", str(similar), "--index", str(index), "--threshold", "auto", "-k", "60", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    kept = {Path(h["path"]).name for h in json.loads(proc.stdout)}
    copies = {f"copy{i}.jpg" for i in range(6)}
    assert copies <= kept or not copies & kept, kept  # all six equal scores, or none


def test_equal_scores_are_one_score_whatever_the_float_rounding() -> None:
    # six copies embedded in one batch differ by a float32 step (6e-8): their scores too (issue 28.6)
    ulp = np.float32(6e-8)
    rng = np.random.default_rng(0)
    for steps, others in (
        ((1, -1, -1, 0, 0, 0), (0.143,)),  # the old rule kept 4 of the 6
        ((0, 0, 0, 0, -1, 1), (0.357,)),  # ... and 5
        *(((tuple(rng.integers(-1, 2, 6))), tuple(rng.uniform(0.1, 0.45, rng.integers(1, 30)))) for _ in range(100)),
    ):
        copies = (np.float32(0.3762) + ulp * np.asarray(steps, dtype=np.float32)).astype(np.float64)
        scores = np.r_[copies, others]  # a small index: the head and the background are all of it
        cut = choose_cutoff(scores, scores).threshold
        assert (copies >= cut).all() or (copies < cut).all(), (steps, others, cut)
        assert np.abs(scores - cut).min() > 4e-6  # never within float noise of a score


def test_a_lone_best_score_that_stands_apart_is_kept() -> None:
    # the demo's "a blue square" (issue 31): 0.444, then 0.128 and the other shapes
    rng = np.random.default_rng(1)
    rest = np.concatenate([rng.uniform(-0.02, 0.13, 17), rng.uniform(-0.7, -0.27, 30)])
    scores = np.concatenate([[0.444], rest])
    cut = choose_cutoff(scores, scores)
    assert cut.rule == "break" and cut.above == 1 and 0.13 < cut.threshold < 0.444
    assert cut.why == "a gap after the 1st best"
    lone = choose_cutoff(np.r_[0.99, np.sort(background_of(1_000_000))[-999:]], background_of(2048))
    assert lone.above == 1 and lone.threshold < 0.99  # never above a best score that stands apart


def background_of(n: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.20, 0.03, n)


def test_a_query_that_matches_nothing_keeps_about_nothing_in_any_size_of_index() -> None:
    for n in (30, 100, 10_000, 1_000_000):
        scores = background_of(n)
        head = np.sort(scores)[-min(1000, n) :]
        cut = choose_cutoff(head, scores[np.linspace(0, n - 1, min(2048, n)).astype(int)])
        assert (scores >= cut.threshold).sum() <= 2, (n, cut)  # the old floor kept 1,350 of 1,000,000
        assert cut.rule == "break" or cut.why.startswith("no gap: the background's tail would reach it")


def test_several_matches_are_kept_even_where_their_best_stands_apart() -> None:
    scores = background_of(1_000_000)
    matches = np.r_[0.62, np.linspace(0.50, 0.53, 11)]  # the best one far above the eleven others
    scores[:12] = matches
    head = np.sort(scores)[-1000:]
    cut = choose_cutoff(head, scores[np.linspace(0, len(scores) - 1, 2048).astype(int)])
    assert (scores >= cut.threshold).sum() == 12 and cut.rule == "floor", cut
    assert "below a gap after the 1st best" in cut.why


def test_the_querys_own_vector_does_not_hide_its_neighbours() -> None:
    rng = np.random.default_rng(3)
    background = rng.normal(0.4, 0.05, 300)
    head = np.r_[1.0, 0.93, 0.92, 0.915, np.sort(background)[::-1]]  # itself, three near-copies, the rest
    cut = choose_cutoff(head, np.r_[head[:4], background])
    assert cut.above == 4 and cut.rule == "break" and cut.why == "a gap after the 4th best"


def test_a_break_in_the_scores_is_the_cut() -> None:
    rng = np.random.default_rng(0)
    background = rng.normal(0.15, 0.03, 5000)
    head = np.concatenate([rng.normal(0.40, 0.005, 12), np.sort(background)[-488:]])
    cut = choose_cutoff(head, background[::3])
    assert cut.rule == "break" and cut.above == 12
    assert background.max() < cut.threshold < head[:12].min()


def test_an_empty_or_tiny_index() -> None:
    assert choose_cutoff(np.zeros(0), np.zeros(0)).above == 0  # an empty index: nothing
    few = choose_cutoff(np.array([0.3, 0.2]), np.array([0.3, 0.2]))
    assert few.rule == "few" and few.above == 2 and few.why == "too few scores to judge: all kept"


def test_the_synthetic_evaluation_runs(corpus) -> None:
    _, _, script = corpus
    rows = script.synthetic(sizes=(10_000,), seeds=1)
    assert {(r["law"], r["case"]) for r in rows} >= {("normal", "none"), ("normal", "one"), ("gumbel", "several")}
    normal = {r["case"]: r for r in rows if r["law"] == "normal"}
    assert normal["none"]["kept_max"] <= 2 and normal["one"]["recall"] == normal["one"]["precision"] == 1.0


def test_the_background_is_a_sample_spread_over_the_index(corpus) -> None:
    from mmcli.index.store import Store

    index, _, _ = corpus
    store = Store(index, create=False)
    every = np.concatenate([vecs for _, vecs in store.vectors()])
    assert np.array_equal(store.spread(2048), every)  # a small index: all of it
    some = store.spread(30)
    assert len(some) == 30 and all((every == row).all(axis=1).any() for row in some)
    assert not np.array_equal(some, every[:30])  # spread over it, not its first rows
    store.close()


# ---------------------------------------------------------------------------------------- --explain
def test_explain_gives_each_terms_cosine_with_the_hit(corpus) -> None:
    from mmcli.index.store import Store

    index, written, _ = corpus
    example = str(written[0][0])
    hits = _search(index, "a circle", "--add", "2:blue", "--sub", example, "-k", "8", "--explain")
    encoder = _encoder(TINY)
    texts = encoder.encode_texts(["a circle", "blue"])
    store = Store(index, create=False)

    def indexed(path: str) -> np.ndarray:
        st = os.stat(path)
        return np.frombuffer(store.vector_if_unchanged(path, st.st_size, st.st_mtime_ns), dtype=np.float32)

    terms = np.stack([texts[0], texts[1], indexed(example)])
    weights = np.array([1.0, 2.0, -1.0])
    norm = float(np.linalg.norm(weights @ terms))
    for hit in hits:
        parts = hit["explain"]
        assert [(p["term"], p["weight"]) for p in parts] == [("a circle", 1.0), ("blue", 2.0), (example, -1.0)]
        assert set(parts[0]) == {"term", "weight", "cosine"}
        expected = terms @ indexed(hit["path"])
        np.testing.assert_allclose([p["cosine"] for p in parts], expected, atol=1e-4)
        assert hit["score"] == pytest.approx(float(weights @ expected) / norm, abs=1e-4)  # they make the score
    store.close()


def test_without_explain_the_output_is_as_before(corpus, runner) -> None:
    from mmcli.cli import app

    index, _, _ = corpus
    plain = _search(index, "a red square", "-k", "3")
    assert plain and all("explain" not in h for h in plain)
    csv = run_mmcli("search", "a red square", "--index", str(index), "-k", "3", "--explain", "-f", "csv")
    assert csv.stdout.decode().splitlines()[0] == "rank,path,time,score,taken,taken_source"
    args = ["search", "a square", "--add", "2:red", "--index", str(index), "-k", "3", "--explain", "-f", "table"]
    table = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert table.exit_code == 0, table.output
    assert "explain" in table.stdout and "a square " in table.stdout and "2\u00d7red " in table.stdout


# ----------------------------------------------------------------------------------------- --rerank
def test_rerank_orders_exactly_as_brute_force_under_the_second_model(corpus, second: str) -> None:
    index, written, _ = corpus
    everything = ("-k", str(COUNT), "--rerank-k", str(COUNT))
    hits = _search(index, "a red circle", "--rerank", second, *everything)
    encoder = _encoder(second)
    q = encoder.encode_texts(["a red circle"])[0]
    truth = {p: float(v @ q) for p, v in _embedded(encoder, [str(p) for p, _ in written]).items()}
    assert sorted(h["path"] for h in hits) == sorted(truth)
    np.testing.assert_allclose([h["score"] for h in hits], [truth[h["path"]] for h in hits], atol=1e-4)
    assert _in_order([truth[h["path"]] for h in hits])  # the second model's order, over everything
    plain = _search(index, "a red circle", "-k", str(COUNT))
    assert [h["path"] for h in plain] != [h["path"] for h in hits]  # which is not the index's


def test_rerank_reorders_the_index_top_n_only(corpus, second: str) -> None:
    index, _, _ = corpus
    first = [h["path"] for h in _search(index, "a blue star", "-k", "20")]
    hits = _search(index, "a blue star", "-k", "5", "--rerank", second, "--rerank-k", "20")
    encoder = _encoder(second)
    q = encoder.encode_texts(["a blue star"])[0]
    truth = {p: float(v @ q) for p, v in _embedded(encoder, first).items()}
    best = sorted(first, key=lambda p: -truth[p])[:5]
    assert len(hits) == 5 and {h["path"] for h in hits} <= set(first)
    np.testing.assert_allclose([h["score"] for h in hits], [truth[p] for p in best], atol=1e-4)


def test_rerank_embeds_image_terms_with_the_second_model_and_explains_with_it(corpus, second: str) -> None:
    index, written, _ = corpus
    example = str(written[5][0])
    hits = _search(index, "--image", example, "-k", "10", "--rerank", second, "--rerank-k", "40", "--explain")
    encoder = _encoder(second)
    vecs = _embedded(encoder, [example, *(h["path"] for h in hits)])
    for hit in hits:
        assert hit["path"] != example  # the query's own image is left out, as without --rerank
        assert hit["score"] == pytest.approx(float(vecs[hit["path"]] @ vecs[example]), abs=1e-4)
        assert hit["explain"][0]["cosine"] == pytest.approx(hit["score"], abs=1e-4)
    assert _in_order([h["score"] for h in hits])


def test_rerank_keeps_vectors_beside_the_index_so_a_repeat_embeds_nothing(corpus, second: str, monkeypatch) -> None:
    from mmcli.engine import rerank
    from mmcli.engine.local import LocalEngine
    from mmcli.queries import SearchRequest, build_terms

    index, _, _ = corpus
    shutil.rmtree(index / "rerank", ignore_errors=True)
    embedded: list[int] = []
    real = rerank._embed

    def counting(model, hits, max_pixels):  # noqa: ANN001, ANN202
        embedded.append(len(hits))
        return real(model, hits, max_pixels)

    monkeypatch.setattr(rerank, "_embed", counting)
    request = SearchRequest(build_terms("a green square", None), top_k=5, rerank=second, rerank_k=15)
    first = LocalEngine(index, device="cpu", precision="fp32").search(request)
    again = LocalEngine(index, device="cpu", precision="fp32").search(request)  # as a new process would
    assert embedded == [15, 0] and again.hits == first.hits
    assert len(list((index / "rerank").glob("*.sqlite"))) == 1
    changed = first.hits[0].path
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a file that changed is embedded again
    LocalEngine(index, device="cpu", precision="fp32").search(request)
    assert embedded[-1] == 1


def test_a_hit_whose_file_is_gone_is_left_out_of_a_rerank_with_a_warning(tmp_path: Path, second: str) -> None:
    from mmcli.demo.shapes import write_corpus
    from mmcli.engine.local import LocalEngine
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.queries import SearchRequest, build_terms

    written = write_corpus(tmp_path / "photos", 8, seed=11)
    run_index(tmp_path / "index", IndexJob([str(tmp_path / "photos")], model=TINY, device="cpu", precision="fp32"))
    engine = LocalEngine(tmp_path / "index", device="cpu", precision="fp32")
    request = SearchRequest(build_terms("a shape", None), top_k=8, rerank=second)
    first = engine.search(request)
    gone = first.hits[0].path
    os.unlink(gone)
    result = engine.search(request)
    assert len(result.hits) == len(written) - 1 and gone not in {h.path for h in result.hits}
    assert any("could not be re-ranked" in w and gone in w for w in result.warnings), result.warnings


def _strict_json(data: bytes) -> list[dict]:
    """JSON as the standard has it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the output")

    return json.loads(data, parse_constant=refuse)


def test_a_damaged_rerank_cache_is_embedded_again(corpus, second: str) -> None:
    import sqlite3

    index, _, _ = corpus
    args = ("search", "a red star", "--index", str(index), "--rerank", second, "--rerank-k", "12", "-k", "12", *CPU)
    shutil.rmtree(index / "rerank", ignore_errors=True)  # (the cache then holds this search's rows only)
    clean = run_mmcli(*args, "-f", "json")
    assert clean.returncode == 0, clean.stderr
    (cache,) = (index / "rerank").glob("*.sqlite")
    db = sqlite3.connect(cache)
    rows = db.execute("SELECT rowid, vector FROM vectors").fetchall()
    dim = len(rows[0][1]) // 4
    damage = [
        np.ones(3, np.float32).tobytes(),  # a vector of the wrong length (issue 28.5: a matmul traceback)
        np.full(dim, np.nan, np.float32).tobytes(),  # NaN (issue 28.5: "score": NaN in JSON Lines)
        np.full(dim, 5.0, np.float32).tobytes(),  # not of unit length
        b"\x00" * (4 * dim + 2),  # not whole floats
    ]
    with db:
        for (rowid, _), bad in zip(rows, damage * len(rows)):
            db.execute("UPDATE vectors SET vector = ? WHERE rowid = ?", (bad, rowid))
    db.close()
    for fmt in ("json", "jsonl"):
        again = run_mmcli(*args, "-f", fmt)
        assert again.returncode == 0 and b"Traceback" not in again.stderr, again.stderr
        lines = again.stdout.splitlines()
        hits = _strict_json(again.stdout) if fmt == "json" else [_strict_json(line) for line in lines]
        assert [(h["path"], h["score"]) for h in hits] == [(h["path"], h["score"]) for h in _strict_json(clean.stdout)]
    db = sqlite3.connect(cache)
    for (vector,) in db.execute("SELECT vector FROM vectors"):  # each damaged row was replaced
        v = np.frombuffer(vector, np.float32)
        assert len(vector) == 4 * dim and np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-3
    db.close()


def test_a_rerank_model_that_does_not_load_leaves_nothing_beside_the_index(corpus) -> None:
    index, _, _ = corpus
    shutil.rmtree(index / "rerank", ignore_errors=True)
    proc = run_mmcli("search", "a star", "--index", str(index), "--rerank", "ViT-B-32:openai", *CPU)  # offline
    assert proc.returncode == 1 and b"cannot get the weights" in proc.stderr, proc.stderr
    assert not (index / "rerank").exists() or not any((index / "rerank").iterdir())


def test_no_score_that_is_not_a_number_is_ever_output(tmp_path: Path) -> None:
    from mmcli.cli.output import json_line
    from mmcli.demo.shapes import write_corpus
    from mmcli.errors import NotANumber
    from mmcli.index.store import Store
    from mmcli.results import Hit

    with pytest.raises(NotANumber):
        Hit(1, "x.jpg", None, float("nan"))  # the last line of defence: the type refuses it
    with pytest.raises(NotANumber):
        json_line({"score": float("inf")})  # and the renderer
    photos = tmp_path / "photos"
    written = write_corpus(photos, 6, seed=5)
    index = tmp_path / "index"
    assert run_mmcli("index", str(photos), "--index", str(index), "--model", TINY, *CPU).returncode == 0
    store = Store(index, create=False)
    damaged = str(written[0][0])
    st = os.stat(damaged)
    dim = int(store.meta()["dim"])
    store.put_ok(damaged, st.st_size, st.st_mtime_ns, None, np.full(dim, np.nan, np.float32).tobytes(), None)
    store.close()
    for extra in ((), ("--exact",), ("--in", str(photos)), ("--explain",)):
        proc = run_mmcli("search", "a shape", "--index", str(index), "-k", "6", "-f", "jsonl", *extra, *CPU)
        assert b"Traceback" not in proc.stderr, proc.stderr
        for line in proc.stdout.splitlines():
            assert math.isfinite(_strict_json(line)["score"])
        assert proc.returncode == 0 or b"is not a number" in proc.stderr, proc.stderr


def test_a_vector_the_model_gives_as_nan_is_a_failed_file_never_stored(tmp_path: Path, monkeypatch) -> None:
    from mmcli.demo.shapes import write_corpus
    from mmcli.embedding.batch import embed_stream
    from mmcli.index.job import IndexJob
    from mmcli.index.store import Store
    from mmcli.index.sync import run_index
    from mmcli.models import load_encoder, parse_model_spec
    from mmcli.models.encoder import Encoder
    from mmcli.results import NOT_A_NUMBER, FileFailure, ImageVector

    written = write_corpus(tmp_path / "photos", 5, seed=8)
    real = Encoder.encode_images

    def poisoned(self, pixels):  # noqa: ANN001, ANN202 - the first image of each batch comes out as NaN
        vectors = real(self, pixels).copy()
        vectors[0] = np.nan
        return vectors

    monkeypatch.setattr(Encoder, "encode_images", poisoned)
    encoder = load_encoder(parse_model_spec(TINY), device="cpu", precision="fp32")
    results = list(embed_stream(encoder, [str(p) for p, _ in written], batch_size=8, workers=1))
    assert isinstance(results[0], FileFailure) and results[0].reason == NOT_A_NUMBER
    assert all(isinstance(r, ImageVector) and np.isfinite(r.vector).all() for r in results[1:])
    job = IndexJob([str(tmp_path / "photos")], model=TINY, device="cpu", precision="fp32")
    summary = run_index(tmp_path / "index", job)
    assert summary.failed == 1 and summary.added == 4
    store = Store(tmp_path / "index", create=False)
    assert all(np.isfinite(vecs).all() for _, vecs in store.vectors())
    store.close()


def test_rerank_errors_are_usage_errors(corpus, tmp_path: Path) -> None:
    index, _, _ = corpus
    for args, message in (
        (["--rerank", "no-such-model"], b"unknown model"),
        (["--rerank-weights", str(tmp_path / "w.safetensors")], b"--rerank-weights needs --rerank"),
        (["--rerank", "local-dir:" + str(tmp_path / "none")], b""),
    ):
        proc = run_mmcli("search", "a star", "--index", str(index), *args)
        assert proc.returncode != 0 and proc.stderr.startswith(b"mmcli: error: ") and message in proc.stderr


def test_rerank_embeds_a_video_at_its_moment(tmp_path: Path, second: str, shapes_dir: Path) -> None:
    pytest.importorskip("av")
    from videos import write_video

    from mmcli.engine.local import LocalEngine
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.media.video import sample_video
    from mmcli.queries import SearchRequest, build_terms

    folder = tmp_path / "media"
    folder.mkdir()
    video = write_video(folder / "scenes.mp4")
    shutil.copy(shapes_dir / "blue_square.jpg", folder / "blue_square.jpg")
    run_index(tmp_path / "index", IndexJob([str(folder)], model=TINY, device="cpu", precision="fp32", workers=1))
    request = SearchRequest(build_terms("a blue square", None), top_k=20, all_moments=True, rerank=second)
    hits = LocalEngine(tmp_path / "index", device="cpu", precision="fp32", workers=1).search(request).hits
    encoder = _encoder(second)
    q = encoder.encode_texts(["a blue square"])[0]
    moments = list(sample_video(video, min_side=encoder.preprocess.min_side))
    frames = encoder.encode_images(np.stack([encoder.preprocess.to_array(m.image) for m in moments]))
    truth = {round(m.time, 3): float(v @ q) for m, v in zip(moments, frames)}
    truth[None] = float(_embedded(encoder, [str(folder / "blue_square.jpg")])[str(folder / "blue_square.jpg")] @ q)
    assert len(hits) == len(truth)
    for hit in hits:
        assert hit.score == pytest.approx(truth[None if hit.time is None else round(hit.time, 3)], abs=1e-4)
    assert _in_order([h.score for h in hits])


@pytest.mark.slow
def test_rerank_with_an_open_clip_architecture_and_a_weights_file(corpus, tmp_path_factory) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    index, _, _ = corpus
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-256")  # random stand-in weights, loaded through --rerank-weights
    weights = tmp_path_factory.mktemp("standin") / "vit-b-32-256-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    del model
    first = [h["path"] for h in _search(index, "a red circle", "-k", "30")]
    args = ("--rerank", "ViT-B-32-256", "--rerank-weights", str(weights), "--rerank-k", "30")
    hits = _search(index, "a red circle", "-k", "10", *args)
    from mmcli.models import load_encoder, parse_model_spec

    encoder = load_encoder(parse_model_spec("ViT-B-32-256", weights), device="cpu", precision="fp32")
    q = encoder.encode_texts(["a red circle"])[0]
    truth = {p: float(v @ q) for p, v in _embedded(encoder, first).items()}
    best = sorted(first, key=lambda p: -truth[p])[:10]
    assert {h["path"] for h in hits} <= set(first)
    np.testing.assert_allclose([h["score"] for h in hits], [truth[p] for p in best], atol=1e-4)
