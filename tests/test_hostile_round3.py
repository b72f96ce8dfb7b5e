"""Reliability and security, round 3 (issue 19): one class per section, each checked on real files and a real
`mmcli serve` over a mmcli-tiny index. No traceback may reach a user or an HTTP client."""

from __future__ import annotations

import atexit
import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY
from test_serve import _free_port, _wait_until_serving
from videos import write_video

from mmcli.cli.app import app
from mmcli.demo.shapes import ShapeSpec, draw_shape

YEAR_2300_NS = 10_413_792_000_000_000_000  # 2300-01-01: more nanoseconds than SQLite's INTEGER holds
TRACEBACK = b"Traceback"


def _shapes(folder: Path, names: dict[str, ShapeSpec], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (name, spec) in enumerate(names.items()):
        draw_shape(spec, size=160, seed=seed + i).save(folder / name, quality=92)
        out.append(folder / name)
    return out


def _tmpfs_folder() -> Path | None:
    """A folder on a filesystem that keeps any 64-bit mtime (tmpfs), or None (then that case is skipped).
    Removed when the test session ends."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        return None
    folder = Path(tempfile.mkdtemp(prefix="mmcli-h19-", dir="/dev/shm"))
    atexit.register(shutil.rmtree, folder, True)
    probe = folder / "probe"
    probe.write_bytes(b"x")
    os.utime(probe, (1e14, 1e14))
    if os.stat(probe).st_mtime < 1e13:
        return None
    probe.unlink()
    return folder


# --------------------------------------------------------------------- 1. a first index whose model never loads
def test_a_first_index_whose_model_cannot_load_binds_nothing(runner, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _shapes(photos, {"a.jpg": ShapeSpec("red", "circle"), "b.jpg": ShapeSpec("blue", "square")})
    index = str(tmp_path / "idx")
    r = runner.invoke(app, ["index", str(photos), "--index", index])  # the default model, offline: no weights
    assert r.exit_code == 1 and "cannot get the weights" in r.stderr and "mmcli-tiny" in r.stderr
    again = runner.invoke(app, ["index", str(photos), "--index", index])  # the same again, not a mismatch
    assert again.exit_code == 1 and "cannot get the weights" in again.stderr and "built with" not in again.stderr
    r = runner.invoke(app, ["index", str(photos), "--index", index, "--model", TINY])  # what the hint said
    assert r.exit_code == 0, r.stderr
    info = json.loads(runner.invoke(app, ["info", "--index", index, "-f", "json"]).stdout)
    assert info["model"] == TINY and info["ok"] == 2
    r = runner.invoke(app, ["index", str(photos), "--index", index, "--model", "vit-b-32-openai"])
    assert r.exit_code == 1 and "built with" in r.stderr  # once it holds vectors, its model binds


def test_weights_that_cannot_be_had_bind_nothing_either(runner, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _shapes(photos, {"a.jpg": ShapeSpec("green", "star")})
    index = str(tmp_path / "idx")
    r = runner.invoke(app, ["index", str(photos), "--index", index, "--model", "vit-b-32-openai"])
    assert r.exit_code == 1 and TRACEBACK not in r.stderr.encode()
    r = runner.invoke(app, ["index", str(photos), "--index", index, "--model", TINY])
    assert r.exit_code == 0, r.stderr


# ------------------------------------------------------------- 2. one file's metadata affects only that file
def test_odd_mtimes_index_like_any_other_file(runner, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    good = _shapes(
        photos,
        {
            "a.jpg": ShapeSpec("red", "circle"),
            "b.jpg": ShapeSpec("blue", "square"),
            "c.jpg": ShapeSpec("green", "star"),
            "far.png": ShapeSpec("yellow", "triangle"),
            "old.png": ShapeSpec("red", "square"),
        },
    )
    os.utime(photos / "far.png", ns=(YEAR_2300_NS, YEAR_2300_NS))  # touch -d 2300-01-01
    os.utime(photos / "old.png", (-2_000_000_000, -2_000_000_000))  # 1906: before the epoch
    roots = [str(photos)]
    odd = _tmpfs_folder()  # mtimes no calendar shows: years 3 million and -3 million
    if odd is not None:
        for name, when in (("huge.jpg", 1e14), ("negative.jpg", -1e14)):
            draw_shape(ShapeSpec("blue", "circle"), size=160, seed=len(name)).save(odd / name)
            os.utime(odd / name, (when, when))
        roots.append(str(odd))
    index = str(tmp_path / "idx")
    r = runner.invoke(app, ["index", *roots, "--index", index, "--model", TINY])
    assert r.exit_code == 0 and TRACEBACK not in r.stderr.encode(), r.stderr
    n = len(good) + (2 if odd is not None else 0)
    assert f"{n} added" in r.stderr and "0 failed" in r.stderr
    r = runner.invoke(app, ["index", *roots, "--index", index])
    assert r.exit_code == 0 and f"{n} unchanged" in r.stderr and "no model loaded" in r.stderr  # never re-embedded
    r = runner.invoke(app, ["search", "a shape", "--index", index, "-k", "50", "-f", "json", "--sort", "date"])
    assert r.exit_code == 0 and "no date yet" not in r.stderr, r.stderr
    taken = {Path(h["path"]).name: h["taken"] for h in json.loads(r.stdout)}
    assert taken["far.png"] == "2300-01-01T00:00:00Z" and taken["old.png"].startswith("1906-")
    if odd is not None:
        assert taken["huge.jpg"] is None and taken["negative.jpg"] is None  # no date, not a crash
        assert list(taken)[-2:] in (["huge.jpg", "negative.jpg"], ["negative.jpg", "huge.jpg"])  # undated: last
    r = runner.invoke(app, ["search", "a shape", "--index", index, "--before", "9999", "-f", "paths"])
    assert r.exit_code == 0 and "far.png" in r.stdout
    info = json.loads(runner.invoke(app, ["info", "--index", index, "-f", "json"]).stdout)
    assert info["taken_newest"] == "2300-01-01T00:00:00Z" and info["taken_unknown"] == 0


# ------------------------------------------------------------------------------ 6. --every is a number of seconds
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "infinity"])
def test_every_that_is_not_a_number_of_seconds_is_a_usage_error(runner, tmp_path: Path, value: str) -> None:
    clip = write_video(tmp_path / "clip.mp4", seconds=1.0)
    for args in (
        ["index", str(clip), "--index", str(tmp_path / "idx"), "--model", TINY, "--every", value],
        ["classify", str(clip), "--labels", "a", "b", "--model", TINY, "--every", value],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "--every" in r.stderr and TRACEBACK not in r.stderr.encode(), r.stderr
    assert not (tmp_path / "idx").exists()  # nothing recorded (a video marked failed would never be retried)


def test_every_is_checked_by_the_core_too(tmp_path: Path) -> None:
    from mmcli.errors import UsageError
    from mmcli.index.job import IndexJob
    from mmcli.index.sync import run_index
    from mmcli.queries import ClassifyRequest

    for bad in (float("inf"), float("-inf"), float("nan"), 0.0, -2.0):
        with pytest.raises(UsageError):
            ClassifyRequest(("x.mp4",), ("a",), every=bad)
        with pytest.raises(UsageError):
            run_index(tmp_path / "idx", IndexJob([str(tmp_path)], model=TINY, every=bad))


# ------------------------------------------------------------------------------------------ 13. dates users give
def test_years_up_to_9999_are_dates_and_an_empty_date_is_an_error(runner, tmp_path: Path) -> None:
    from mmcli.queries.dates import as_text, parse_date, period

    end = parse_date("9999", end=True)
    assert end == 253402300800.0 and parse_date(as_text(end), end=True) == end  # the end of 9999 round-trips
    offset = parse_date("9999-12-31T23:00-05:00")
    assert parse_date(as_text(offset)) == offset
    assert parse_date("9999-12", end=True) == end and parse_date("9999-12-31", end=True) == end
    assert parse_date("2024", end=True) == parse_date("2025") and parse_date("2024-02", end=True) == parse_date(
        "2024-03"
    )
    assert period("0001", "9999")[0] == parse_date("0001-01-01")
    photos = tmp_path / "photos"
    _shapes(photos, {"a.jpg": ShapeSpec("red", "circle")})
    index = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", str(photos), "--index", index, "--model", TINY]).exit_code == 0
    r = runner.invoke(app, ["search", "red", "--index", index, "--before", "9999", "-f", "paths"])
    assert r.exit_code == 0 and "a.jpg" in r.stdout, r.stderr
    r = runner.invoke(app, ["search", "red", "--index", index, "--after", "9999", "-f", "paths"])
    assert r.exit_code == 0 and r.stdout == ""
    for option in ("--after", "--before"):
        for value in ("", " "):
            r = runner.invoke(app, ["search", "red", "--index", index, option, value])
            assert r.exit_code == 2 and "is not a date" in r.stderr and option in r.stderr
    for value in ("10000", "0000", "9999-13"):
        r = runner.invoke(app, ["search", "red", "--index", index, "--before", value])
        assert r.exit_code == 2 and "is not a date" in r.stderr


# ------------------------------------------------------------------------------ 11. --allow-root must be a folder
def test_allow_root_that_is_not_a_folder_is_a_usage_error(runner, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    (tmp_path / "file.jpg").write_bytes(b"x")
    for root in (tmp_path / "no" / "such", tmp_path / "file.jpg"):
        r = runner.invoke(app, ["serve", "--index", str(tmp_path / "idx"), "--allow-root", str(root)])
        assert r.exit_code == 2 and "--allow-root" in r.stderr and str(root) in r.stderr, r.stderr


# ===================================================================================== a real server
def _request(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _json(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    status, _, raw = _request(
        url, "POST", json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    return status, json.loads(raw or b"{}")


def _q(path: Path | str, **more: str) -> str:
    return urllib.parse.urlencode({"path": str(path), **more})


PHOTOS = {
    "red_circle.jpg": ShapeSpec("red", "circle"),
    "blue_square.jpg": ShapeSpec("blue", "square"),
    "green_star.jpg": ShapeSpec("green", "star"),
    "yellow_triangle.jpg": ShapeSpec("yellow", "triangle"),
}


def _start(base: Path, photos: Path, cache: Path, *roots: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "MMCLI_HOME": str(base / "home"), "MMCLI_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("MMCLI_SERVER", None)
    port = _free_port()
    allow = [arg for root in (photos, *roots) for arg in ("--allow-root", str(root))]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmcli", "serve", "--index", "h19", "--port", str(port), "--max-body", "4096", *allow],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=photos,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_until_serving(url, proc)
    return proc, url


def _stop(proc: subprocess.Popen[bytes], home: Path) -> bytes:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode is not None
    assert not (home / "server.json").exists()  # it stopped as asked, and cleaned up
    return err


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("h19")
    photos = base / "photos"
    _shapes(photos, PHOTOS, seed=50)
    write_video(photos / "clip.mp4")  # red circle 0-4 s, blue square 4-8 s, green star 8-10 s
    private = photos / "private"
    private.mkdir(mode=0o700)
    draw_shape(ShapeSpec("red", "star"), size=160, seed=9).save(private / "secret.jpg")
    os.chmod(private / "secret.jpg", 0o600)
    os.chmod(private, 0o700)
    env = {**os.environ, "MMCLI_HOME": str(base / "home"), "HF_HUB_OFFLINE": "1", "MMCLI_SERVER": "off"}
    subprocess.run(
        [sys.executable, "-m", "mmcli", "index", str(photos), "--index", "h19", "--model", TINY, "-q"],
        env=env,
        check=True,
    )
    # made after indexing: only the routes meet them
    os.mkfifo(photos / "fifo.jpg")
    (photos / "to-fifo.jpg").symlink_to(photos / "fifo.jpg")
    (photos / "loop1.jpg").symlink_to(photos / "loop2.jpg")
    (photos / "loop2.jpg").symlink_to(photos / "loop1.jpg")
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    draw_shape(ShapeSpec("blue", "star"), size=160, seed=3).save(outside / "exists.jpg")
    odd = _tmpfs_folder()
    if odd is not None:
        draw_shape(ShapeSpec("green", "circle"), size=160, seed=4).save(odd / "huge.jpg")
        os.utime(odd / "huge.jpg", (1e14, 1e14))
    cache = base / "cache"
    cache.mkdir(mode=0o755)
    (cache / "thumbs").mkdir(mode=0o755)  # what an older mmcli left: looser than it should be
    os.chmod(cache, 0o755)
    os.chmod(cache / "thumbs", 0o755)
    proc, url = _start(base, photos, cache, *([odd] if odd else []))
    state = {"url": url, "photos": photos, "outside": outside, "cache": cache, "base": base, "odd": odd}
    yield state
    err = _stop(proc, base / "home")
    assert TRACEBACK.lower() not in err.lower() and b"internal error" not in err, err.decode()


def _healthy(served) -> None:
    status, _, body = _request(served["url"] + "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


# ------------------------------------------------------------------------- 7. paths that crash or hang
def test_a_nul_byte_in_any_path_is_a_400(served) -> None:
    url, photo = served["url"], served["photos"] / "red_circle.jpg"
    for route in ("thumb", "image"):
        status, _, body = _request(f"{url}/{route}?{_q(str(photo) + chr(0) + '.jpg')}")
        assert status == 400 and b"NUL" in body, body
    nul = str(photo) + "\0x"
    for endpoint, body in (
        ("/classify", {"paths": [nul], "labels": ["a"]}),
        ("/search", {"image": nul}),
        ("/search", {"terms": [{"image": nul}]}),
        ("/search", {"query": "x", "add": [nul]}),
        ("/search", {"query": "x", "within": str(served["photos"]) + "\0"}),
    ):
        status, reply = _json(url + endpoint, body)
        assert status == 400 and "NUL" in reply["error"], (endpoint, body, reply)
    _healthy(served)


def test_symlink_loops_fifos_and_folders_inside_a_root_are_4xx(served) -> None:
    url, photos = served["url"], served["photos"]
    for name in ("loop1.jpg", "fifo.jpg", "to-fifo.jpg", "private"):
        for route in ("thumb", "image"):
            status, _, body = _request(f"{url}/{route}?{_q(photos / name)}")
            assert 400 <= status < 500 and json.loads(body)["error"], (route, name, status, body)
        status, reply = _json(url + "/search", {"image": str(photos / name)})
        assert 400 <= status < 500 and reply["error"], (name, reply)
        status, reply = _json(url + "/search", {"terms": [{"image": str(photos / name)}]})
        assert 400 <= status < 500 and reply["error"], (name, reply)
        # /classify reports each file that cannot be used, as `mmcli classify` does, and classifies the rest
        status, reply = _json(
            url + "/classify", {"paths": [str(photos / name), str(photos / "red_circle.jpg")], "labels": ["a", "b"]}
        )
        assert status == 200 and reply["results"][0]["reason"] and reply["results"][1]["labels"], (name, reply)
    _healthy(served)


def test_many_requests_for_a_fifo_never_stop_the_server(served) -> None:
    url, fifo = served["url"], served["photos"] / "fifo.jpg"
    answers: list[int] = []

    def ask(route: str) -> None:
        answers.append(_request(f"{url}/{route}?{_q(fifo)}")[0])

    threads = [threading.Thread(target=ask, args=(("image", "thumb")[i % 2],)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 60 and set(answers) == {415}
    _healthy(served)
    status, reply = _json(url + "/search", {"query": "a red circle", "top_k": 2})
    assert status == 200 and len(reply["hits"]) == 2
    assert _request(f"{url}/thumb?{_q(served['photos'] / 'red_circle.jpg')}")[0] == 200


def test_a_fifo_swapped_in_after_the_check_is_never_waited_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check-then-open race: a file that was regular when stat'ed and is a FIFO when opened (here: the
    stat is of another file). Each reader must refuse it at once, not wait for a writer forever."""
    from mmcli.errors import ImageLoadError
    from mmcli.media import files, taken
    from mmcli.serve import thumbs

    photo = _shapes(tmp_path, {"real.png": ShapeSpec("red", "circle")})[0]
    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)
    regular = os.stat(photo)
    monkeypatch.setattr(files, "media_stat", lambda _path: regular)
    monkeypatch.setattr(thumbs, "media_stat", lambda _path: regular)

    def outcome(work) -> str:
        result: list[str] = []

        def run() -> None:
            try:
                work()
                result.append("no error")
            except ImageLoadError as exc:
                result.append(exc.reason)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10)
        if thread.is_alive():  # it waits for a writer: give it one, so the test can end
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(10)
            return "waited on the FIFO"
        return result[0]

    for work in (
        lambda: files.read_whole(fifo),
        lambda: thumbs.browser_image(str(fifo)),
        lambda: thumbs.cached_thumbnail(str(fifo), 128, thumbs.PictureCache(tmp_path / "cache")),
    ):
        assert outcome(work) == "not a regular file"
    assert isinstance(files.hash_file(str(fifo)), OSError)  # the index's hashing: an error, at once
    assert files.read_taken(str(fifo)) is None
    assert taken.from_header(b"", 0.0, str(fifo), 10).source == "mtime"  # a header read elsewhere: none


