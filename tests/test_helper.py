"""The resident helper at work: real `mmcli` processes, real helpers (mmcli-tiny, generated images),
and stand-ins for a hung, dead or foreign one. Whatever the helper does, a command prints what it
prints in-process (MMCLI_HELPER=off), byte for byte: the same body renders what either engine gives.
Every option a plain command takes is answered warm."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from conftest import TINY, run_mmcli

from mmcli.cli.engines import helper_of
from mmcli.demo.shapes import write_corpus
from mmcli.engine.local import LocalEngine
from mmcli.helper import place
from mmcli.helper.admin import status_of, stop_all

INDEX = "daemon-shapes"
IDLE = "120"  # a helper a failed test leaves behind goes by itself
HEAVY = ("numpy", "onnxruntime", "faiss", "torch", "PIL", "pydantic", "rich", "typer", "click")


class Helpers:
    """A private runtime folder (short: a socket path has at most 107 bytes) and the environment
    that has commands use helpers there."""

    def __init__(self, idle: str = IDLE) -> None:
        self.run = Path(tempfile.mkdtemp(prefix="mmd", dir="/tmp"))
        self.env = {"MMCLI_HELPER": "on", "XDG_RUNTIME_DIR": str(self.run), "MMCLI_HELPER_IDLE": idle}

    def mmcli(self, *args: str, on: bool = True, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return run_mmcli(*args, env={**self.env, "MMCLI_HELPER": "on" if on else "off"}, **kw)

    def helper(self, kind: str, target: str, **engine: Any) -> place.Helper:
        """The helper a command would use: the searches of the index ``target``, or the classifications
        with the model ``target`` ("" for the default), with the engine's other settings."""
        local = LocalEngine(Path(target), **engine) if kind == "search" else LocalEngine(None, target or None, **engine)
        with mock.patch.dict(os.environ, self.env):
            found = helper_of(kind, local)
        assert found is not None
        return found

    def wait_serving(self, helper: place.Helper) -> Any:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            status = status_of(helper.path)
            if status is not None and status.target == helper.identity["target"]:
                return status
            time.sleep(0.2)
        log = helper.sibling(".log")
        pytest.fail(f"no helper at {helper.path}: {log.read_text() if log.exists() else 'no log'}")

    def close(self) -> None:
        with mock.patch.dict(os.environ, self.env):
            stop_all()
        shutil.rmtree(self.run, ignore_errors=True)  # a helper still warming up finds no folder, and goes


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 120
    while not gone(pid):
        assert time.monotonic() < deadline, f"helper {pid} did not exit"
        time.sleep(0.1)


