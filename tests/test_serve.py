"""`mmcli serve`: a real uvicorn server on loopback; the CLI uses it and prints what it prints alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import TINY, run_mmcli

from mmcli.demo.shapes import write_corpus

JAN_2020 = 1577880000  # 2020-01-01T12:00:00Z


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_until_serving(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            _get(url + "/health")
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode() if proc.stderr else f"exit {proc.returncode}")
            time.sleep(0.2)
    pytest.fail(f"{url} never answered")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("serve")
    photos = base / "photos"
    write_corpus(photos, 16, seed=3)
    for i, path in enumerate(sorted(photos.iterdir())):  # dates for --after/--before: every 15 days of 2020
        when = JAN_2020 + i * 15 * 86400
        os.utime(path, (when, when))
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
    _wait_until_serving(url, proc)
    yield {"url": url, "env": env, "photos": photos, "home": home, "base": base, "proc": proc, "port": port}
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
        [
            "search",
            "a circle",
            "--index",
            "shapes",
            "-k",
            "20",
            "--after",
            "2020-03",
            "--before",
            "2020-08",
            "-f",
            "json",
        ],
        [
            "search",
            "a red circle",
            "--index",
            "shapes",
            "-k",
            "3",
            "--after",
            "2020-02-10T00:00+01:00",
            "--sort",
            "-date",
        ],
        ["search", "a red circle", "--index", "shapes", "--before", "2019", "-f", "csv"],
    ],
)
def test_search_output_is_identical_with_and_without_server(server, args: list[str]) -> None:
    before = _get(server["url"] + "/health")["served"]["search"]
    via = _cli(server, *args, use_server=True)
    assert _get(server["url"] + "/health")["served"]["search"] == before + 1  # it really went through the server
    alone = _cli(server, *args, use_server=False)
    assert via.returncode == alone.returncode == 0, (via.stderr, alone.stderr)
    assert via.stdout == alone.stdout and via.stdout


def test_dates_narrow_and_order_the_same_through_a_server(server) -> None:
    args = ["search", "a circle", "--index", "shapes", "-k", "50", "-f", "json", "--sort", "date"]
    hits = {}
    for use_server in (True, False):
        r = _cli(server, *args, "--after", "2020-03", "--before", "2020-03", use_server=use_server)
        assert r.returncode == 0, r.stderr
        hits[use_server] = json.loads(r.stdout)
    assert hits[True] == hits[False]
    assert [h["taken"] for h in hits[True]] == ["2020-03-01T12:00:00Z", "2020-03-16T12:00:00Z", "2020-03-31T12:00:00Z"]
    assert {h["taken_source"] for h in hits[True]} == {"mtime"}
    status, reply = _post(
        server["url"] + "/search",
        json.dumps({"query": "a circle", "after": "2020-03", "before": "2020-03", "sort": "-date"}).encode(),
    )
    assert status == 200 and [h["taken"] for h in reply["hits"]] == [h["taken"] for h in hits[True]][::-1]
    status, reply = _post(server["url"] + "/search", json.dumps({"query": "a", "after": "2020-13"}).encode())
    assert status == 400 and "2020-13" in reply["error"]


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
    from mmcli.demo.shapes import ShapeSpec, draw_shape

    outside = server["base"] / "outside.png"
    draw_shape(ShapeSpec("blue", "star"), size=96, seed=1).save(outside)
    env = {**server["env"], "MMCLI_SERVER": None}  # no server named: it must be found
    r = run_mmcli("classify", str(outside), "--labels", "blue star", "red circle", "--model", TINY, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["labels"][0]["label"] == "blue star"


def test_auto_threshold_explain_and_rerank_answer_the_same_through_a_server(server) -> None:
    from second_model import write_second_model

    model = write_second_model(server["photos"] / ".models" / "tiny-moved")  # under the allowed root
    outside = write_second_model(server["base"] / "tiny-outside")
    for extra in (["--threshold", "auto", "--explain"], ["--rerank", model, "--rerank-k", "8", "--explain"]):
        args = ["search", "a red circle", "--index", "shapes", "-k", "5", "-f", "json", *extra]
        before = _get(server["url"] + "/health")["served"]["search"]
        via = _cli(server, *args, use_server=True)
        assert _get(server["url"] + "/health")["served"]["search"] == before + 1
        alone = _cli(server, *args, use_server=False)
        assert via.returncode == alone.returncode == 0, (via.stderr, alone.stderr)
        assert via.stdout == alone.stdout and b'"explain"' in via.stdout
        said = [[line for line in r.stderr.splitlines() if b"--threshold auto" in line] for r in (via, alone)]
        assert said[0] == said[1]
    refused = _cli(server, "search", "a red circle", "--index", "shapes", "--rerank", outside, use_server=True)
    assert refused.returncode == 2 and b"outside the allowed roots" in refused.stderr
    body = {"query": "a red circle", "threshold": "auto", "explain": True, "top_k": 20}
    status, reply = _post(server["url"] + "/search", json.dumps(body).encode())
    assert status == 200 and isinstance(reply["threshold"], float), reply
    assert reply["hits"] and all(h["score"] >= reply["threshold"] for h in reply["hits"])
    assert set(reply["hits"][0]["explain"][0]) == {"term", "weight", "cosine"}
    status, reply = _post(server["url"] + "/search", json.dumps({"query": "a red circle"}).encode())
    assert status == 200 and reply["hits"][0]["explain"] is None and reply["threshold"] is None
    status, reply = _post(server["url"] + "/search", json.dumps({"query": "a", "threshold": "high"}).encode())
    assert status == 400 and "--threshold" in reply["error"]


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
    "body",
    [
        {"query": 5},
        {"query": "a", "top_k": -1},
        {"query": "a", "top_k": 1e400},
        {"query": "a", "unknown": 1},
        {"query": "a", "sort": "newest"},
        {"query": "a", "after": 2020},
        {"query": "a", "threshold": 5},
        {"query": "a", "threshold": "nan"},
        {"query": "a", "rerank_k": 0, "rerank": "mmcli-tiny"},
        {"query": "a", "add": [3]},
        {"terms": [{"text": "a", "time": 3}]},
        {},
    ],
)
def test_search_values_the_builder_refuses_are_a_400_with_its_words(server, body: dict) -> None:
    """The server reads a body with the builder every way in uses: what it refuses, it refuses with the
    words the command line says."""
    from mmcli.errors import UsageError
    from mmcli.queries.build import search_request

    status, reply = _post(server["url"] + "/search", json.dumps(body).encode())
    with pytest.raises(UsageError) as here:
        search_request(**json.loads(json.dumps(body)))
    assert status == 400 and reply["error"] == here.value.message, reply


def test_a_body_that_is_no_json_object_is_a_422(server) -> None:
    for endpoint in ("/search", "/classify"):
        status, reply = _post(server["url"] + endpoint, b'["a red car"]')
        assert status == 422 and reply["error"].startswith("body"), reply


def test_a_deeply_nested_body_is_a_400_and_the_server_goes_on(server) -> None:
    body = b'{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, reply = _post(server["url"] + "/search", body)
    assert status == 413  # over --max-body (4096 here): refused before it is parsed
    body = b'{"query": ' + b"[" * 2_000 + b"]" * 2_000 + b"}"
    status, reply = _post(server["url"] + "/search", body)
    assert status in (400, 422) and reply.get("error"), reply
    assert _get(server["url"] + "/health")["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"paths": "/photos/x.jpg", "labels": ["a"]}, "paths"),
        ({"paths": ["/x.jpg"], "labels": [5, None]}, "labels"),
        ({"paths": ["/x.jpg"], "labels": ["a"], "top_k": -1}, "--top-k"),
        ({"paths": ["/x.jpg"], "labels": ["a"], "threshold": 1.5}, "--threshold"),
        ({"paths": ["/x.jpg"], "labels": ["a"], "every": 0}, "--every"),
    ],
)
def test_classify_values_the_builder_refuses_are_a_400_naming_them(server, body: dict, field: str) -> None:
    status, reply = _post(server["url"] + "/classify", json.dumps(body).encode())
    assert status == 400 and field in reply["error"], reply


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Host": "evil.example"}, 403),  # DNS rebinding: a foreign name that resolves to 127.0.0.1
        ({"Host": "evil.example:8765", "Origin": "http://evil.example:8765"}, 403),
        ({"Origin": "null"}, 403),
        ({"Host": "localhost"}, 200),
        ({}, 200),  # curl, scripts, mmcli itself send no Origin
    ],
)
def test_foreign_pages_are_refused(server, headers: dict[str, str], status: int) -> None:
    body = json.dumps({"query": "a red circle", "top_k": 1}).encode()
    got, reply = _post(server["url"] + "/search", body, headers)
    assert got == status, reply
    if status == 403:
        assert "hits" not in reply and ("refused" in reply["error"] or "not served" in reply["error"]), reply
    same_origin = {"Origin": server["url"]}
    assert _post(server["url"] + "/search", body, same_origin)[0] == 200  # the server's own pages


def test_a_moment_of_a_link_out_of_the_roots_is_refused(server) -> None:
    link = server["photos"] / "escape.mp4"
    link.symlink_to("/etc/hostname")  # inside the roots by name, outside once resolved
    try:
        for body in ({"image": f"{link}#t=1"}, {"terms": [{"image": f"{link}#t=1"}]}, {"add": [f"{link}#t=1"]}):
            status, reply = _post(server["url"] + "/search", json.dumps(body).encode())
            assert status == 403 and "outside the allowed roots" in reply["error"], (body, reply)
    finally:
        link.unlink()


def test_missing_and_existing_files_outside_the_roots_get_the_same_answer(server) -> None:
    for path in ("/etc/hostname", "/no/such/file.jpg"):
        status, reply = _post(server["url"] + "/search", json.dumps({"image": path}).encode())
        assert status == 403 and "outside the allowed roots" in reply["error"], reply
        status, reply = _post(server["url"] + "/classify", json.dumps({"paths": [path], "labels": ["a"]}).encode())
        assert status == 403 and "outside the allowed roots" in reply["error"], reply


def test_a_second_server_on_the_same_home_is_refused_and_leaves_the_first_alone(server) -> None:
    before = (server["home"] / "server.json").read_bytes()
    r = run_mmcli("serve", "--index", "shapes", "--port", str(_free_port()), env=server["env"])
    assert r.returncode == 2 and b"another mmcli serve" in r.stderr, r.stderr
    assert b"mmcli serve: http" not in r.stderr  # refused before it loads a model and says it is up
    assert (server["home"] / "server.json").read_bytes() == before
    assert _get(server["url"] + "/health")["status"] == "ok"


def test_a_port_in_use_is_one_error_line_before_any_banner(server, tmp_path: Path) -> None:
    env = {**server["env"], "MMCLI_HOME": str(tmp_path / "home")}  # (not the first server's: no discovery refusal)
    index = str(server["home"] / "indexes" / "shapes")
    r = run_mmcli("serve", "--index", index, "--port", str(server["port"]), env=env)
    said = r.stderr.decode()
    assert r.returncode == 1, said  # (uvicorn's own failure was exit 3, after the banner)
    assert said.splitlines()[0] == f"mmcli: error: 127.0.0.1:{server['port']} is in use", said
    assert said.splitlines()[1].startswith("hint: pick another port with --port") and len(said.splitlines()) == 2
    assert "mmcli serve: http" not in said and "Errno" not in said and "Traceback" not in said
    assert _get(server["url"] + "/health")["status"] == "ok"  # the first server goes on


def test_discovery_file_is_private_and_its_token_never_travels(server) -> None:
    path = server["home"] / "server.json"
    assert path.stat().st_mode & 0o077 == 0
    info = json.loads(path.read_text())
    req = urllib.request.Request(server["url"] + "/health", headers={"X-Mmcli-Nonce": "abc"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
        assert r.headers["X-Mmcli-Proof"] and info["token"] not in r.headers["X-Mmcli-Proof"]
    assert info["token"] not in body


class _Impostor:
    """Whatever else listens on a port: answers every request with ``reply`` and records the methods."""

    def __init__(self, reply: bytes) -> None:
        import http.server
        import threading

        seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(self.command)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.seen = seen
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.mark.parametrize("reply", [b"not json", b"{}", b'{"hits": [{"rank": 1, "path": "/x", "score": 1.0}]}'])
def test_a_stale_discovery_file_never_sends_the_query_elsewhere(tmp_path, server, reply: bytes) -> None:
    """server.json names a live pid (this test's) and a port where something else answers."""
    impostor = _Impostor(reply)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(server["home"] / "indexes", home / "indexes")
    info = {"url": impostor.url, "pid": os.getpid(), "index": str(home / "indexes" / "shapes"), "token": "t" * 32}
    (home / "server.json").write_text(json.dumps(info))
    try:
        args = ["search", "a red circle", "--index", "shapes", "-k", "3"]
        env = {**server["env"], "MMCLI_HOME": str(home), "MMCLI_SERVER": None}
        r = run_mmcli(*args, env=env)
        alone = run_mmcli(*args, env={**env, "MMCLI_SERVER": "off"})
    finally:
        impostor.close()
    assert r.returncode == 0 and r.stdout == alone.stdout, r.stderr
    assert b"working in-process" in r.stderr and b"Traceback" not in r.stderr
    assert impostor.seen == ["GET"]  # only the check; the query never left this process


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [("not a url", 2, b"is not the URL"), ("ftp://127.0.0.1:1", 2, b"is not the URL"), ("http://:0", 2, b"URL")],
)
def test_bad_server_urls_are_usage_errors(server, value: str, code: int, message: bytes) -> None:
    r = run_mmcli("search", "a red circle", "--index", "shapes", env={**server["env"], "MMCLI_SERVER": value})
    assert r.returncode == code and message in r.stderr and b"Traceback" not in r.stderr, r.stderr