# ---------------------------------------------------------------------------------------- 8. existence oracles
def test_outside_the_roots_the_answer_does_not_depend_on_existence(served) -> None:
    url, outside = served["url"], served["outside"]
    answers = {}
    for name in ("folder", "no-such-folder"):
        answers[name] = _json(url + "/search", {"query": "a red circle", "within": str(outside / name)})
    assert answers["folder"] == answers["no-such-folder"]
    assert answers["folder"][0] == 200 and answers["folder"][1]["hits"] == []
    status, reply = _json(url + "/search", {"query": "x", "within": str(served["photos"] / "no-such-folder")})
    assert status == 400 and "no such folder" in reply["error"]  # inside the roots, existence is no secret
    relative = os.path.relpath(outside, served["photos"])  # the server runs in the photos folder
    for field in ("add", "sub"):
        for weight in ("", "2:"):
            seen = set()
            for name in ("exists.jpg", "missing.jpg", "folder", "no-such-folder"):
                status, reply = _json(url + "/search", {"query": "x", field: [f"{weight}{relative}/{name}"]})
                seen.add((status, reply["error"].replace(name, "NAME")))
            assert len(seen) == 1 and next(iter(seen))[0] == 403, seen
    for name in ("exists.jpg", "missing.jpg"):  # absolute paths: the same 403 as before
        status, reply = _json(url + "/search", {"query": "x", "add": [str(outside / name)]})
        assert status == 403