def same(a: subprocess.CompletedProcess[bytes], b: subprocess.CompletedProcess[bytes]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("daemon") / "photos"
    write_corpus(folder, 12, seed=21)
    return folder


@pytest.fixture(scope="module")
def index(photos: Path) -> Path:
    done = run_mmcli("index", str(photos), "--index", INDEX, "--model", TINY, "-q")
    assert done.returncode == 0, done.stderr
    return Path(os.environ["MMCLI_HOME"]) / "indexes" / INDEX


@pytest.fixture(scope="module")
def warm(index: Path) -> Iterator[tuple[Helpers, place.Helper]]:
    """A search helper for ``index``, started by a first search as a user's would be."""
    helpers = Helpers()
    first = helpers.mmcli("search", "a red circle", "--index", INDEX, "-k", "3")
    assert first.returncode == 0 and first.stdout.count(b"\n") == 3
    helper = helpers.helper("search", str(index))
    helpers.wait_serving(helper)
    yield helpers, helper
    helpers.close()


@pytest.fixture
def fresh(index: Path) -> Iterator[Helpers]:
    helpers = Helpers()
    yield helpers
    helpers.close()


def served(helper: place.Helper) -> int:
    status = status_of(helper.path)
    assert status is not None
    return status.searches + status.classifications


# ----------------------------------------------------------------------------------- answers
FORMATS = [["-f", "jsonl"], ["-f", "json"], ["-f", "csv"], ["-f", "tsv"], ["-f", "paths"], ["-0"], ["-f", "urls"]]


def _search_cases(photos: Path, text: str) -> list[list[str]]:
    """Plain searches of every kind the fast path reads; ``text`` makes the first ones' texts new."""
    example = str(sorted(photos.iterdir())[3])
    return [[f"{text} {i}", "--index", INDEX, "-k", "4", *fmt] for i, fmt in enumerate(FORMATS)] + [
        ["a green star", "--index", INDEX, "-f", "table"],
        ["a circle", "--add", "2:blue", "--sub", "red", "--index", INDEX, "-f", "csv", "--exact"],
        ["a circle", "--index", INDEX, "--threshold", "0.99"],  # no results: said on stderr
        ["a star", "--index", INDEX, "--after", "2999"],  # none taken after: a note, no results
        ["--image", example, "--index", INDEX, "-k", "3", "--in", str(photos), "-f", "json"],  # the image tower
        ["a square", "--add", f"0.5:{example}", "--index", INDEX, "--sort", "date"],
    ]


def test_searches_through_the_helper_print_the_same_bytes(warm: tuple[Helpers, place.Helper], photos: Path) -> None:
    helpers, helper = warm
    before = served(helper)
    cases = _search_cases(photos, "a blue square")
    for args in cases:
        helped = helpers.mmcli("search", *args)  # first, with a text never seen: the helper embeds it
        same(helped, helpers.mmcli("search", *args, on=False))
    assert served(helper) == before + len(cases)


def test_a_search_no_helper_answers_runs_here_without_typer_and_prints_what_the_command_prints(
    index: Path, photos: Path
) -> None:
    """MMCLI_HELPER=off: `mmcli search` runs in this process without Typer or pydantic, and writes the
    bytes the Typer command writes (its app called directly): the same body, read two ways."""
    typer_app = "import sys\nfrom mmcli.cli import app\nsys.argv = ['mmcli', *sys.argv[1:]]\napp()\n"
    env = {**os.environ, "MMCLI_HELPER": "off"}
    for args in [*_search_cases(photos, "a yellow square"), ["a square", "--index", "no-such-index"]]:
        fast = subprocess.run([sys.executable, "-m", "mmcli", "search", *args], capture_output=True, env=env)
        command = subprocess.run([sys.executable, "-c", typer_app, "search", *args], capture_output=True, env=env)
        same(fast, command)
        assert fast.returncode == (1 if "no-such-index" in args else 0), fast.stderr
    code = (
        "import sys\n"
        "from mmcli.cli import main\n"
        f"sys.argv = ['mmcli', 'search', 'a red triangle, here', '--index', {INDEX!r}, '-k', '2']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert done.code == 0, done.code\n"
        "heavy = ('typer', 'click', 'pydantic', 'torch')\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.count(b"\n") == 2, out.stderr
    assert out.stderr.decode().strip().splitlines()[-1] == "LOADED="


def test_every_option_a_search_takes_is_answered_warm(
    warm: tuple[Helpers, place.Helper], photos: Path, tmp_path: Path
) -> None:
    """--threshold auto, --explain, --rerank (a second model, loaded by the helper), --exact, --all-moments,
    --in, dates, --html: the helper answers each, and the command prints what it prints in-process."""
    from second_model import write_second_model

    helpers, helper = warm
    second = write_second_model(tmp_path / "second")
    cases = [
        ["a red circle", "--threshold", "auto", "--explain", "-f", "json"],
        ["a blue star", "--rerank", second, "--rerank-k", "6", "-k", "3", "--explain"],
        ["a green square", "--exact", "--all-moments", "--in", str(photos), "--after", "2000", "--sort", "-date"],
        ["a circle", "-k", "2", "--html", str(tmp_path / "page.html")],
    ]
    before = served(helper)
    for case in cases:
        args = ["search", *case, "--index", INDEX]
        same(helpers.mmcli(*args), helpers.mmcli(*args, on=False))
    assert served(helper) == before + len(cases)
    assert (tmp_path / "page.html").stat().st_size > 0


def test_a_value_the_builder_refuses_is_refused_by_the_helper_too(warm: tuple[Helpers, place.Helper]) -> None:
    """The helper reads what it is sent with the builder every way in uses: the same rule, the same words."""
    from mmcli.errors import UsageError
    from mmcli.helper.talk import exchange
    from mmcli.queries.build import search_request

    helpers, helper = warm
    for bad in ({"threshold": 5}, {"threshold": "nan"}, {"top_k": 0}, {"rerank_k": -1}, {"sort": "newest"}):
        kind, said = exchange(helper, "search", {"query": "a red circle", **bad})
        with pytest.raises(UsageError) as here:
            search_request(query="a red circle", **bad)
        assert kind == "error" and said["message"] == here.value.message and said["exit_code"] == 2, said


def test_the_client_imports_nothing_heavy(warm: tuple[Helpers, place.Helper]) -> None:
    helpers, helper = warm
    before = served(helper)
    code = (
        "import sys\n"
        "from mmcli.cli import main\n"
        f"sys.argv = ['mmcli', 'search', 'a yellow triangle', '--index', {INDEX!r}, '-k', '2']\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert done.code == 0, done.code\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env={**os.environ, **helpers.env}, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.decode().strip().splitlines()[-1] == "HEAVY="
    assert out.stdout.count(b"\n") == 2 and served(helper) == before + 1  # the helper answered it


def test_concurrent_clients(warm: tuple[Helpers, place.Helper]) -> None:
    helpers, helper = warm
    before = served(helper)
    queries = [f"a {c} shape {i}" for i, c in enumerate(("red", "green", "blue", "black", "white"))]
    env = {**os.environ, **helpers.env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mmcli", "search", q, "--index", INDEX, "-k", "5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for q in queries
    ]
    answers = [p.communicate(timeout=120) for p in procs]
    assert served(helper) == before + len(queries)
    for q, (out, err), p in zip(queries, answers, procs):
        alone = helpers.mmcli("search", q, "--index", INDEX, "-k", "5", on=False)
        assert (p.returncode, out, err) == (alone.returncode, alone.stdout, alone.stderr)


def test_the_socket_and_its_folder_are_private(warm: tuple[Helpers, place.Helper]) -> None:
    _, helper = warm
    assert stat.S_ISSOCK(helper.path.lstat().st_mode) and stat.S_IMODE(helper.path.lstat().st_mode) == 0o600
    assert stat.S_IMODE(helper.path.parent.stat().st_mode) == 0o700
    assert helper.path.lstat().st_uid == os.getuid()
    for suffix in (".lock", ".log"):
        assert stat.S_IMODE(helper.sibling(suffix).stat().st_mode) == 0o600


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_the_helper_says_nothing_to_another_user(warm: tuple[Helpers, place.Helper]) -> None:
    """Even when the file modes would let them in (here, on purpose), another user's connection is
    closed without a byte (SO_PEERCRED)."""
    _, helper = warm
    run, folder = helper.path.parent.parent, helper.path.parent
    modes = {p: stat.S_IMODE(p.lstat().st_mode) for p in (run, folder, helper.path)}
    try:
        for p, mode in ((run, 0o711), (folder, 0o711), (helper.path, 0o666)):
            os.chmod(p, mode)
        code = (
            "import os, socket, sys\nos.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])\n"
            "try:\n"
            '    s.sendall(b\'{"identity": null, "op": "status", "body": {}}\\n\'); got = s.recv(100)\n'
            "except (BrokenPipeError, ConnectionResetError):\n    got = b''\n"
            "print(repr(got))\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(helper.path)], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == b"b''"
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
    assert status_of(helper.path) is not None  # this user still gets an answer


def test_classify_through_the_helper_prints_the_same_bytes(fresh: Helpers, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    write_corpus(pics / "sub", 3, seed=5)
    write_corpus(pics, 2, seed=6)
    (pics / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "labels.txt").write_text("# shapes\ncircle\nsquare\n\nstar\n")
    args = ["--labels", "circle", "square", "star", "--model", TINY]
    first = fresh.mmcli("classify", "pics", *args, cwd=tmp_path)
    assert first.returncode == 0
    helper = fresh.helper("classify", TINY)
    fresh.wait_serving(helper)
    cases = [
        ["pics", *args],
        ["pics/sub", str(sorted(pics.glob("0*.jpg"))[0]), *args, "-f", "csv"],
        [".", *args, "-f", "table", "-k", "2"],
        ["pics", "--labels", "red", "blue", "--multi-label", "--model", TINY, "-f", "json"],
        ["pics/sub", "--labels-file", "labels.txt", "--templates", "simple", "--model", TINY, "-f", "tsv", "-q"],
        ["pics/broken.jpg", *args],  # nothing classified: exit 1, the same error
    ]
    for case in cases:
        where = pics if case[0] == "." else tmp_path
        same(fresh.mmcli("classify", *case, cwd=where), fresh.mmcli("classify", *case, cwd=where, on=False))
    assert served(helper) == len(cases)


@pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="videos need PyAV")
def test_videos_and_the_engine_settings_of_a_classification_are_answered_warm(fresh: Helpers, tmp_path: Path) -> None:
    """A video's timeline streams from the helper as it does in-process; --device and --workers are part of
    which helper answers (one per setting)."""
    from videos import write_video

    clip = write_video(tmp_path / "clip.mp4")
    write_corpus(tmp_path / "pics", 2, seed=8)
    args = ["classify", "clip.mp4", "pics", "--labels", "red circle", "blue square", "green star", "--model", TINY]
    args += ["--every", "1", "--device", "cpu", "--workers", "1"]
    first = fresh.mmcli(*args, cwd=tmp_path)
    assert first.returncode == 0 and b'"start"' in first.stdout, first.stderr
    helper = fresh.helper("classify", TINY, device="cpu", workers=1)
    fresh.wait_serving(helper)
    for fmt in (["-f", "jsonl"], ["-f", "csv"]):
        same(fresh.mmcli(*args, *fmt, cwd=tmp_path), fresh.mmcli(*args, *fmt, cwd=tmp_path, on=False))
    assert served(helper) == 2 and clip.exists()


# ------------------------------------------------------------------------- when it cannot answer
def test_the_off_switch(fresh: Helpers, index: Path) -> None:
    for name, value in (("MMCLI_HELPER", "off"), ("MMCLI_HELPER", "0"), ("MMCLI_DAEMON", "off")):  # (its older name)
        env = {**fresh.env, "MMCLI_HELPER": None, name: value}
        for _ in range(2):
            assert run_mmcli("search", "a red star", "--index", INDEX, env=env).returncode == 0
    assert not (fresh.run / "mmcli").exists()  # not even its folder


def test_a_dead_helper_is_replaced(fresh: Helpers, index: Path) -> None:
    helper = fresh.helper("search", str(index))
    helper.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(helper.path))  # a socket file whose process is gone
    stale.close()
    args = ["search", "a white circle", "--index", INDEX]
    same(fresh.mmcli(*args), fresh.mmcli(*args, on=False))
    pid = fresh.wait_serving(helper).pid  # the command started a helper, which took the socket's place
    same(fresh.mmcli(*args), fresh.mmcli(*args, on=False))
    assert served(helper) == 1
    os.kill(pid, signal.SIGTERM)  # a clean exit: its socket goes with it
    wait_gone(pid)
    assert not helper.path.exists()
    assert "exiting: SIGTERM" in helper.sibling(".log").read_text()


class StandIn:
    """A socket at a helper's place that takes connections and never answers (``ack`` None), or
    answers as another helper (``ack``: its identity) with results that must never be shown."""

    def __init__(self, path: Path, ack: dict[str, Any] | None, final: list[dict[str, Any]] | None = None) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        os.chmod(path, 0o600)
        self.listener.listen(8)
        self.ack, self.final, self.held, self.asked = ack, final or [], [], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.asked += 1
            if self.ack is not None:
                conn.recv(1 << 20)
                lines = [{"ack": self.ack}, *self.final]
                conn.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in lines))

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_a_hung_helper_costs_a_moment_not_the_answer(fresh: Helpers, index: Path) -> None:
    helper = fresh.helper("search", str(index))
    stand_in = StandIn(helper.path, ack=None)
    try:
        args = ["search", "a black star", "--index", INDEX, "-f", "csv"]
        same(fresh.mmcli(*args, timeout=120), fresh.mmcli(*args, on=False))  # (timeout: it must not wait for it)
        assert stand_in.asked == 1
    finally:
        stand_in.close()


FOREIGN_HIT = {"hits": [{"rank": 1, "path": "/FOREIGN.jpg", "score": 1.0}], "warnings": []}


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("search", "mmcli", "0.0.1"),  # another version
        ("search", "code", "0" * 20),  # other source files
        ("search", "target", "/another/index"),
        ("classify", "target", "another-model"),
        ("search", "uid", 12345),
    ],
)
def test_a_foreign_helper_is_not_used(
    fresh: Helpers, index: Path, tmp_path: Path, kind: str, field: str, value: Any
) -> None:
    helper = fresh.helper(kind, str(index) if kind == "search" else TINY)
    final = [{"reply": FOREIGN_HIT}]
    if kind == "classify":
        final = [
            {"warnings": []},
            {"item": {"path": "x.jpg", "labels": [{"label": "FOREIGN", "score": 1.0}]}},
            final[0],
        ]
    stand_in = StandIn(helper.path, ack={**helper.identity, field: value}, final=final)
    write_corpus(tmp_path, 2, seed=9)
    args = ["search", "a red square", "--index", INDEX]
    if kind == "classify":
        args = ["classify", str(tmp_path), "--labels", "circle", "star", "--model", TINY]
    try:
        helped = fresh.mmcli(*args)
        assert stand_in.asked == 1 and b"FOREIGN" not in helped.stdout
        same(helped, fresh.mmcli(*args, on=False))
    finally:
        stand_in.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_a_helper_of_another_user_is_not_used(fresh: Helpers, index: Path) -> None:
    """The socket file is this user's, but the process listening on it runs as another (SO_PEERCRED)."""
    helper = fresh.helper("search", str(index))
    helper.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ack = json.dumps({"ack": helper.identity}) + "\n" + json.dumps({"reply": FOREIGN_HIT}) + "\n"
    code = (
        "import os, socket, sys\ns = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o600)\n"
        "os.setgid(65534); os.setuid(65534); s.listen(4); print('ready', flush=True)\n"
        "while True:\n    c, _ = s.accept(); c.recv(1 << 20); c.sendall(sys.argv[2].encode())\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code, str(helper.path), ack], stdout=subprocess.PIPE)
    try:
        assert other.stdout is not None and other.stdout.readline() == b"ready\n"
        args = ["search", "a blue circle", "--index", INDEX]
        helped = fresh.mmcli(*args)
        assert b"FOREIGN" not in helped.stdout
        same(helped, fresh.mmcli(*args, on=False))
    finally:
        other.kill()
        other.wait()


# ------------------------------------------------------------------------------ its life
def test_an_index_changed_while_warm_is_seen(fresh: Helpers, tmp_path: Path) -> None:
    photos = tmp_path / "grow"
    write_corpus(photos, 4, seed=31)
    assert run_mmcli("index", str(photos), "--index", "daemon-grow", "--model", TINY, "-q").returncode == 0
    args = ["search", "a green circle", "--index", "daemon-grow", "-k", "20", "-f", "paths"]
    assert fresh.mmcli(*args).returncode == 0
    helper = fresh.helper("search", str(Path(os.environ["MMCLI_HOME"]) / "indexes" / "daemon-grow"))
    fresh.wait_serving(helper)
    assert fresh.mmcli(*args).stdout.count(b"\n") == 4
    write_corpus(tmp_path / "more", 3, seed=32)
    for p in (tmp_path / "more").iterdir():
        p.rename(photos / ("new_" + p.name))
    assert run_mmcli("index", str(photos), "--index", "daemon-grow", "-q").returncode == 0
    helped = fresh.mmcli(*args)
    assert helped.stdout.count(b"\n") == 7 and b"new_" in helped.stdout
    same(helped, fresh.mmcli(*args, on=False))
    assert served(helper) == 2  # both answered warm, by the one helper


def test_idle_helper_exits_and_stop(index: Path) -> None:
    helpers = Helpers(idle="2")
    try:
        assert helpers.mmcli("search", "a red triangle", "--index", INDEX).returncode == 0
        helper = helpers.helper("search", str(index))
        log = helper.sibling(".log")
        deadline = time.monotonic() + 240  # the helper's own word that it left, then no process of it is left
        while "exiting: idle for 2 s" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
            time.sleep(0.1)
        for pid in _helper_pids(helper.path):  # (found by its command line)
            wait_gone(pid)
        assert not helper.path.exists()
        helpers.env["MMCLI_HELPER_IDLE"] = IDLE
        assert helpers.mmcli("search", "a red triangle", "--index", INDEX).returncode == 0
        helper = helpers.helper("search", str(index))  # (the same: the idle time is not its identity)
        pid = helpers.wait_serving(helper).pid
        listed = helpers.mmcli("helper", "status", "-f", "jsonl")
        assert json.loads(listed.stdout)["pid"] == pid
        assert json.loads(helpers.mmcli("daemon", "-f", "jsonl").stdout)["pid"] == pid  # (its older name)
        stopped = helpers.mmcli("daemon", "stop")
        assert stopped.returncode == 0 and b"stopped 1 helper" in stopped.stderr
        wait_gone(pid)
        assert not helper.path.exists()
    finally:
        helpers.close()


def _helper_pids(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if not gone(pid)]
