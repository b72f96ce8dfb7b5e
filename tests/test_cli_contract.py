"""The CLI contract: instant help, data-only stdout, one-line errors, exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

from mmcli.cli import app
from mmcli.cli.options import expand_multi_values


@pytest.mark.parametrize("command", ["classify", "embed", "models", "demo"])
def test_every_command_has_help_with_an_example(runner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["a.jpg", "b.jpg", "--labels", "cat", "dog", "-f", "csv"],
        ["--labels", "cat", "dog", "--", "a.jpg"],
        ["--labels", "cat", "dog", "-"],
    ],
)
def test_multi_value_labels(args: list[str]) -> None:
    out = expand_multi_values(args)
    i = out.index("--labels")
    assert out[i : i + 4] == ["--labels", "cat", "--labels", "dog"]


def test_labels_as_typed_in_the_issue(runner, shapes_dir: Path) -> None:
    img = str(shapes_dir / "red_circle.jpg")
    for labels in (
        ["--labels", "red", "blue"],
        ["--labels", "red,blue"],
        ["--labels", "red", "--labels", "blue"],
        ["-l", "red", "blue"],
    ):
        result = runner.invoke(app, ["classify", img, *labels, "--model", TINY, "--template", "a {} shape"])
        assert result.exit_code == 0, result.stderr
        row = json.loads(result.stdout)
        assert [x["label"] for x in row["labels"]] == ["red", "blue"]
        assert row["labels"][0]["score"] > 0.9


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "x.jpg"], "no labels given"),
        (["classify", "x.jpg", "--labels", "a", "-f", "xml"], "unknown format"),
        (["classify", "--labels", "a"], "no inputs given"),
        (["classify", "x.jpg", "--labels", "a", "--template", "no placeholder"], "has no {}"),
        (["classify", "x.jpg", "--labels", "a", "--templates", "nope"], "unknown template set"),
        (["classify", "x.jpg", "--labels", "a", "--template", "{}", "--templates", "simple"], "not both"),
        (["classify", "x.jpg", "--labels", "a", "--model", "ViT-B-32"], "no pretrained tag"),
        (["classify", "x.jpg", "--labels", "a", "--device", "tpu"], "unknown device"),
        (["embed", "x.jpg", "--text", "a"], "not both"),
        (["classify", "-", "-0", "--labels", "a"], "NUL-separated paths on stdin are -z"),
        (["embed", "-", "-0"], "NUL-separated paths on stdin are -z"),
        (["search", "a", "-0", "-f", "csv"], "cannot be combined"),
        (["info", "-f", "urls"], "unknown format"),
    ],
)
def test_usage_errors_exit_2(runner, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("mmcli: error: ")
    assert message in result.stderr


def test_click_usage_error_exits_2(runner) -> None:
    result = runner.invoke(app, ["classify", "--top-k", "0", "x.jpg", "--labels", "a"])
    assert result.exit_code == 2


def test_nothing_classified_exits_1(runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = runner.invoke(app, ["classify", str(bad), "--labels", "a", "b", "--model", TINY])
    assert result.exit_code == 1
    assert "bad.jpg: not an image" in result.stderr
    assert "mmcli: error: no image could be classified (1 failed)" in result.stderr
    assert result.stdout == ""


def test_empty_folder_exits_1(runner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["classify", str(tmp_path), "--labels", "a", "--model", TINY])
    assert result.exit_code == 1
    assert "no image files found" in result.stderr


def test_piped_stdout_is_only_jsonl_and_bad_files_are_reported(shapes_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    truncated = (shapes_dir / "blue_star.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(truncated[: len(truncated) // 2])
    good = [shapes_dir / "red_circle.jpg", shapes_dir / "green_square.jpg"]
    inputs = [
        str(good[0]),
        str(tmp_path / "empty.jpg"),
        str(tmp_path / "text.png"),
        str(tmp_path / "trunc.jpg"),
        str(good[1]),
        str(tmp_path / "missing.jpg"),
    ]
    proc = run_mmcli("classify", *inputs, "--labels", "red circle", "green square", "--model", TINY)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["path"] for r in rows] == [str(g) for g in good]
    assert rows[0]["labels"][0]["label"] == "red circle"
    assert rows[1]["labels"][0]["label"] == "green square"
    err = proc.stderr.decode().splitlines()
    assert len(err) == 4, err
    assert any("empty.jpg: empty file" in e for e in err)
    assert any("text.png: not an image" in e for e in err)
    assert any("trunc.jpg: truncated" in e for e in err)
    assert any("missing.jpg: no such file" in e for e in err)
    assert "Traceback" not in proc.stderr.decode()


def test_stdin_paths_newline_and_nul(shapes_dir: Path) -> None:
    paths = [shapes_dir / "red_star.jpg", shapes_dir / "blue_circle.jpg"]
    for sep, extra in ((b"\n", []), (b"\0", ["-z"])):
        data = sep.join(str(p).encode() for p in paths) + sep
        proc = run_mmcli("classify", "-", *extra, "--labels", "red star", "blue circle", "--model", TINY, stdin=data)
        assert proc.returncode == 0, proc.stderr.decode()
        rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        assert [r["path"] for r in rows] == [str(p) for p in paths]
        assert [r["labels"][0]["label"] for r in rows] == ["red star", "blue circle"]


def test_model_unavailable_offline_is_one_line_with_hint(runner, shapes_dir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "classify",
            str(shapes_dir / "red_star.jpg"),
            "--labels",
            "a",
            "b",
            "--model",
            "ViT-B-32-256:datacomp_s34b_b86k",
        ],
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("mmcli: error: cannot get the weights of ViT-B-32-256:datacomp_s34b_b86k")
    assert lines[1].startswith("hint: ") and "--weights FILE" in lines[1] and "mmcli-tiny" in lines[1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "model, code, message",
    [
        ("ViT-B-32-256:no_such_tag", 2, "unknown pretrained tag 'no_such_tag'"),  # every unknown model: 2
        ("NoSuchArch:tag", 2, "unknown open_clip architecture"),
        ("mmcli-tinny", 2, "did you mean mmcli-tiny?"),
        ("ViT-B/23", 2, "did you mean ViT-B/32"),
        ("ViT-B-32-265:datacomp_s34b_b86k", 2, "did you mean ViT-B-32-256"),
        ("local-dir:/nonexistent/folder", 1, "model folder not found"),  # a model that cannot be had: 1
    ],
)
def test_bad_model_specs(runner, shapes_dir: Path, model: str, code: int, message: str) -> None:
    result = runner.invoke(app, ["classify", str(shapes_dir / "red_star.jpg"), "--labels", "a", "--model", model])
    assert result.exit_code == code, result.stderr
    assert message in result.stderr


def test_models_lists_aliases_without_loading(runner) -> None:
    result = runner.invoke(app, ["models", "-f", "jsonl"])
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["mmcli-tiny"]["local"] is True
    assert rows["default"]["spec"] == "ViT-B-32-256:datacomp_s34b_b86k"
    assert rows["default"]["local"] is False  # no hub here, nothing cached in the isolated env


def test_mmcli_model_env_sets_default(shapes_dir: Path) -> None:
    proc = run_mmcli(
        "classify", str(shapes_dir / "red_star.jpg"), "--labels", "red star", "blue star", env={"MMCLI_MODEL": TINY}
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["labels"][0]["label"] == "red star"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "tsv", "table"])
def test_every_format_parses_back(runner, shapes_dir: Path, fmt: str) -> None:
    import csv
    import io

    imgs = [str(shapes_dir / "red_star.jpg"), str(shapes_dir / "blue_circle.jpg")]
    result = runner.invoke(app, ["classify", *imgs, "--labels", "red star", "blue circle", "--model", TINY, "-f", fmt])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    if fmt == "json":
        rows = json.loads(out)
        assert [r["labels"][0]["label"] for r in rows] == ["red star", "blue circle"]
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.splitlines()]
        assert len(rows) == 2
    elif fmt in ("csv", "tsv"):
        rows = list(csv.DictReader(io.StringIO(out), delimiter="," if fmt == "csv" else "\t"))
        assert len(rows) == 4 and set(rows[0]) == {"path", "label", "score"}
        assert abs(sum(float(r["score"]) for r in rows if r["path"] == imgs[0]) - 1) < 1e-4
    else:
        assert "red star" in out and "blue circle" in out


def test_garbage_weights_file_is_one_clear_line(runner, shapes_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00garbage" * 64)
    result = runner.invoke(
        app,
        [
            "classify",
            str(shapes_dir / "red_star.jpg"),
            "--labels",
            "a",
            "b",
            "--model",
            "ViT-B-32-256",
            "--weights",
            str(bad),
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"mmcli: error: cannot read weights {bad}")
    assert "Traceback" not in result.stderr
    missing = runner.invoke(
        app,
        [
            "classify",
            str(shapes_dir / "red_star.jpg"),
            "--labels",
            "a",
            "--model",
            "ViT-B-32-256",
            "--weights",
            str(tmp_path / "nope.pt"),
        ],
    )
    assert missing.exit_code == 1 and "weights file not found" in missing.stderr


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmcli.demo.shapes import write_corpus

    base = tmp_path_factory.mktemp("outputs")
    write_corpus(base / "photos", 8, seed=5)
    r = run_mmcli("index", str(base / "photos"), "--index", str(base / "idx"), "--model", TINY, "-q")
    assert r.returncode == 0, r.stderr.decode()
    return base / "idx"


def test_outputs_write_through_fifos_and_follow_symlinks(tiny_index: Path, tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "sheet.png"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run_mmcli("search", "a red circle", "--index", str(tiny_index), "--grid", str(fifo), "-k", "3")
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a regular file
    assert got and got[0].startswith(b"\x89PNG")
    target = tmp_path / "real.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    r = run_mmcli("search", "a red circle", "--index", str(tiny_index), "--html", str(link), "-k", "3")
    assert r.returncode == 0, r.stderr.decode()
    assert link.is_symlink() and target.read_text().startswith("<!doctype html>")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # the umask, not 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("where", ["folder", "under-a-file", "under-a-file-deeper"])
def test_impossible_output_paths_are_usage_errors_before_any_work(tiny_index: Path, tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("x")
    path = {
        "folder": tmp_path,
        "under-a-file": tmp_path / "afile" / "x.png",
        "under-a-file-deeper": tmp_path / "afile" / "a" / "x.png",
    }
    r = run_mmcli("search", "a red circle", "--index", str(tiny_index), "--grid", str(path[where]))
    assert r.returncode == 2 and r.stderr.startswith(b"mmcli: error: cannot write"), r.stderr
    assert r.stdout == b"" and b"Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["info"], ["search", "a red circle", "-k", "3"], ["dupes"]])
def test_a_full_disk_on_stdout_is_one_error_line(tiny_index: Path, args: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "mmcli", *args, "--index", str(tiny_index), "-f", "jsonl"],
            stdout=full,
            stderr=subprocess.PIPE,
            env={**os.environ},
        )
    assert r.returncode == 1 and r.stderr.startswith(b"mmcli: error: the disk is full"), r.stderr
    assert b"Traceback" not in r.stderr and b"Exception ignored" not in r.stderr


def test_mmcli_home_pointing_at_a_file_is_one_error_line(tmp_path: Path, shapes_dir: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    r = run_mmcli("index", str(shapes_dir), "--model", TINY, env={"MMCLI_HOME": str(home)})
    assert r.returncode == 1 and r.stderr.startswith(b"mmcli: error: "), r.stderr
    assert b"not a folder" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["classify", "-", "--labels", "a", "b"], b"a line over"),
        (["classify", "-", "-z", "--labels", "a", "b"], b"without a path"),
        (["classify", "x.jpg", "--labels-file", "/dev/zero"], b"not a list of labels"),
        (["embed", "-"], b"a line over"),
    ],
)
def test_endless_inputs_are_refused_not_read_into_memory(args: list[str], message: bytes) -> None:
    with open("/dev/zero", "rb") as zero:
        r = subprocess.run([sys.executable, "-m", "mmcli", *args], stdin=zero, capture_output=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and b"Traceback" not in r.stderr, r.stderr


def test_alias_hub_repos_are_open_clips() -> None:
    """`mmcli models` looks for alias weights where models.toml says, without importing open_clip."""
    from mmcli.models.spec import aliases
    from mmcli.models.weights import pretrained_location

    for name, entry in aliases().items():
        if "hub" in entry:
            arch, _, tag = entry["spec"].partition(":")
            assert pretrained_location(arch, tag)[1] == entry["hub"], name


def test_server_off_and_an_index_that_is_a_file(tiny_index: Path, tmp_path: Path) -> None:
    r = run_mmcli("search", "a red circle", "--server", "off", "--index", str(tiny_index), "-k", "1")
    assert r.returncode == 0 and r.stdout and r.stderr == b"", r.stderr
    photo = tmp_path / "a-file.jpg"
    photo.write_bytes(b"x")
    r = run_mmcli("index", str(tmp_path), "--index", str(photo))
    assert r.returncode == 2 and b"is a file, not an index folder" in r.stderr and b"Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["classify", "--labels", "cat", "dog", "coins.jpg"], "'coins.jpg' was taken as a label"),
        (["classify", "--labels", "cat", "dog", "--", "a.jpg", "-f", "tsv"], "came after '--'"),
        (["search", "a dog", "--add", "./no/such.jpg"], "text:./no/such.jpg"),
        (["search", "a dog", "--in", "/no/such/dir"], "--in /no/such/dir: no such folder"),
    ],
)
def test_rough_edges_of_a_first_run_are_usage_errors_that_say_what_happened(
    runner, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_a_text_term_may_look_like_a_path_when_it_says_so() -> None:
    from mmcli.queries import parse_term

    term = parse_term("2:text:AC/DC.jpg")
    assert (term.weight, term.value, term.is_image) == (2.0, "AC/DC.jpg", False)


@pytest.mark.parametrize(
    ("name", "spec"),
    [("ViT-B/32", "ViT-B-32:openai"), ("ViT-L/14@336px", "ViT-L-14-336:openai"), ("RN50x4", "RN50x4:openai")],
)
def test_openai_model_names_are_accepted(name: str, spec: str) -> None:
    from mmcli.models import parse_model_spec
    from mmcli.models.spec import OPENAI_NAMES
    from mmcli.models.weights import pretrained_location

    assert parse_model_spec(name).canonical == spec
    for openai_spec in OPENAI_NAMES.values():  # every one is a real open_clip ARCH:TAG
        arch, _, tag = openai_spec.partition(":")
        assert pretrained_location(arch, tag) is not None, openai_spec


def test_demo_reuses_its_folder(tmp_path: Path) -> None:
    for _ in range(2):
        r = run_mmcli("demo", "--count", "8")
        assert r.returncode == 0, r.stderr.decode()
    demo = Path(os.environ["MMCLI_CACHE"]) / "demo"
    assert len(list(demo.glob("*.jpg"))) == 8 and str(demo).encode() in r.stderr


@pytest.mark.parametrize(
    ("extra", "shown"), [([], 2), (["--top-k", "4"], 4), (["--multi-label", "--threshold", "0"], 5)]
)
def test_the_classify_table_shows_the_labels_asked_for(shapes_dir: Path, extra: list[str], shown: int) -> None:
    from typer.testing import CliRunner

    labels = ["red star", "blue circle", "green square", "white triangle", "black star"]
    args = ["classify", str(shapes_dir / "red_star.jpg"), "--labels", *labels, "--model", TINY, "-f", "table", *extra]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})  # one line per row: nothing folded
    assert result.exit_code == 0, result.stderr
    assert sum(label in result.stdout for label in labels) == shown
