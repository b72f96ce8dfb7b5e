"""`mmcli serve`: a real uvicorn server on loopback; the CLI uses it and prints what it prints alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import TINY, run_mmcli

from mmcli.shapes import write_corpus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("serve")
    photos = base / "photos"
    write_corpus(photos, 16, seed=3)
    home = base / "home"
    env = {**os.environ, "MMCLI_HOME": str(home), "MMCLI_CACHE": str(base / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("MMCLI_SERVER", None)
    subprocess.run(
        [sys.executable, "-m", "mmcli", "index", str(photos), "--index", "shapes", "--model", TINY, "-q"],
        env=env,
        check=True,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mmcli",
            "serve",
            "--index",
            "shapes",
            "--port",
            str(port),
            "--allow-root",
            str(photos),
            "--max-body",
            "4096",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            _get(url + "/health")
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode())
            time.sleep(0.2)
    yield {"url": url, "env": env, "photos": photos, "home": home, "base": base}
    proc.terminate()
    proc.wait(timeout=30)
    assert not (home / "server.json").exists()  # the discovery file goes with the server


def test_health_and_openapi(server) -> None:
    health = _get(server["url"] + "/health")
    assert health["status"] == "ok" and health["model"] == TINY
    schema = _get(server["url"] + "/openapi.json")
    assert {"/search", "/classify", "/health"} <= set(schema["paths"])
    info = json.loads((server["home"] / "server.json").read_text())
    assert info["url"] == server["url"]


def _cli(server, *args: str, use_server: bool) -> subprocess.CompletedProcess[bytes]:
    env = {**server["env"], "MMCLI_SERVER": server["url"] if use_server else "off"}
    return run_mmcli(*args, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ["search", "a red circle", "--index", "shapes", "-k", "5"],
        ["search", "a circle", "--add", "2:blue", "--sub", "red", "--index", "shapes", "-f", "csv"],
    ],
)
def test_search_output_is_identical_with_and_without_server(server, args: list[str]) -> None:
    before = _get(server["url"] + "/health")["served"]["search"]
    via = _cli(server, *args, use_server=True)
    assert _get(server["url"] + "/health")["served"]["search"] == before + 1  # it really went through the server
    alone = _cli(server, *args, use_server=False)
    assert via.returncode == alone.returncode == 0, (via.stderr, alone.stderr)
    assert via.stdout == alone.stdout and via.stdout


def test_search_by_image_and_classify_identical(server) -> None:
    img = str(sorted(server["photos"].iterdir())[0])
    missing = str(server["photos"] / "missing.jpg")
    for args in (
        ["search", "--image", img, "--index", "shapes", "-k", "3"],
        ["classify", img, missing, "--labels", "red circle", "blue star", "--model", TINY],
    ):
        before = _get(server["url"] + "/health")["served"][args[0]]
        via = _cli(server, *args, use_server=True)
        assert _get(server["url"] + "/health")["served"][args[0]] == before + 1  # it went through the server
        alone = _cli(server, *args, use_server=False)
        assert via.returncode == alone.returncode == 0, (via.stderr, alone.stderr)
        assert via.stdout == alone.stdout and via.stdout
        assert via.stderr.count(b"skipped") == alone.stderr.count(b"skipped")


def test_server_is_found_without_being_named(server) -> None:
    env = {**server["env"], "MMCLI_SERVER": None}  # no server named: it must be found
    before = _get(server["url"] + "/health")["served"]["search"]
    r = run_mmcli("search", "a green square", "--index", "shapes", "-k", "2", env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert _get(server["url"] + "/health")["served"]["search"] == before + 1


def test_limits_body_size_and_roots(server) -> None:
    status, body = _post(server["url"] + "/search", json.dumps({"query": "x" * 10_000}).encode())
    assert status == 413 and "body over" in body["error"]
    status, body = _post(
        server["url"] + "/classify", json.dumps({"paths": ["/etc/hostname"], "labels": ["a"]}).encode()
    )
    assert status == 403 and "outside the allowed roots" in body["error"]
    status, body = _post(server["url"] + "/search", b"not json")
    assert status == 400
    r = _cli(server, "classify", "/etc/hostname", "--labels", "a", "b", "--model", TINY, use_server=True)
    assert r.returncode == 2 and b"outside the allowed roots" in r.stderr


def test_unreachable_server_falls_back(server) -> None:
    args = ["search", "a red circle", "--index", "shapes", "-k", "3"]
    dead = run_mmcli(*args, "--server", f"http://127.0.0.1:{_free_port()}", env=server["env"])
    alone = _cli(server, *args, use_server=False)
    assert dead.returncode == 0 and dead.stdout == alone.stdout
    assert b"working in-process" in dead.stderr


def test_found_server_refusing_a_path_falls_back(server) -> None:
    from mmcli.shapes import ShapeSpec, draw_shape

    outside = server["base"] / "outside.png"
    draw_shape(ShapeSpec("blue", "star"), size=96, seed=1).save(outside)
    env = {**server["env"], "MMCLI_SERVER": None}  # no server named: it must be found
    r = run_mmcli("classify", str(outside), "--labels", "blue star", "red circle", "--model", TINY, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["labels"][0]["label"] == "blue star"


def test_relative_image_term_means_the_same_through_a_server(server) -> None:
    """Terms are parsed once, in the CLI's folder: a relative image path is that folder's file, not text."""
    name = sorted(p.name for p in server["photos"].iterdir())[0]
    cmd = [sys.executable, "-m", "mmcli", "search", "a circle", "--add", f"2:{name}", "--index", "shapes", "-k", "5"]
    before = _get(server["url"] + "/health")["served"]["search"]
    via = subprocess.run(
        cmd, cwd=server["photos"], env={**server["env"], "MMCLI_SERVER": server["url"]}, capture_output=True
    )
    assert _get(server["url"] + "/health")["served"]["search"] == before + 1
    alone = subprocess.run(cmd, cwd=server["photos"], env={**server["env"], "MMCLI_SERVER": "off"}, capture_output=True)
    assert via.returncode == alone.returncode == 0, (via.stderr, alone.stderr)
    assert via.stdout == alone.stdout and via.stdout
    as_text = subprocess.run(
        [*cmd[:6], f"2:{name}x", *cmd[7:]],
        cwd=server["photos"],
        env={**server["env"], "MMCLI_SERVER": "off"},
        capture_output=True,
    )
    assert as_text.returncode == 0 and as_text.stdout != alone.stdout  # the image term really was an image


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": 5}, "query"),
        ({"query": "a", "top_k": -1}, "top_k"),
        ({"query": "a", "top_k": 1e400}, "top_k"),
        ({"terms": [{"text": "a", "image": "/x.jpg"}]}, "terms"),
        ({"query": "a", "unknown": 1}, "unknown"),
    ],
)
def test_search_bodies_of_the_wrong_shape_get_422_naming_the_field(server, body: dict, field: str) -> None:
    status, reply = _post(server["url"] + "/search", json.dumps(body).encode())
    assert status == 422 and field in reply["error"], reply


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"paths": "/photos/x.jpg", "labels": ["a"]}, "paths"),
        ({"paths": ["/x.jpg"], "labels": [5, None]}, "labels"),
        ({"paths": ["/x.jpg"], "labels": ["a"], "top_k": -1}, "top_k"),
    ],
)
def test_classify_bodies_of_the_wrong_shape_get_422_naming_the_field(server, body: dict, field: str) -> None:
    status, reply = _post(server["url"] + "/classify", json.dumps(body).encode())
    assert status == 422 and field in reply["error"], reply
