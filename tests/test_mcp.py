"""`mmcli mcp`: the real server in a subprocess, driven by the MCP SDK's own stdio client."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY
from PIL import Image
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.demo.shapes import ShapeSpec, draw_shape

pytest.importorskip("mcp")

TOOLS = {"search", "similar", "classify", "dupes", "info"}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An index of a few shapes, one `mmcli mcp` on it, and what each call below answered."""
    folder = tmp_path_factory.mktemp("photos")
    for i, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("yellow", "star"), ("green", "star")]):
        draw_shape(ShapeSpec(colour, shape), size=128, seed=40 + i).save(folder / f"{colour}_{shape}.jpg", quality=92)
    shutil.copy(folder / "red_circle.jpg", folder / "red_circle_copy.jpg")
    outside = tmp_path_factory.mktemp("elsewhere") / "other.jpg"
    shutil.copy(folder / "blue_square.jpg", outside)
    index = tmp_path_factory.mktemp("idx")
    r = CliRunner().invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY, "-q"])
    assert r.exit_code == 0, r.stderr
    calls = {
        "text": ("search", {"text": "a yellow star", "k": 3, "thumbnails": 2}),
        "image": ("search", {"image": str(folder / "blue_square.jpg"), "k": 2}),
        "terms": ("search", {"text": "a star", "sub": ["yellow"], "add": ["0.5:a shape"], "k": 2}),
        "dated": ("search", {"text": "a star", "after": "2000", "before": "2999-12", "within": str(folder)}),
        "similar": ("similar", {"path": str(folder / "red_circle.jpg"), "k": 2}),
        "classify": ("classify", {"paths": [str(folder / "red_circle.jpg")], "labels": ["red", "blue"]}),
        "dupes": ("dupes", {}),
        "info": ("info", {}),
        "k0": ("search", {"text": "x", "k": 0}),
        "wrong type": ("search", {"text": "x", "k": "many"}),
        "outside": ("search", {"image": str(outside)}),
        "missing outside": ("similar", {"path": "/no/such/dir/x.jpg"}),
        "outside classify": ("classify", {"paths": [str(outside)], "labels": ["a", "b"]}),
        "bad date": ("search", {"text": "x", "after": "soon"}),
        "nothing": ("search", {}),
        "unknown tool": ("delete", {"path": str(folder / "red_circle.jpg")}),
        "after errors": ("search", {"text": "a red circle", "k": 1, "thumbnails": 0}),
    }
    env = {k: v for k, v in os.environ.items()}
    tools, results = _drive(["-m", "mmcli", "mcp", "--index", str(index)], env, calls)
    return {"folder": folder, "outside": outside, "tools": tools, "results": results}


def _drive(args: list[str], env: dict[str, str], calls: dict[str, tuple[str, dict[str, Any]]]) -> tuple[Any, Any]:
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def run() -> tuple[Any, dict[str, Any]]:
        params = StdioServerParameters(command=sys.executable, args=args, env=env)
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                listed = await client.list_tools()
                answers = {}
                for name, (tool, arguments) in calls.items():
                    with anyio.fail_after(120):
                        answers[name] = await client.call_tool(tool, arguments)
                return listed.tools, answers

    return anyio.run(run)


def test_lists_the_read_only_tools(session) -> None:
    tools = {t.name: t for t in session["tools"]}
    assert set(tools) == TOOLS
    search = tools["search"].input_schema["properties"]
    assert {"text", "image", "add", "sub", "after", "before", "within", "k"} <= set(search)
    assert set(tools["classify"].input_schema["required"]) == {"paths", "labels"}
    hit = tools["search"].output_schema["$defs"]["Hit"]["properties"]  # the results' own dataclass
    assert {"path", "score", "time", "taken"} <= set(hit)


def test_search_gives_structured_hits_and_thumbnails(session) -> None:
    folder = session["folder"]
    r = session["results"]["text"]
    assert not r.is_error
    hits = r.structured_content["hits"]
    assert len(hits) == 3 and hits[0]["path"] == str(folder / "yellow_star.jpg")
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["score"] >= hits[1]["score"]
    assert hits[0]["time"] is None and hits[0]["taken"].endswith("Z")  # an image; the date from its mtime
    images = [c for c in r.content if c.type == "image"]
    assert len(images) == 2  # thumbnails: 2 asked
    for c in images:
        assert c.mime_type == "image/jpeg"
        assert max(Image.open(io.BytesIO(base64.b64decode(c.data))).size) <= 128
    captions = [c.text for c in r.content if c.type == "text"][1:]
    assert captions[0].startswith(f"#1 {folder / 'yellow_star.jpg'}")


def test_image_terms_dates_and_similar(session) -> None:
    folder, results = session["folder"], session["results"]
    image = [h["path"] for h in results["image"].structured_content["hits"]]
    assert len(image) == 2 and str(folder / "blue_square.jpg") not in image  # the example itself is left out
    terms = [h["path"] for h in results["terms"].structured_content["hits"]]
    assert terms[0] == str(folder / "green_star.jpg") and str(folder / "yellow_star.jpg") not in terms
    dated = results["dated"]
    assert not dated.is_error and len(dated.structured_content["hits"]) == 5
    similar = [h["path"] for h in results["similar"].structured_content["hits"]]
    assert len(similar) == 2 and str(folder / "red_circle.jpg") not in similar  # not the file itself
    assert similar[0] == str(folder / "red_circle_copy.jpg")


def test_classify_dupes_info(session) -> None:
    folder, results = session["folder"], session["results"]
    classified = results["classify"].structured_content["results"]
    assert classified[0]["path"] == str(folder / "red_circle.jpg") and classified[0]["labels"][0]["label"] == "red"
    groups = results["dupes"].structured_content["groups"]
    assert any(set(g["paths"]) == {str(folder / "red_circle.jpg"), str(folder / "red_circle_copy.jpg")} for g in groups)
    info = results["info"].structured_content
    assert info["images"] == 5 and info["model"] == TINY and info["roots"] == [str(folder)]


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ("k0", "--top-k 0: must be at least 1"),  # the request's own rule, as every way in says it
        ("wrong type", "valid integer"),
        ("outside", "outside the allowed roots"),
        ("missing outside", "outside the allowed roots"),  # the same answer: which files exist is not told
        ("outside classify", "outside the allowed roots"),
        ("bad date", "is not a date"),
        ("nothing", "nothing to search for"),
        ("unknown tool", "Unknown tool"),
    ],
)
def test_bad_calls_are_tool_errors(session, call: str, says: str) -> None:
    r = session["results"][call]
    assert r.is_error and says in r.content[0].text, r.content[0].text


def test_the_server_goes_on_after_errors(session) -> None:
    r = session["results"]["after errors"]
    assert not r.is_error
    assert Path(r.structured_content["hits"][0]["path"]).name in ("red_circle.jpg", "red_circle_copy.jpg")
    assert not [c for c in r.content if c.type == "image"]  # thumbnails: 0


def test_help_imports_neither_sdk() -> None:
    code = (
        "import sys\nfrom mmcli.cli.app import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED=' + ','.join(m for m in ('mcp', 'watchfiles', 'PIL', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "LOADED=", out.stdout[-300:] + out.stderr[-300:]


def test_mcp_without_an_index_is_an_error(runner, tmp_path: Path) -> None:
    r = runner.invoke(app, ["mcp", "--index", str(tmp_path / "none")])
    assert r.exit_code != 0 and "mmcli: error:" in r.stderr and r.stdout == ""