# ------------------------------------------------------------------------------ 9. private photos, private thumbnails
def test_thumbnails_of_private_photos_are_private(served) -> None:
    url, cache = served["url"], served["cache"]
    secret = served["photos"] / "private" / "secret.jpg"
    status, _, body = _request(f"{url}/thumb?{_q(secret, size='128')}")
    assert status == 200 and body[:2] == b"\xff\xd8"
    files = [p for p in (cache / "thumbs").rglob("*.jpg")]
    assert files
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        folder = file.parent
        while True:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder  # looser folders were tightened
            if folder == cache:
                break
            folder = folder.parent


# ----------------------------------------------------------------------- 10. video hits on the page, on the wire
def test_a_video_hit_shows_its_moment_and_more_like_this_uses_it(served) -> None:
    url, clip = served["url"], served["photos"] / "clip.mp4"
    status, reply = _json(url + "/search", {"query": "a blue square", "top_k": 10, "all_moments": True})
    moments = [h for h in reply["hits"] if h["path"] == str(clip)]
    assert status == 200 and moments and all(h["time"] is not None for h in moments)
    pictures = {}
    for t in ("1", "5", "9"):
        for route in ("thumb", "image"):
            status, headers, body = _request(f"{url}/{route}?{_q(clip, t=t)}")
            assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8", (route, t)
            pictures[route, t] = body
    assert pictures["thumb", "1"] != pictures["thumb", "5"]  # the frame at the moment asked for
    import io

    from PIL import Image

    colour = Image.open(io.BytesIO(pictures["image", "5"])).convert("RGB").getpixel((80, 60))
    assert colour[2] > 150 and colour[0] < 100  # the blue square scene (4-8 s)
    for t, expected in ((1.0, "red_circle.jpg"), (5.0, "blue_square.jpg"), (9.0, "green_star.jpg")):
        status, reply = _json(url + "/search", {"terms": [{"image": str(clip), "time": t}], "top_k": 3})
        assert status == 200, reply
        names = [Path(h["path"]).name for h in reply["hits"]]
        assert names[0] == expected and "clip.mp4" not in names, (t, names)
    for bad in ({"image": str(clip), "time": -1}, {"text": "x", "time": 1}, {"image": str(clip), "time": "inf"}):
        assert _json(url + "/search", {"terms": [bad]})[0] == 400


