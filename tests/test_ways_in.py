"""One body, one rule, one wire, without processes: the fast reader and Typer hand a command's body the
same values (both derived from one declaration); a request is built by one builder and refused by one
rule whichever way it comes in (Typer, the fast path, the Python API; the server, MCP and the helper in
their own files); requests and results keep one shape on the wire; where a helper's socket may live.
(Helpers at work: test_helper.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

import mmcli
from mmcli import wire
from mmcli.cli import app, fast
from mmcli.cli.classify import COMMAND as CLASSIFY
from mmcli.cli.declare import Command
from mmcli.cli.engines import helper_of
from mmcli.cli.search import COMMAND as SEARCH
from mmcli.engine.local import LocalEngine
from mmcli.errors import UsageError
from mmcli.helper import place
from mmcli.queries import ClassifyRequest, SearchRequest, Term, build_terms, classify_request, search_request
from mmcli.results import Classification, FileFailure, Health, Hit, LabelScore, SearchResult, Segment, TermScore

COMMANDS = {"search": SEARCH, "classify": CLASSIFY}


# ------------------------------------------------------------------------------ one declaration
READ = [  # (command, args, read by the fast path: else the command line reads them)
    ("search", ["a", "red", "car"], True),
    ("search", ["a dog", "-k", "5", "--format=csv", "--exact", "-i", "holiday"], True),
    (
        "search",
        ["x", "--threshold", "0.3", "--in", "p", "--after", "2024", "--before=2024-06", "--all-moments", "-0"],
        True,
    ),
    ("search", ["x", "--top-k", "1_0", "--null", "--add", "2:x", "--add", "y", "--sub=z", "-k", "3", "-k", "4"], True),
    ("search", ["--sort", "date", "--image", "q.jpg", "--", "a", "b"], True),
    ("search", ["x", "--threshold", "auto", "--explain", "--rerank", "m", "--rerank-k", "7", "--model", "m"], True),
    ("search", ["x", "--html", "p.html", "--grid", "g.png", "--server", "off", "--preview", "blocks"], True),
    ("search", ["x", "--preview"], True),  # a bare --preview: auto
    ("search", ["x", "--sort", "-date"], False),  # a value starting with "-"
    ("search", ["x", "--", "-not-an-option"], False),
    ("search", ["x", "-k5"], False),  # run together
    ("search", ["x", "--exact=yes"], False),
    ("search", ["x", "--help"], False),
    ("search", ["x", "--frobnicate"], False),
    ("classify", ["a.jpg", "b", "--labels", "cat", "dog", "-f", "csv", "-q"], True),
    ("classify", ["a.jpg", "-l", "cat,dog", "--template", "a {}", "--template", "b {}", "--multi-label"], True),
    ("classify", ["--labels", "cat", "--", "x.jpg", "y.jpg"], True),
    ("classify", ["x.jpg", "--labels", "cat", "--model=mmcli-tiny", "--max-pixels", "1000", "-k", "2"], True),
    ("classify", ["x.jpg", "-l", "cat", "--templates", "simple", "--labels-file", "l.txt", "--threshold", "0.2"], True),
    ("classify", ["x.jpg", "-l", "cat", "--include-hidden", "--device", "cpu", "-b", "4", "--workers", "0"], True),
    ("classify", ["x.jpg", "--labels", "cat", "--every", "0.5", "--max-frames", "9", "--html", "p.html", "-z"], True),
    ("classify", ["-", "--labels", "cat"], False),  # stdin
]


@pytest.mark.parametrize(("command", "args", "read"), READ)
def test_the_fast_reader_hands_the_body_what_typer_hands_it(
    runner: Any, monkeypatch: pytest.MonkeyPatch, command: str, args: list[str], read: bool
) -> None:
    """Both read the one declaration: whatever the fast path reads, the body gets the very values Typer
    gives it (every option, defaults included); anything else is left to the command line."""
    seen: list[dict[str, Any]] = []

    def body(self: Command, values: Any) -> int:
        seen.append(dict(values))
        return 0

    monkeypatch.setattr(Command, "__call__", body)
    code = fast.run([command, *args])
    assert (code is not None) == read
    if code is None:
        return
    typed = runner.invoke(app, [command, *args])
    assert typed.exit_code == 0, typed.stderr
    assert len(seen) == 2 and seen[0] == seen[1] and set(seen[0]) == {o.name for o in COMMANDS[command].options}


def test_no_flag_is_declared_twice_in_a_command() -> None:
    from mmcli.cli.index import COMMAND as INDEX
    from mmcli.cli.ocr import COMMAND as OCR

    for declared in (SEARCH, CLASSIFY, OCR, INDEX):
        flags = [f for o in declared.options for f in o.flags]
        assert len(flags) == len(set(flags)), declared.name
        names = [o.name for o in declared.options]
        assert len(names) == len(set(names)), declared.name


def test_the_typer_command_is_the_declaration() -> None:
    group = typer.main.get_command(app)
    for name, declared in COMMANDS.items():
        params = {p.name: p for p in group.commands[name].params}
        assert list(params) == [o.name for o in declared.options]
        for option in declared.options:
            assert set(params[option.name].opts) == set(option.flags or (option.name,)), option.name
    requested = {o.name for o in SEARCH.options if o.request}
    fields = {f.name for f in dataclasses.fields(SearchRequest)}
    assert fields - requested == {"terms", "max_pixels"}  # terms: query/image/add/sub; max_pixels: the default
    assert requested - fields == {"query", "image", "add", "sub"}


# ------------------------------------------------------------------------------ one rule
SEARCH_REFUSED = [
    (["--threshold", "nan"], {"threshold": float("nan")}),
    (["--threshold", "5"], {"threshold": 5}),
    (["--threshold", "inf"], {"threshold": float("inf")}),
    (["--threshold", "1.5"], {"threshold": 1.5}),
    (["--threshold", "-3"], {"threshold": -3}),
    (["--threshold", "high"], {"threshold": "high"}),
    (["-k", "0"], {"k": 0}),
    (["--rerank-k", "0", "--rerank", "m"], {"rerank_k": 0, "rerank": "m"}),
    (["--sort", "newest"], {"sort": "newest"}),
    (["--after", "2024", "--before", "2023"], {"after": "2024", "before": "2023"}),
]


@pytest.mark.parametrize(("args", "api"), SEARCH_REFUSED)
def test_a_search_value_is_refused_the_same_way_every_way_in(
    runner: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], api: dict[str, Any]
) -> None:
    """Typer and the fast path (one body: the same bytes), and the Python API (the same message) refuse
    what the request refuses; nothing is searched (no index is needed to be told)."""
    typed = runner.invoke(app, ["search", "a red car", *args, "--index", str(tmp_path / "none")])
    assert typed.exit_code == 2 and typed.stdout == "" and typed.stderr.startswith("mmcli: error: "), typed.stderr
    code = fast.run(["search", "a red car", *args, "--index", str(tmp_path / "none")])
    out, err = capsys.readouterr()
    if code is not None or not any(a.startswith("-") for a in args[1::2]):  # (a value like -3: Typer reads it)
        assert (code, out, err) == (2, "", typed.stderr)
    with pytest.raises(UsageError) as raised:
        mmcli.Index(tmp_path / "none").search("a red car", **api)
    assert typed.stderr.splitlines()[0] == f"mmcli: error: {raised.value.message}"


@pytest.mark.parametrize(
    ("args", "api"),
    [
        (["--threshold", "1.5"], {"threshold": 1.5}),
        (["--threshold", "nan"], {"threshold": float("nan")}),
        (["--top-k", "0"], {"top_k": 0}),
        (["--every", "inf"], {"every": float("inf")}),
        (["--every", "0"], {"every": 0}),
        (["--max-frames", "0"], {"max_frames": 0}),
        (["--template", "no placeholder"], {"templates": ["no placeholder"]}),
    ],
)
def test_a_classify_value_is_refused_the_same_way_every_way_in(
    runner: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], api: dict[str, Any]
) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"never read")
    typed = runner.invoke(app, ["classify", str(image), "--labels", "a", "b", *args])
    assert typed.exit_code == 2 and typed.stdout == "" and typed.stderr.startswith("mmcli: error: "), typed.stderr
    assert (fast.run(["classify", str(image), "--labels", "a", "b", *args]), *capsys.readouterr()) == (
        2,
        "",
        typed.stderr,
    )
    with pytest.raises(UsageError) as raised:
        mmcli.classify([image], labels=["a", "b"], **api)
    assert typed.stderr.splitlines()[0] == f"mmcli: error: {raised.value.message}"


def test_the_request_types_hold_the_rule_themselves() -> None:
    terms = (Term(1.0, "a red car", False),)
    for bad in ({"threshold": float("nan")}, {"top_k": True}, {"top_k": 10**7}, {"max_pixels": 0}, {"within": "rel"}):
        with pytest.raises(UsageError):
            SearchRequest(terms, **bad)
    for term in ((float("inf"), "x", False, None), (1.0, "x", False, 3.0), (1.0, "/v.mp4", True, -1.0)):
        with pytest.raises(UsageError):
            Term(*term)
    for bad in ({"labels": ()}, {"top_k": 0}, {"threshold": -0.1}, {"every": float("nan")}, {"paths": ()}):
        with pytest.raises(UsageError):
            ClassifyRequest(**{"paths": ("a.jpg",), "labels": ("cat",), **bad})


# ------------------------------------------------------------------------------ one wire
def _through_json(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=True))


def _requests(image: Path) -> list[SearchRequest]:
    return [
        SearchRequest((Term(1.0, "a red car", False),)),
        SearchRequest(
            build_terms("a dog", str(image), ["2:sunset", "text:a/b"], ["0.5:snow"]),
            top_k=7,
            threshold=0.25,
            within=str(image.parent),
            exact=True,
            after=1577880000.0,
            before=1590000000.5,
            sort="-date",
            all_moments=True,
        ),
        SearchRequest((Term(-1.5, "caf\u00e9", False),), sort="date", threshold="auto", explain=True),
        SearchRequest((Term(1.0, "/x/\udce9.mp4", True, 12.5),), rerank="local-dir:/m", rerank_weights="/w"),
    ]


def test_a_request_keeps_its_shape_on_the_wire(tmp_path: Path) -> None:
    """What the helper and the server read back is the request the command built (a name that is not
    UTF-8 included: it travels as a \\udcXX escape)."""
    image = tmp_path / "x.jpg"
    image.write_bytes(b"not read")
    for request in _requests(image):
        assert search_request(**_through_json(wire.search_values(request))) == request
    classify = classify_request(paths=["a.jpg", "/b/\udce9.png"], labels=["cat"], multi_label=True, every=0.5)
    assert classify_request(**_through_json(wire.classify_values(classify))) == classify


def test_results_keep_their_shape_and_a_malformed_reply_is_refused() -> None:
    explained = (TermScore("a dog", 1.0, 0.25), TermScore("/x.jpg", -0.5, 0.125))
    result = SearchResult(
        (Hit(1, "/a/b.jpg", None, 0.5, "2020-01-01T00:00:00Z", "exif", explained), Hit(2, "/v.mp4", 12.5, -0.25)),
        ("a note",),
        0.125,
    )
    assert wire.read(SearchResult, _through_json(wire.value(result))) == result
    health = Health("ok", "mmcli-tiny", "/idx", 7, "1.0", {"search": 3})
    assert wire.read(Health, _through_json(wire.value(health))) == health
    items = [
        Classification("x.jpg", (LabelScore("cat", 0.75), LabelScore("dog", 0.25))),
        Segment("v.mp4", 0.0, 4.0, "cat", 0.5),
        FileFailure("y", "bad"),
    ]
    for item in items:
        assert wire.read_item(_through_json(wire.item_value(item))) == item
    for reply in (None, [], {"hits": None}, {"hits": [{"rank": "1", "path": "/a", "time": None, "score": 0.5}]}):
        with pytest.raises(wire.WireError):
            wire.read(SearchResult, reply)
    for hit in ({"rank": True}, {"path": 3}, {"score": "high"}, {"explain": [{"term": "x"}]}):
        with pytest.raises(wire.WireError):
            wire.read(Hit, {"rank": 1, "path": "/a", "time": None, "score": 0.5, **hit})
    with pytest.raises(wire.WireError):
        wire.read(SearchResult, {"hits": [], "warnings": [1]})


# ------------------------------------------------------------------------------ where helpers live
@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (/tmp/mmd...): a socket path has at most 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="mmd", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_runtime_folder_is_private(short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = short_dir
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("MMCLI_HELPER", "on")
    folder = place.runtime_dir()
    assert folder == run / "mmcli" and stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)
    assert place.runtime_dir() == folder and stat.S_IMODE(folder.stat().st_mode) == 0o700  # put right
    index = tmp_path / "index"
    index.mkdir()
    (index / "index.sqlite").write_bytes(b"")
    helper = helper_of("search", LocalEngine(index))
    assert helper is not None and helper.path.parent == folder and helper.path.name.startswith("search-")
    other = tmp_path / "other"
    shutil.copytree(index, other)
    assert helper_of("search", LocalEngine(other)) != helper  # one helper per index
    assert helper_of("search", LocalEngine(index, device="cpu")) != helper  # and per engine setting
    assert helper_of("search", LocalEngine(tmp_path)) is None  # no index there yet: none
    if os.getuid() == 0:
        os.chown(folder, 65534, 65534)  # someone else's: not used; the cache's folder instead
        assert place.runtime_dir() == Path(os.environ["MMCLI_CACHE"]) / "helpers"
        os.chown(folder, 0, 0)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 120)))  # no socket path that long
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / ("y" * 120)))
    assert helper_of("search", LocalEngine(index)) is None
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("MMCLI_HELPER", "off")
    assert helper_of("search", LocalEngine(index)) is None
    monkeypatch.delenv("MMCLI_HELPER")
    monkeypatch.setenv("MMCLI_DAEMON", "off")  # (its older name)
    assert helper_of("search", LocalEngine(index)) is None