def test_server_url_without_a_scheme_works(server) -> None:
    before = _get(server["url"] + "/health")["served"]["search"]
    env = {**server["env"], "MMCLI_SERVER": f"localhost:{server['port']}"}
    r = run_mmcli("search", "a red circle", "--index", "shapes", "-k", "2", env=env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    assert _get(server["url"] + "/health")["served"]["search"] == before + 1


def test_a_stopped_server_costs_seconds_not_a_minute(server) -> None:
    """Ctrl-Z on the server: the CLI's /health check times out (2 s) and it works in-process."""
    args = ["search", "a red circle", "--index", "shapes", "-k", "3"]
    alone = _cli(server, *args, use_server=False)
    server["proc"].send_signal(signal.SIGSTOP)
    try:
        r = run_mmcli(*args, env={**server["env"], "MMCLI_SERVER": server["url"]}, timeout=40)
    finally:
        server["proc"].send_signal(signal.SIGCONT)
    assert r.returncode == 0 and r.stdout == alone.stdout and b"working in-process" in r.stderr


def test_endpoints_run_off_the_event_loop() -> None:
    """Blocking model work in an ``async def`` endpoint would stall /health for every client."""
    import inspect

    from mmcli.engine.local import LocalEngine
    from mmcli.serve.app import ServerConfig, create_app

    app = create_app(LocalEngine(None), ServerConfig((Path.cwd(),)))
    endpoints = {
        r.path: r.endpoint for r in app.routes if getattr(r, "path", "") in ("/search", "/classify", "/health")
    }
    assert len(endpoints) == 3
    assert not any(inspect.iscoroutinefunction(fn) for fn in endpoints.values())


def test_health_answers_while_a_long_classification_runs(server, tmp_path: Path) -> None:
    """A second server (its own home, a body limit big enough for 3,000 paths) whose /classify is held
    at the named point ``serve.classify`` until /health has answered."""
    import threading

    home = tmp_path / "home"
    marks = tmp_path / "marks"
    marks.mkdir()
    shutil.copytree(server["home"] / "indexes", home / "indexes")
    env = {**server["env"], "MMCLI_HOME": str(home)}
    env |= {"MMCLI_FAULT": "serve.classify:1:hold", "MMCLI_FAULT_MARKS": str(marks)}
    port = _free_port()
    args = ["serve", "--index", "shapes", "--port", str(port), "--allow-root", str(server["photos"])]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmcli", *args, "--max-body", "10000000"], env=env, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, proc)
        photo = str(sorted(server["photos"].iterdir())[0])
        body = json.dumps({"paths": [photo] * 3000, "labels": ["red circle", "blue star"]}).encode()
        results: list[int] = []

        def classify() -> None:
            req = urllib.request.Request(url + "/classify", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                results.append(len(json.loads(r.read())["results"]))

        worker = threading.Thread(target=classify)
        worker.start()
        deadline = time.monotonic() + 120
        while not (marks / "serve.classify.held").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the classification never started"
            time.sleep(0.01)
        assert _get(url + "/health")["status"] == "ok"  # answered while the classification is held mid-work
        assert worker.is_alive() and not results
        (marks / "serve.classify.release").touch()
        worker.join(timeout=600)
        assert results == [3000]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("host", "beyond"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("0", True),
        ("", True),
        ("0x0", True),
        ("0.0.0.0", True),
    ],
)
def test_listening_beyond_loopback_is_recognised(host: str, beyond: bool) -> None:
    from mmcli.serve.app import beyond_loopback

    assert beyond_loopback(host) is beyond


def test_a_video_classified_by_the_server_gives_its_timeline_as_the_command_does(server, tmp_path: Path) -> None:
    """POST /classify of a video: one item per stretch (start, end, its label), in input order, the
    same stretches and scores as `mmcli classify` in-process."""
    pytest.importorskip("av")
    sys.path.insert(0, str(Path(__file__).parent))
    from videos import write_video

    clips = server["photos"] / ".clips"  # under the allowed root (hidden: the corpus listings skip it)
    clips.mkdir(exist_ok=True)
    video = write_video(clips / "shapes.mp4")
    photo = str(sorted(p for p in server["photos"].iterdir() if p.is_file())[0])
    labels = ["red circle", "blue square", "green star"]
    status, reply = _post(
        server["url"] + "/classify", json.dumps({"paths": [str(video), photo], "labels": labels}).encode()
    )
    assert status == 200, reply
    rows = reply["results"]
    assert [r["path"] for r in rows] == [str(video)] * 3 + [photo]
    assert [r["labels"][0]["label"] for r in rows[:3]] == labels
    assert rows[3]["start"] is None and rows[3]["end"] is None and len(rows[3]["labels"]) == 3
    alone = run_mmcli(
        "classify",
        str(video),
        "--labels",
        *labels,
        "--model",
        TINY,
        "-f",
        "json",
        env={**server["env"], "MMCLI_SERVER": "off"},
    )
    assert alone.returncode == 0, alone.stderr
    expected = json.loads(alone.stdout)
    got = [{"path": r["path"], "start": r["start"], "end": r["end"], **r["labels"][0]} for r in rows[:3]]
    assert [(e["start"], e["end"], e["label"]) for e in expected] == [(g["start"], g["end"], g["label"]) for g in got]
    assert [g["score"] for g in got] == pytest.approx([e["score"] for e in expected], abs=1e-6)
