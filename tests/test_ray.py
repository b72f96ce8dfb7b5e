"""`--ray`: the same vectors and index rows as a local run, from a local Ray instance; kills; no Ray when
nothing needs the model. The tests that run Ray are marked ``ray`` (they run in a plain ``pytest``)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from hostile import MAX_PIXELS, Corpus, make_corpus
from killing import assert_kept, check_complete, check_index, draw_pngs, index_command, run_killed, run_to_the_end

import mmcli.embedding.ray_driver
import mmcli.models
from mmcli.cli import app
from mmcli.config import install_command
from mmcli.embedding.ray_driver import RayOptions, plan_actors
from mmcli.embedding.ray_files import complain
from mmcli.embedding.shards import read_shards
from mmcli.errors import MmcliError, UsageError
from mmcli.index.job import IndexJob
from mmcli.index.sync import run_index


@pytest.fixture(scope="module")
def ray_address() -> str:
    """One small local Ray instance for the module (2 CPUs, a 200 MB object store); `--ray` uses it."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


def _rows(index: Path) -> dict[str, tuple]:
    db = sqlite3.connect(index / "index.sqlite")
    try:
        rows = db.execute("SELECT path, size, mtime_ns, hash, status, error, vector FROM files").fetchall()
    finally:
        db.close()
    return {os.fsdecode(r[0]): r[1:] for r in rows}


