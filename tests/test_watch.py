"""`mmcli index --watch`: new, deleted and renamed files reach the index batch by batch, a burst is a
few batches, the model is loaded once, and Ctrl-C leaves a committed index and no lock."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import TINY
from killing import check_index, draw_pngs, index_command

from mmcli.engine.local import LocalEngine
from mmcli.index.job import IndexJob
from mmcli.index.lock import IndexLock
from mmcli.index.watch import WatchBatch, watch_index
from mmcli.queries import SearchRequest, build_terms

pytest.importorskip("watchfiles")

WAIT = 180  # seconds at most for one batch (a safety net: nothing is timed)


@dataclass
class Watcher:
    """``watch_index`` running in a thread; its batches arrive in ``batches``."""

    root: Path
    index: Path
    batches: queue.Queue[WatchBatch] = field(default_factory=queue.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event = field(default_factory=threading.Event)  # set: on_batch waits for ``go`` (a long batch)
    held: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def on_batch(self, batch: WatchBatch) -> None:
        self.batches.put(batch)
        if self.hold.is_set():
            self.held.set()
            self.go.wait(WAIT)

    def next(self) -> WatchBatch:
        try:
            return self.batches.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no batch came; errors: {self.errors}") from None

    def until(self, done: Callable[[WatchBatch], bool]) -> list[WatchBatch]:
        """The batches up to and including the first for which ``done`` holds."""
        seen = [self.next()]
        while not done(seen[-1]):
            seen.append(self.next())
        return seen

    def paths(self) -> set[str]:
        hits = LocalEngine(self.index).search(SearchRequest(build_terms("a shape", None), top_k=2000)).hits
        return {h.path for h in hits}


@pytest.fixture
def watcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Watcher]:
    root = tmp_path / "photos"
    draw_pngs(root, 3)
    w = Watcher(root, tmp_path / "idx")
    options = getattr(request, "param", {})  # more of the job

    def run() -> None:
        try:
            watch_index(w.index, IndexJob([str(root)], model=TINY, workers=1, **options), w.on_batch, stop=w.stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            w.errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield w
    finally:
        w.stop.set()
        w.go.set()
        thread.join(60)
    assert not thread.is_alive(), "the watcher did not stop"
    assert not w.errors, w.errors


def test_new_deleted_and_renamed_files(watcher: Watcher) -> None:
    first = watcher.next()
    assert (first.number, first.events, first.summary.added, first.model_loads) == (0, 0, 3, 1)
    root = watcher.root

    new = draw_pngs(root / "new", 1, seed=777)[0]  # a new folder with a new picture in it
    batches = watcher.until(lambda b: b.summary.added == 1)
    assert str(new) in watcher.paths()

    gone = root / "0001.png"
    gone.unlink()
    watcher.until(lambda b: b.summary.missing == 1)
    assert str(gone) not in watcher.paths()

    moved = root / "new" / "moved.png"
    os.rename(root / "0002.png", moved)
    batches = watcher.until(lambda b: b.summary.renamed == 1)
    assert all(b.summary.embedded == 0 and not b.summary.model_loaded for b in batches)  # its vector, no model
    assert {str(moved), str(new), str(root / "0000.png")} == watcher.paths()
    assert batches[-1].model_loads == 1  # loaded once, by the first pass, and kept


def test_a_burst_is_a_few_batches(watcher: Watcher) -> None:
    assert watcher.next().summary.added == 3
    watcher.hold.set()  # the next batch takes "long": the burst comes while it runs
    draw_pngs(watcher.root / "first", 1, seed=500)
    assert watcher.next().summary.added == 1
    assert watcher.held.wait(WAIT)
    watcher.hold.clear()
    draw_pngs(watcher.root / "burst", 500, seed=1000)
    watcher.go.set()
    batches = watcher.until(lambda b: len(watcher.paths()) == 504)
    assert sum(b.summary.added for b in batches) == 500
    assert len(batches) <= 3, [(b.events, b.summary.added) for b in batches]  # not 500 runs of the model
    assert sum(b.events for b in batches) >= 500
    assert batches[-1].model_loads == 1


@pytest.mark.parametrize("watcher", [{"rebuild": True}], indirect=True)
def test_rebuild_is_the_first_pass_only(watcher: Watcher) -> None:
    assert watcher.next().summary.embedded == 3
    draw_pngs(watcher.root / "new", 1, seed=900)
    later = watcher.until(lambda b: b.summary.added == 1)
    assert sum(b.summary.embedded for b in later) == 1  # the new file only, not everything again
    assert later[-1].model_loads == 1


def _watch(root: Path, index: Path, fault: str = "", *options: str) -> subprocess.Popen[bytes]:
    cmd = index_command(root, index, "--model", TINY, "--workers", "1", "--watch", *options)
    cmd.remove("-q")  # the "watching" line is what the test waits for
    env = {**os.environ, "MMCLI_FAULT": fault} if fault else None
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)


def _until_watching(proc: subprocess.Popen[bytes]) -> bytes:
    seen = b""
    assert proc.stderr is not None
    for line in proc.stderr:
        seen += line
        if line.startswith(b"watching "):
            return seen
    raise AssertionError(f"never watched: {seen.decode(errors='replace')}")


def test_ctrl_c_while_idle(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()  # empty: no model is loaded, the watcher waits
    index = tmp_path / "idx"
    proc = _watch(root, index)
    try:
        _until_watching(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode(errors="replace")
    assert b"mmcli: interrupted" in err and b"Traceback" not in err
    with IndexLock(index):  # released
        pass
    assert check_index(index) == {}


def test_ctrl_c_in_a_batch_keeps_what_was_committed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    draw_pngs(root, 3)
    index = tmp_path / "idx"
    proc = _watch(root, index, "index.commit:2:stop", "--batch-size", "4")  # the first pass commits once
    try:
        _until_watching(proc)
        later = draw_pngs(root / "later", 12, seed=300)
        _, status = os.waitpid(proc.pid, os.WUNTRACED)  # stopped itself after a commit of the watch's batch
        assert os.WIFSTOPPED(status), status
        kept = check_index(index)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode(errors="replace")
    assert b"Traceback" not in err
    assert 3 + 4 <= len(kept) < 3 + 12  # one batch of the 12 committed, not all
    with IndexLock(index):
        pass
    after = check_index(index)
    assert set(kept) <= set(after)  # nothing committed was lost
    done = subprocess.run(index_command(root, index, "--model", TINY, "--workers", "1"), capture_output=True)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert set(check_index(index)) == {str(p) for p in [*sorted(root.glob("*.png")), *later]}


def test_watch_needs_a_folder_that_exists(runner, tmp_path: Path) -> None:
    from mmcli.cli import app

    r = runner.invoke(app, ["index", str(tmp_path / "nope"), "--index", str(tmp_path / "idx"), "--watch"])
    assert r.exit_code != 0 and "no such file or folder" in r.stderr


def test_watch_without_watchfiles_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mmcli.errors import UsageError
    from mmcli.index import watch

    monkeypatch.setattr(watch, "watchfiles_available", lambda: False)
    with pytest.raises(UsageError, match="needs watchfiles") as caught:
        watch.watch_index(tmp_path, IndexJob([str(tmp_path)]), lambda b: None)
    assert caught.value.hint == watch.INSTALL_HINT
