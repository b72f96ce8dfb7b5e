"""Scoring formulas, labels and templates (pure logic, checked against direct computation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmcli.cli.inputs import collect_labels, read_labels_file
from mmcli.config import template_sets
from mmcli.engine.classify import LabelSet, clean_labels, fill, rank, score, sigmoid, softmax
from mmcli.errors import UsageError


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _label_set(n: int, d: int = 8, seed: int = 0) -> LabelSet:
    rng = np.random.default_rng(seed)
    vecs = _unit(rng.normal(size=(n + 1, d)))
    return LabelSet(tuple(f"l{i}" for i in range(n)), ("{}",), vecs[:n], vecs[n])


def test_softmax_scores_equal_direct_formula() -> None:
    ls = _label_set(5)
    img = _unit(np.random.default_rng(1).normal(size=(3, 8)))
    got = score(img, ls, logit_scale=50.0, logit_bias=None)
    logits = 50.0 * img.astype(np.float64) @ ls.vectors.T.astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(got, expected, atol=1e-12)
    assert np.allclose(got.sum(axis=1), 1)


def test_siglip_multi_label_is_sigmoid_with_bias() -> None:
    ls = _label_set(4)
    img = _unit(np.random.default_rng(2).normal(size=(2, 8)))
    got = score(img, ls, logit_scale=10.0, logit_bias=-3.0, multi_label=True)
    expected = 1 / (1 + np.exp(-(10.0 * img @ ls.vectors.T - 3.0)))
    assert np.allclose(got, expected, atol=1e-6)


def test_clip_multi_label_compares_with_neutral_prompt() -> None:
    ls = _label_set(3)
    img = _unit(np.random.default_rng(3).normal(size=(2, 8)))
    got = score(img, ls, logit_scale=20.0, logit_bias=None, multi_label=True)
    cos = img @ ls.vectors.T
    neutral = img @ ls.neutral
    expected = 1 / (1 + np.exp(-20.0 * (cos - neutral[:, None])))
    assert np.allclose(got, expected, atol=1e-6)
    assert not np.allclose(got.sum(axis=1), 1)  # independent, not a distribution


def test_softmax_sigmoid_stable_for_large_logits() -> None:
    assert np.isfinite(softmax(np.array([[1000.0, -1000.0]]))).all()
    assert sigmoid(np.array([1000.0, -1000.0])).tolist() == [1.0, 0.0]


def test_rank_sorts_filters_and_cuts() -> None:
    c = rank("p.jpg", np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], top_k=2, threshold=None)
    assert [x.label for x in c.labels] == ["b", "c"]
    c = rank("p.jpg", np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], top_k=None, threshold=0.25)
    assert [x.label for x in c.labels] == ["b", "c"]


def test_fill_keeps_braces_in_labels() -> None:
    assert fill("a photo of a {}.", "{x} {0}") == "a photo of a {x} {0}."


def test_clean_labels_drops_empty_and_duplicates() -> None:
    labels, notes = clean_labels(["cat", " cat ", "", "\ufeffdog", "dog"])
    assert labels == ["cat", "dog"]
    assert len(notes) == 3


def test_labels_comma_split_and_file_with_bom_crlf(tmp_path: Path) -> None:
    f = tmp_path / "labels.txt"
    f.write_bytes("\ufeffcat\r\ndog\r\n# comment\r\n\r\nred car\r\n".encode("utf-8"))
    assert read_labels_file(f) == ["cat", "dog", "red car"]
    assert collect_labels(["a,b", "c"], f) == ["a", "b", "c", "cat", "dog", "red car"]
    with pytest.raises(UsageError):
        collect_labels([",", " "], None)


def test_template_sets_are_complete() -> None:
    sets = template_sets()
    assert len(sets["imagenet"]) == 80 and len(sets["simple"]) == 7
    assert sets["default"] == ["a photo of a {}."] and sets["raw"] == ["{}"]
    assert all("{}" in t for ts in sets.values() for t in ts)
