"""The resident helper's client, without processes: its wire format against `mmcli serve`'s pydantic
models, its argument reader against Click's, its path expansion against the command's, and where its
socket may live. (Helpers at work: test_daemon.py.)"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from mmcli.cli import app
from mmcli.cli.argv import expand_multi_values, read_strictly
from mmcli.cli.fast import CLASSIFY, SEARCH
from mmcli.cli.inputs import gather_paths
from mmcli.queries import SearchRequest, Term, build_terms
from mmcli.results import Classification, FileFailure, Hit, LabelScore, SearchResult
from mmcli.serve import daemon_client as dc
from mmcli.serve import daemon_wire as dw
from mmcli.serve.daemon import expand
from mmcli.serve.wire import ClassifyItem, SearchBody, SearchReply


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
        SearchRequest((Term(-1.5, "caf\u00e9", False),), sort="date"),
    ]


def test_search_body_is_the_wire_models(tmp_path: Path) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"not read")
    for request in _requests(image):
        body = dw.search_body(request)
        assert SearchBody.model_validate(body) == SearchBody.of(request)
        assert SearchBody.model_validate(body).request() == request
    with pytest.raises(ValueError):  # not UTF-8 (a file name): the helper declines, the command runs here
        SearchBody.model_validate(dw.search_body(SearchRequest((Term(1.0, "/x/\udce9.jpg", True),))))


def test_replies_are_read_as_the_wire_models_read_them() -> None:
    result = SearchResult(
        (Hit(1, "/a/b.jpg", None, 0.5, "2020-01-01T00:00:00Z", "exif"), Hit(2, "/v.mp4", 12.5, -0.25, None, None)),
        ("a note",),
    )
    assert dw.search_result(SearchReply.of(result).model_dump()) == result == SearchReply.of(result).result()
    for item in (Classification("x.jpg", (LabelScore("cat", 0.75), LabelScore("dog", 0.25))), FileFailure("y", "bad")):
        dumped = ClassifyItem.of(item).model_dump()
        assert dw.classify_item(dumped) == ClassifyItem.model_validate(dumped).item(item.path) == item


@pytest.mark.parametrize(
    "reply",
    [
        None,
        [],
        {"hits": None},
        {"hits": [{"rank": "1", "path": "/a", "score": 0.5}]},
        {"hits": [{"rank": True, "path": "/a", "score": 0.5}]},
        {"hits": [{"rank": 1, "path": 3, "score": 0.5}]},
        {"hits": [], "warnings": [1]},
    ],
)
def test_a_malformed_reply_is_not_used(reply: object) -> None:
    with pytest.raises(dc.Unusable):
        dw.search_result(reply)


def _click_params(command: str, args: list[str]) -> dict[str, object]:
    group = typer.main.get_command(app)
    ctx = group.commands[command].make_context(command, list(args))  # type: ignore[attr-defined]
    return ctx.params


READ = [  # (command, args, read by the fast path: else declined, and the command line reads them)
    ("search", ["a", "red", "car"], True),
    ("search", ["a dog", "-k", "5", "--format=csv", "--exact", "-i", "holiday"], True),
    (
        "search",
        ["x", "--threshold", "0.3", "--in", "p", "--after", "2024", "--before=2024-06", "--all-moments", "-0"],
        True,
    ),
    ("search", ["x", "--top-k", "1_0", "--null", "--add", "2:x", "--add", "y", "--sub=z", "-k", "3", "-k", "4"], True),
    ("search", ["--sort", "date", "--image", "q.jpg", "--", "a", "b"], True),
    ("search", ["x", "--sort", "-date"], False),  # a value starting with "-"
    ("search", ["x", "--", "-not-an-option"], False),
    ("search", ["x", "-k5"], False),  # run together
    ("search", ["x", "--exact=yes"], False),
    ("search", ["x", "--help"], False),
    ("search", ["x", "--model", "m"], False),
    ("search", ["x", "--html", "p.html"], False),
    ("classify", ["a.jpg", "b", "--labels", "cat", "dog", "-f", "csv", "-q"], True),
    ("classify", ["a.jpg", "-l", "cat,dog", "--template", "a {}", "--template", "b {}", "--multi-label"], True),
    ("classify", ["--labels", "cat", "--", "x.jpg", "y.jpg"], True),
    ("classify", ["x.jpg", "--labels", "cat", "--model=mmcli-tiny", "--max-pixels", "1000", "-k", "2"], True),
    ("classify", ["x.jpg", "-l", "cat", "--templates", "simple", "--labels-file", "l.txt", "--threshold", "0.2"], True),
    ("classify", ["x.jpg", "--labels", "cat", "--include-hidden"], True),
    ("classify", ["-", "--labels", "cat"], False),  # stdin
    ("classify", ["x.jpg", "--labels", "cat", "-z"], False),
    ("classify", ["x.jpg", "--labels", "cat", "--device", "cpu"], False),
]


@pytest.mark.parametrize(("command", "args", "read"), READ)
def test_the_fast_reader_reads_as_click_or_declines(command: str, args: list[str], read: bool) -> None:
    """Whatever the fast path reads, Click reads the same way (values as strings: the fast path
    converts them with Click's own int() / float())."""
    if command == "search":
        reading = read_strictly(args, SEARCH)
    else:
        reading = read_strictly(expand_multi_values(args), CLASSIFY)
    assert (reading is not None) == read
    if reading is None:
        return
    params = _click_params(command, args)
    if command == "search":
        assert list(reading.positional) == list(params["query"] or [])
    else:
        assert list(reading.positional) == list(params["inputs"] or [])
    for field, value in reading.options.items():
        clicked = params[field]
        if isinstance(value, list):
            assert [str(v) for v in clicked] == value
        elif value is True:
            assert clicked is True
        else:
            assert clicked == type(clicked)(value)  # int("1_0"), float, Path, str: as Click converted it


def test_the_helper_expands_inputs_as_the_command_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pics"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("a.jpg", "sub/b.png", "sub/deeper/c.jpeg", ".hidden/d.jpg", "sub/notes.txt", "clip.mp4"):
        (root / rel).write_bytes(b"x")
    monkeypatch.chdir(root)
    for inputs in (["."], ["sub/", "./a.jpg"], [str(root)], ["sub/deeper/../deeper", "a.jpg", "missing.jpg"]):
        for hidden in (False, True):
            wanted = gather_paths(inputs, None, False, hidden, videos=True)
            shown, absolute = expand([[i, os.path.join(os.getcwd(), i)] for i in inputs], hidden)
            assert shown == wanted
            assert all(os.path.isabs(a) for a in absolute) and len(absolute) == len(wanted)
            assert all(os.path.samefile(a, w) for a, w in zip(absolute, wanted) if os.path.exists(w))


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path (/tmp/mmd...): a socket path has at most 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="mmd", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_runtime_folder_is_private(short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = short_dir
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("MMCLI_DAEMON", "on")
    folder = dc.runtime_dir()
    assert folder == run / "mmcli" and stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)
    assert dc.runtime_dir() == folder and stat.S_IMODE(folder.stat().st_mode) == 0o700  # put right
    helper = dc.helper_for("search", "/some/index")
    assert helper is not None and helper.path.parent == folder and helper.path.name.startswith("search-")
    assert dc.helper_for("search", "/other/index") != helper  # one helper per index
    if os.getuid() == 0:
        os.chown(folder, 65534, 65534)  # someone else's: not used; the cache's folder instead
        assert dc.runtime_dir() == Path(os.environ["MMCLI_CACHE"]) / "daemon"
        os.chown(folder, 0, 0)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / ("x" * 120)))  # no socket path that long
    monkeypatch.setenv("MMCLI_CACHE", str(tmp_path / ("y" * 120)))
    assert dc.helper_for("search", "/some/index") is None
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("MMCLI_DAEMON", "off")
    assert dc.helper_for("search", "/some/index") is None
