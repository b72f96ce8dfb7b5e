"""The bundled mmcli-tiny model classifies freshly generated shapes correctly, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY

from mmcli.cli import app
from mmcli.demo.shapes import COLOURS, SHAPES, all_specs


def _top_labels(runner, shapes_dir: Path, labels: list[str], template: str) -> dict[str, str]:
    result = runner.invoke(
        app,
        [
            "classify",
            str(shapes_dir),
            "--labels",
            *labels,
            "--template",
            template,
            "--model",
            TINY,
            "--top-k",
            "1",
            "-f",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 32
    return {Path(r["path"]).stem: r["labels"][0]["label"] for r in rows}


def test_colour_shape_and_both(runner, shapes_dir: Path) -> None:
    colour = _top_labels(runner, shapes_dir, list(COLOURS), "a photo of a {} shape.")
    shape = _top_labels(runner, shapes_dir, list(SHAPES), "a photo of a {}.")
    both = _top_labels(runner, shapes_dir, [s.label for s in all_specs()], "a photo of a {}.")
    names = [f"{s.colour}_{s.shape}" for s in all_specs()]
    acc_colour = sum(colour[n] == n.split("_")[0] for n in names) / 32
    acc_shape = sum(shape[n] == n.split("_")[1] for n in names) / 32
    acc_both = sum(both[n] == n.replace("_", " ") for n in names) / 32
    assert acc_colour >= 0.9, colour
    assert acc_shape >= 0.8, shape
    assert acc_both >= 0.75, both


def test_random_corpus_via_embed_and_text(runner, random_corpus) -> None:
    """Image and text embeddings from `mmcli embed` alone rank the right caption first."""
    import numpy as np

    paths = [str(p) for p, _ in random_corpus]
    img = runner.invoke(app, ["embed", *paths, "--model", TINY])
    assert img.exit_code == 0, img.stderr
    image_vecs = np.array([json.loads(line)["embedding"] for line in img.stdout.splitlines()])
    captions = [s.label for s in all_specs()]
    txt = runner.invoke(app, ["embed", "--text", *[f"a photo of a {c}." for c in captions], "--model", TINY])
    assert txt.exit_code == 0, txt.stderr
    text_vecs = np.array([json.loads(line)["embedding"] for line in txt.stdout.splitlines()])
    best = (image_vecs @ text_vecs.T).argmax(axis=1)
    correct = sum(captions[b] == spec.label for b, (_, spec) in zip(best, random_corpus))
    assert correct / len(random_corpus) >= 0.75


def test_multi_label_marks_the_right_attributes(runner, shapes_dir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "classify",
            str(shapes_dir / "yellow_star.jpg"),
            "--labels",
            "yellow",
            "star",
            "blue",
            "circle",
            "--template",
            "a photo of a {}.",
            "--multi-label",
            "--threshold",
            "0",
            "--model",
            TINY,
        ],
    )
    assert result.exit_code == 0, result.stderr
    scores = {x["label"]: x["score"] for x in json.loads(result.stdout)["labels"]}
    assert scores["yellow"] > scores["blue"] and scores["star"] > scores["circle"]
    assert abs(sum(scores.values()) - 1) > 1e-3  # independent scores, not a softmax


def test_demo_runs_offline(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--count", "8"])
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "demo").glob("*.jpg"))) == 8
    correct = int(result.stderr.split("/8 top labels")[0].split()[-1])
    assert correct >= 6