# ----------------------------------------------------- 12. JSON whatever the content type; foreign forms refused
def test_json_endpoints_take_json_whatever_the_content_type(served) -> None:
    url = served["url"]
    photo = str(served["photos"] / "red_circle.jpg")
    for kind in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data", None):
        headers = {"Content-Type": kind} if kind else {}
        status, _, raw = _request(url + "/search", "POST", b'{"query": "a red car", "top_k": 3}', headers)
        assert status == 200 and len(json.loads(raw)["hits"]) == 3, (kind, raw)
        body = json.dumps({"paths": [photo], "labels": ["red circle", "blue square"]}).encode()
        status, _, raw = _request(url + "/classify", "POST", body, headers)
        assert status == 200 and json.loads(raw)["results"][0]["labels"], (kind, raw)
    curl = (
        subprocess.run(
            ["curl", "-s", "-w", "\n%{http_code}", f"{url}/search", "-d", '{"query": "a red car", "top_k": 3}'],
            capture_output=True,
        )
        if os.path.exists("/usr/bin/curl")
        else None
    )
    if curl is not None:  # the README's own example
        body, code = curl.stdout.rsplit(b"\n", 1)
        assert code == b"200" and len(json.loads(body)["hits"]) == 3
    form = b'{"query": "a red car"}'
    for headers in (
        {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {
            "Sec-Fetch-Site": "cross-site",
            "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-Dest": "document",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    ):
        for route in ("/search", "/classify"):
            status, _, _ = _request(url + route, "POST", form, headers)
            assert status == 403, (route, headers)


# ------------------------------------------------------------------------------------------- 13. HEAD, chunked bodies
def test_head_answers_as_get_without_a_body(served) -> None:
    url = served["url"]
    photo = served["photos"] / "red_circle.jpg"
    for route in (
        "/health",
        "/",
        "/app.js",
        "/openapi.json",
        f"/thumb?{_q(photo)}",
        f"/image?{_q(photo)}",
        f"/thumb?{_q(served['photos'] / 'clip.mp4', t='5')}",
    ):
        get_status, get_headers, get_body = _request(url + route)
        status, headers, body = _request(url + route, "HEAD")
        assert status == get_status == 200 and body == b"", route
        assert headers.get("content-type") == get_headers.get("content-type"), route
        assert int(headers.get("content-length", len(get_body))) == len(get_body), route
    assert _request(url + "/search", "HEAD")[0] == 405  # a POST route


def _chunked(url: str, path: str, size: int) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("POST", path)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    body = b'{"query": "' + b"x" * size + b'"}'
    try:
        for i in range(0, len(body), 1024):
            piece = body[i : i + 1024]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed before the end: fine
    reply = conn.getresponse()
    return reply.status, reply.read()


def test_a_chunked_body_over_the_limit_is_a_413(served) -> None:
    for path in ("/search", "/classify"):
        status, body = _chunked(served["url"], path, 20_000)  # --max-body 4096
        assert status == 413 and b"body over" in body, (path, status, body)
    status, body = _chunked(served["url"], "/search", 100)  # under the limit: answered
    assert status == 200, body
    _healthy(served)


# ----------------------------------------------------------------------------------- 2. odd mtimes on the server
def test_a_file_with_an_mtime_no_calendar_shows_is_served(served) -> None:
    if served["odd"] is None:
        pytest.skip("no tmpfs to keep such an mtime")
    huge = served["odd"] / "huge.jpg"
    for route in ("thumb", "image"):
        status, headers, body = _request(f"{served['url']}/{route}?{_q(huge)}")
        assert status == 200 and body[:2] == b"\xff\xd8", (route, status, body[:200])


# ---------------------------------------------------------------------- 5. a cache that cannot be written
def test_an_unwritable_cache_is_done_without(tmp_path: Path, served) -> None:
    """A second server over the same index whose cache folders for thumbnails and uploads cannot be made
    (a regular file stands in each's place: no one, not even root, can write there); its thumbnails and
    uploads work, with one warning. (The rest of MMCLI_CACHE is left usable: other caches are not this
    test's business.)"""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("thumbs", "uploads"):
        (cache / name).write_bytes(b"x")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "indexes").symlink_to(served["base"] / "home" / "indexes")  # the same index
    proc, url = _start(tmp_path, served["photos"], cache)
    try:
        photo = served["photos"] / "blue_square.jpg"
        for size in ("128", "256", "128"):
            status, headers, body = _request(f"{url}/thumb?{_q(photo, size=size)}")
            assert status == 200 and body[:2] == b"\xff\xd8"
        data = photo.read_bytes()
        before = set(Path(tempfile.gettempdir()).glob("mmcli-upload-*"))
        for _ in range(2):
            status, _, raw = _request(url + "/search/upload?top_k=2", "POST", data, {"Content-Type": "image/jpeg"})
            assert status == 200 and len(json.loads(raw)["hits"]) == 2, raw
        assert set(Path(tempfile.gettempdir()).glob("mmcli-upload-*")) == before  # removed after each search
        assert all((cache / name).read_bytes() == b"x" for name in ("thumbs", "uploads"))
    finally:
        err = _stop(proc, tmp_path / "home")
    assert TRACEBACK not in err and err.count(b"cannot be written") == 1, err.decode()


def test_picture_cache_functions_without_a_cache(tmp_path: Path) -> None:
    from mmcli.serve.thumbs import PictureCache, cached_thumbnail, uploaded_image

    (tmp_path / "file").write_bytes(b"")
    said: list[str] = []
    cache = PictureCache(tmp_path / "file" / "cache", said.append)
    photo = _shapes(tmp_path / "p", {"a.png": ShapeSpec("red", "circle")})[0]
    assert cached_thumbnail(str(photo), 128, cache).data[:2] == b"\xff\xd8"
    with uploaded_image(photo.read_bytes(), cache) as tmp:
        assert Path(tmp).is_file() and stat.S_IMODE(Path(tmp).stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(tmp).parent.stat().st_mode) == 0o700
        assert not str(tmp).startswith(str(tmp_path))
    assert not Path(tmp).exists() and not Path(tmp).parent.exists()
    assert len(said) == 1 and "cannot be written" in said[0]


def test_a_read_only_cache_folder_is_done_without(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through any mode")
    from mmcli.serve.thumbs import PictureCache, cached_thumbnail, uploaded_image

    folder = tmp_path / "cache"
    folder.mkdir(mode=0o500)
    said: list[str] = []
    cache = PictureCache(folder, said.append)
    photo = _shapes(tmp_path / "p", {"a.png": ShapeSpec("red", "circle")})[0]
    try:
        assert cached_thumbnail(str(photo), 128, cache).data
        with uploaded_image(photo.read_bytes(), cache) as tmp:
            assert Path(tmp).is_file()
    finally:
        folder.chmod(0o700)
    assert len(said) == 1


# ------------------------------------------------------------------------------------------- 10. the page itself
@pytest.fixture(scope="module")
def browser(served, tmp_path_factory: pytest.TempPathFactory):
    from test_pictures_and_groups import _browser

    driver = _browser(tmp_path_factory.mktemp("chrome"))
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def test_the_page_shows_a_video_moment_and_searches_like_it(served, browser) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def searches() -> int:
        return int(browser.execute_script("return document.body.dataset.searches || '0'"))

    def wait(before: int) -> None:
        WebDriverWait(browser, 60).until(lambda d: searches() > before)
        status = browser.find_element("id", "status")
        assert "error" not in (status.get_attribute("class") or ""), status.text

    browser.get(served["url"] + "/")
    before = searches()
    browser.find_element("id", "q").send_keys("a green star", Keys.ENTER)
    wait(before)
    video = browser.find_element("css selector", "#results .hit[data-time]")
    time = float(video.get_attribute("data-time"))
    assert video.get_attribute("title") == str(served["photos"] / "clip.mp4") and 8 <= time <= 10
    assert "\u25b6" in video.find_element("css selector", ".moment").text
    img = video.find_element("css selector", "img")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].complete", img))
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 0  # the frame, not "cannot show"
    assert "t=" in img.get_attribute("src")
    before = searches()
    video.find_element("css selector", ".pic").click()  # more like this: that moment
    wait(before)
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .hit')).map(e => e.title.split('/').pop())"
    )
    assert names and names[0] == "green_star.jpg" and "clip.mp4" not in names, names
    assert "at " in browser.find_element("id", "example-name").text
    assert "t=" in browser.current_url