@pytest.mark.ray
def test_embed_on_ray_gives_the_local_vectors_in_order(ray_address, hostile: Corpus, runner, tmp_path: Path) -> None:
    common = ["embed", str(Path(hostile.good[0]).parent), "--model", TINY, "--max-pixels", str(MAX_PIXELS)]
    local = runner.invoke(app, [*common, "-o", str(tmp_path / "local.npy"), "--workers", "1"])
    assert local.exit_code == 0, local.stderr
    shards = tmp_path / "shards"
    on_ray = runner.invoke(app, [*common, "-o", str(shards), "--shard-rows", "7", "--ray", "--batch-size", "4"])
    assert on_ray.exit_code == 0, on_ray.stderr
    assert on_ray.stdout == ""
    b, keys = read_shards(shards)
    meta = json.loads((tmp_path / "local.paths.json").read_bytes().decode("utf-8", "surrogateescape"))
    assert keys == meta["paths"] and sorted(keys) == sorted(hostile.good)
    a = np.load(tmp_path / "local.npy")
    assert a.shape == b.shape and float((a * b).sum(axis=1).min()) >= 0.9999
    manifest = json.loads((shards / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [7, 7, 7, len(keys) - 21]
    assert (manifest["rows"], manifest["dim"]) == (len(keys), a.shape[1])
    skipped = sorted(line for line in on_ray.stderr.splitlines() if "skipped" in line)
    assert skipped == sorted(line for line in local.stderr.splitlines() if "skipped" in line)
    assert len(skipped) == len(hostile.bad)


@pytest.mark.ray
def test_embed_on_ray_takes_relative_paths_and_repeats(
    ray_address, runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draw_pngs(tmp_path / "photos", 3)
    monkeypatch.chdir(tmp_path)  # the workers' working folder is another: they get absolute paths
    names = ["photos/0001.png", "./photos/0002.png", "photos/0001.png"]  # the repeat is one input
    local = runner.invoke(app, ["embed", *names, "--model", TINY, "--workers", "1"])
    on_ray = runner.invoke(app, ["embed", *names, "--model", TINY, "--ray"])
    assert on_ray.exit_code == 0, on_ray.stderr
    rows = [[json.loads(line) for line in r.stdout.splitlines()] for r in (local, on_ray)]
    assert [r["path"] for r in rows[1]] == [r["path"] for r in rows[0]] == [str(Path(n)) for n in names[:2]]
    for a, b in zip(*rows):
        assert float(np.dot(a["embedding"], b["embedding"])) >= 0.9999


@pytest.mark.ray
def test_videos_are_sampled_and_embedded_on_the_workers(
    ray_address, runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("av")
    from videos import write_video

    import mmcli.embedding.video
    import mmcli.media.video

    folder = tmp_path / "media"
    draw_pngs(folder, 3)
    write_video(folder / "0001.mp4")  # between the pictures: input order holds across images and moments
    (folder / "0002.mp4").write_bytes(b"not a video")
    local = runner.invoke(app, ["embed", str(folder), "--model", TINY, "-o", str(tmp_path / "local.npy"), "-q"])
    assert local.exit_code == 0, local.stderr
    run_index(tmp_path / "local", IndexJob([str(folder)], model=TINY, workers=1))

    def refuse(*args, **kwargs):
        raise AssertionError("a video was sampled on the driver")

    monkeypatch.setattr(mmcli.media.video, "sample_video", refuse)
    monkeypatch.setattr(mmcli.embedding.video, "embed_video", refuse)
    args = ["embed", str(folder), "--model", TINY, "-o", str(tmp_path / "ray.npy"), "--ray", "-b", "2"]
    on_ray = runner.invoke(app, args)
    assert on_ray.exit_code == 0, on_ray.stderr
    a, b = (json.loads((tmp_path / f"{n}.paths.json").read_text()) for n in ("local", "ray"))
    assert (b["paths"], b["times"]) == (a["paths"], a["times"])
    assert a["times"][1:6] == [0.0, 2.0, 4.0, 6.0, 8.0] and a["paths"][1] == str(folder / "0001.mp4")
    va, vb = np.load(tmp_path / "local.npy"), np.load(tmp_path / "ray.npy")
    assert float((va * vb).sum(axis=1).min()) >= 0.9999
    assert [line for line in on_ray.stderr.splitlines() if "0002.mp4" in line] == [
        line for line in local.stderr.splitlines() if "0002.mp4" in line
    ]
    s = run_index(tmp_path / "ray", IndexJob([str(folder)], model=TINY, batch_size=2, ray=RayOptions()))
    assert (s.added, s.failed, s.moments) == (4, 1, 5)
    frames = []
    for index in ("local", "ray"):
        db = sqlite3.connect(tmp_path / index / "index.sqlite")
        frames.append(db.execute("SELECT time, vector FROM frames ORDER BY time").fetchall())
        db.close()
    assert [t for t, _ in frames[1]] == [t for t, _ in frames[0]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    for (_, x), (_, y) in zip(*frames):
        assert float(np.frombuffer(x, np.float32) @ np.frombuffer(y, np.float32)) >= 0.9999


def test_a_folder_of_shards_replaces_an_earlier_one_and_nothing_else(runner, tmp_path: Path) -> None:
    pngs = [str(p) for p in draw_pngs(tmp_path / "photos", 5)]
    out = tmp_path / "out"
    args = ["embed", *pngs, "--model", TINY, "-o", str(out), "--workers", "1"]
    assert runner.invoke(app, [*args, "--shard-rows", "2"]).exit_code == 0
    assert sorted(p.name for p in out.iterdir())[-2:] == ["00002.paths.json", "manifest.json"]
    assert runner.invoke(app, [*args, "--shard-rows", "5"]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.npy", "00000.paths.json", "manifest.json"]
    vectors, keys = read_shards(out)
    assert keys == pngs and vectors.shape[0] == 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = runner.invoke(app, [*args[:-4], "-o", str(tmp_path / "other")])
    assert refused.exit_code == 2 and "not empty" in refused.stderr
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]


@pytest.mark.ray
def test_index_on_ray_gives_the_local_rows_and_a_second_run_starts_no_ray(
    ray_address, hostile: Corpus, runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = str(Path(hostile.good[0]).parent)
    run_index(tmp_path / "local", IndexJob([folder], model=TINY, workers=1, max_pixels=MAX_PIXELS))
    args = ["index", folder, "--index", str(tmp_path / "ray"), "--model", TINY, "--max-pixels", str(MAX_PIXELS)]
    done = runner.invoke(app, [*args, "--ray", "-b", "4"])
    assert done.exit_code == 0, done.stderr
    local, on_ray = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert set(local) == set(on_ray) == set(hostile.good) | set(hostile.bad)
    for path, row in local.items():
        assert on_ray[path][:5] == row[:5], path  # size, mtime, hash, status, error
        if row[3] == "ok":
            assert float(np.frombuffer(row[5], np.float32) @ np.frombuffer(on_ray[path][5], np.float32)) >= 0.9999

    def refuse(*args, **kwargs):
        raise AssertionError("Ray or the model was started")

    monkeypatch.setattr(mmcli.embedding.ray_driver, "ray_session", refuse)
    monkeypatch.setattr(mmcli.embedding.ray_driver, "embed_on_ray", refuse)
    monkeypatch.setattr(mmcli.models, "load_encoder", refuse)
    monkeypatch.setattr(mmcli.models, "describe_encoder", refuse)
    again = runner.invoke(app, [*args, "--ray"])
    assert again.exit_code == 0, again.stderr
    assert "(no model loaded)" in again.stderr and f"{len(on_ray)} unchanged" in again.stderr
    assert _rows(tmp_path / "ray") == on_ray


@pytest.mark.ray
def test_a_killed_actor_loses_nothing_and_duplicates_nothing(
    ray_address, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = draw_pngs(tmp_path / "photos", 40)
    bad = tmp_path / "photos" / "bad.png"
    bad.write_text("not a png")
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MMCLI_FAULT", "ray.embed:3")  # the actor SIGKILLs itself before its 3rd batch
    monkeypatch.setenv("MMCLI_FAULT_MARKS", str(marks))  # once: the restarted actor runs on
    s = run_index(tmp_path / "idx", IndexJob([str(tmp_path / "photos")], model=TINY, batch_size=8, ray=RayOptions()))
    assert (marks / "ray.embed").exists(), "the actor was never killed"
    assert (s.added, s.failed) == (40, 1)
    check_complete(tmp_path / "idx", good, [bad])


@pytest.mark.ray
def test_a_killed_driver_resumes_without_redoing_committed_work(ray_address, tmp_path: Path) -> None:
    good = draw_pngs(tmp_path / "photos", 40)
    index = tmp_path / "idx"
    cmd = index_command(tmp_path / "photos", index, "--model", TINY, "-b", "4", "--ray-address", ray_address)
    run_killed(cmd, "index.commit:3")  # SIGKILLed after its third commit
    before = check_index(index)
    assert len(before) == 12
    run_to_the_end(cmd)
    assert_kept(before, check_complete(index, good))


@pytest.mark.ray
def test_a_model_that_cannot_load_on_the_workers_is_one_error_line(ray_address, runner, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    pngs = [str(p) for p in draw_pngs(tmp_path / "photos", 2)]
    result = runner.invoke(app, ["embed", *pngs, "--model", TINY, "--ray", "--device", "cuda"])
    assert result.exit_code == 1
    assert result.stderr == "mmcli: error: --device cuda: no CUDA device is available\nhint: use --device cpu\n"


def test_an_address_where_no_cluster_answers_fails_in_seconds(runner, tmp_path: Path) -> None:
    draw_pngs(tmp_path / "photos", 2)
    args = ["index", str(tmp_path / "photos"), "--index", str(tmp_path / "i"), "--model", TINY]
    result = runner.invoke(app, [*args, "--ray-address", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("mmcli: error: cannot connect to the Ray cluster at 127.0.0.1:1")


def test_without_ray_one_line_says_how_to_install_it(runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    draw_pngs(tmp_path / "photos", 2)
    result = runner.invoke(app, ["index", str(tmp_path / "photos"), "--index", str(tmp_path / "i"), "--ray"])
    assert result.exit_code == 2
    hint = install_command("ray")
    assert result.stderr == f"mmcli: error: --ray needs Ray Data, which is not installed: {hint}\n"
    assert not (tmp_path / "i").exists()


def test_the_actor_pool_fits_the_cluster() -> None:
    gpus = plan_actors({"CPU": 64, "GPU": 8}, RayOptions())
    assert (gpus.actors, gpus.gpus, gpus.cpus) == (8, 1.0, 1.0)
    assert plan_actors({"CPU": 64, "GPU": 8}, RayOptions(gpus_per_actor=0.5)).actors == 16
    cpus = plan_actors({"CPU": 32}, RayOptions())
    assert (cpus.actors, cpus.gpus, cpus.cpus, cpus.threads) == (4, 0.0, 4.0, 4)
    small = plan_actors({"CPU": 2}, RayOptions(actors=2))
    assert small.actors == 2 and small.actors * small.cpus <= 1  # one CPU is left to decode on
    with pytest.raises(UsageError, match="no GPUs"):
        plan_actors({"CPU": 8}, RayOptions(gpus_per_actor=1))
    with pytest.raises(UsageError, match="more than the cluster"):
        plan_actors({"CPU": 8, "GPU": 2}, RayOptions(actors=3))


def test_a_worker_finds_a_bundled_model_in_its_own_installation() -> None:
    from dataclasses import replace

    from mmcli.embedding.ray_workers import worker_spec
    from mmcli.models import parse_model_spec

    here = parse_model_spec(TINY)
    elsewhere = replace(here, source="local-dir:/opt/other-install/mmcli/configs/mmcli-tiny")  # the driver's
    assert worker_spec(elsewhere) == here
    hub = parse_model_spec("hf-hub:org/repo")
    assert worker_spec(hub) is hub


def test_a_node_that_cannot_read_the_files_is_named() -> None:
    complain({"10.0.0.1": [], "10.0.0.2": []})
    with pytest.raises(MmcliError, match=r"worker on 10\.0\.0\.2 cannot read /data/a\.jpg \(No such file"):
        complain({"10.0.0.1": [], "10.0.0.2": [(b"/data/a.jpg", "No such file or directory")]})


def test_ray_is_not_imported_by_a_local_run(tmp_path: Path) -> None:
    draw_pngs(tmp_path / "photos", 2)
    code = (
        "import sys; from pathlib import Path; from mmcli.index.sync import run_index; "
        "from mmcli.index.job import IndexJob; "
        "run_index(Path(sys.argv[1]), IndexJob([sys.argv[2]], model=sys.argv[3], workers=1)); "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "i"), str(tmp_path / "photos"), TINY]
    done = subprocess.run(args, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
