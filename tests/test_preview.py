"""`--preview`: the escape sequences of each protocol (read back into pictures), the choice `auto`
makes, and half blocks read back from a real terminal (tmux, `capture-pane -e`)."""

from __future__ import annotations

import base64
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import TINY
from PIL import Image
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.cli.options import expand_bare_preview
from mmcli.cli.preview import BLOCK_ROWS, choose, detect, parse_da1, picture
from mmcli.cli.term_images import blocks, iterm, kitty, png_bytes, sixel, tmux_wrap
from mmcli.demo.shapes import ShapeSpec, draw_shape
from mmcli.errors import UsageError

ESC = "\x1b"


def _noise(width: int, height: int, seed: int = 1) -> Image.Image:
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


# ---------------------------------------------------------------------------------- the encoders
def test_kitty_sends_a_png_in_chunks_of_4096() -> None:
    png = png_bytes(_noise(90, 70))
    commands = kitty(png, 12, 6)
    assert len(commands) > 2  # a picture this size takes several chunks
    parsed = [re.fullmatch(r"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", c) for c in commands]
    assert all(parsed), commands[0][:80]
    keys = [dict(kv.split("=") for kv in m.group(1).split(",")) for m in parsed]  # type: ignore[union-attr]
    assert keys[0] | {"m": "1"} == {"a": "T", "f": "100", "c": "12", "r": "6", "C": "1", "q": "2", "m": "1"}
    assert [k["m"] for k in keys] == ["1"] * (len(keys) - 1) + ["0"]
    payloads = [m.group(2) for m in parsed]  # type: ignore[union-attr]
    assert all(len(p) == 4096 for p in payloads[:-1]) and 0 < len(payloads[-1]) <= 4096
    data = base64.b64decode("".join(payloads))
    assert data == png and Image.open(io.BytesIO(data)).size == (90, 70)


def test_iterm_sends_the_file_inline() -> None:
    data = png_bytes(_noise(40, 30))
    seq = iterm(data, 8, 4)
    m = re.fullmatch(r"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]*)\x07", seq)
    assert m, seq[:80]
    args = dict(kv.split("=") for kv in m.group(1).split(";"))
    assert args == {"inline": "1", "size": str(len(data)), "width": "8", "height": "4", "preserveAspectRatio": "1"}
    assert base64.b64decode(m.group(2)) == data


def decode_sixel(seq: str) -> tuple[int, int, dict[tuple[int, int], tuple[int, int, int]]]:
    """A small sixel reader: (width, height from the raster attributes, pixel -> colour in percent)."""
    m = re.fullmatch(r"\x1bP([\d;]*)q(.*)\x1b\\", seq, re.DOTALL)
    assert m, seq[:40]
    data = m.group(2)
    raster = re.match(r'"1;1;(\d+);(\d+)', data)
    assert raster
    width, height = int(raster.group(1)), int(raster.group(2))
    palette: dict[int, tuple[int, int, int]] = {}
    pixels: dict[tuple[int, int], tuple[int, int, int]] = {}
    x = top = colour = 0
    tokens = r"#(\d+)(?:;2;(\d+);(\d+);(\d+))?|!(\d+)([?-~])|([?-~])|(\$)|(-)"
    body = data[raster.end() :]
    assert re.sub(tokens, "", body) == "", "only sixel commands"
    for t in re.finditer(tokens, body):
        if t.group(1) is not None:
            colour = int(t.group(1))
            if t.group(2) is not None:
                palette[colour] = (int(t.group(2)), int(t.group(3)), int(t.group(4)))
            continue
        if t.group(8):
            x = 0
            continue
        if t.group(9):
            x, top = 0, top + 6
            continue
        count, char = (int(t.group(5)), t.group(6)) if t.group(5) else (1, t.group(7))
        bits = ord(char) - 63
        for _ in range(count):
            for row in range(6):
                if bits >> row & 1:
                    pixels[(x, top + row)] = palette[colour]
            x += 1
    return width, height, pixels


def test_sixel_reads_back_as_the_picture() -> None:
    img = Image.new("RGB", (10, 8), (255, 0, 0))
    img.paste((0, 0, 255), (5, 0, 10, 8))
    img.paste((0, 128, 0), (0, 7, 10, 8))  # a last band of two rows: 8 is not a multiple of 6
    seq = sixel(img)
    assert seq.startswith(f"{ESC}P0;1q") and seq.endswith(f"{ESC}\\")
    width, height, pixels = decode_sixel(seq)
    assert (width, height) == (10, 8)
    percent = {(255, 0, 0): (100, 0, 0), (0, 0, 255): (0, 0, 100), (0, 128, 0): (0, 50, 0)}
    want = {(x, y): percent[img.getpixel((x, y))] for x in range(10) for y in range(8)}
    assert pixels == want


def test_sixel_of_a_photo_keeps_its_colours() -> None:
    img = _noise(24, 13, seed=3).resize((48, 26))
    width, height, pixels = decode_sixel(sixel(img))
    assert (width, height) == (48, 26) and len(pixels) == 48 * 26  # every pixel painted
    err = [
        abs(a * 255 / 100 - b) for (x, y), rgb in pixels.items() for a, b in zip(rgb, img.getpixel((x, y)), strict=True)
    ]
    assert sum(err) / len(err) < 40  # 255 colours of median cut for a noisy picture: close, not exact


def test_blocks_are_two_pixels_a_cell() -> None:
    img = Image.new("RGB", (2, 3))
    img.putdata([(1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12), (13, 14, 15), (16, 17, 18)])
    lines = blocks(img)
    assert len(lines) == 2
    assert lines[0] == (
        f"{ESC}[38;2;1;2;3m{ESC}[48;2;7;8;9m▀{ESC}[38;2;4;5;6m{ESC}[48;2;10;11;12m▀{ESC}[0m"
    )  # top pixel as the foreground, bottom pixel as the background
    assert lines[1] == f"{ESC}[38;2;13;14;15m{ESC}[49m▀{ESC}[38;2;16;17;18m{ESC}[49m▀{ESC}[0m"  # odd last row


def test_tmux_wrap_doubles_escapes() -> None:
    assert tmux_wrap(f"{ESC}_Ga=T;AAAA{ESC}\\") == f"{ESC}Ptmux;{ESC}{ESC}_Ga=T;AAAA{ESC}{ESC}\\{ESC}\\"


# ------------------------------------------------------------------------------- the choice
@pytest.mark.parametrize(
    ("env", "sixel_answer", "want"),
    [
        ({"TERM": "xterm-kitty"}, False, "kitty"),
        ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "1"}, False, "kitty"),
        ({"TERM_PROGRAM": "ghostty"}, False, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, True, "iterm"),
        ({"TERM_PROGRAM": "WezTerm"}, False, "iterm"),
        ({"LC_TERMINAL": "iTerm2", "TERM": "screen"}, False, "iterm"),  # over ssh, in tmux
        ({"TERM": "xterm"}, True, "sixel"),
        ({"TERM": "xterm-256color"}, False, "blocks"),
        ({}, False, "blocks"),
    ],
)
def test_auto_detects_the_terminal(env: dict[str, str], sixel_answer: bool, want: str) -> None:
    asked = []
    assert detect(env, lambda: asked.append(1) or sixel_answer) == want
    assert bool(asked) == (want in ("sixel", "blocks"))  # the terminal is asked only when nothing else tells


def test_da1_answers() -> None:
    assert parse_da1(b"\x1b[?62;4;6;22c")
    assert parse_da1(b"junk\x1b[?4c")
    assert not parse_da1(b"\x1b[?1;2c")  # tmux, xterm without sixel
    assert not parse_da1(b"\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c")
    assert not parse_da1(b"")


def test_choice_off_a_terminal_and_with_other_formats(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as pipe:  # not a terminal
        assert choose("auto", None, pipe, {"TERM": "xterm-kitty"}) is None
        assert choose("kitty", None, pipe, {}) == "kitty"  # named: written anyway
        assert choose("blocks", "table", pipe, {}) == "blocks"
        assert choose(None, None, pipe, {}) is None and choose("off", None, pipe, {}) is None
        with pytest.raises(UsageError, match="cannot be combined with --format json"):
            choose("kitty", "json", pipe, {})
        with pytest.raises(UsageError, match="not one of auto, kitty"):
            choose("png", None, pipe, {})


def test_bare_preview_means_auto() -> None:
    assert expand_bare_preview(["--preview", "a red car"]) == ["--preview=auto", "a red car"]
    assert expand_bare_preview(["a red car", "--preview"]) == ["a red car", "--preview=auto"]
    assert expand_bare_preview(["--preview", "sixel", "x"]) == ["--preview", "sixel", "x"]
    assert expand_bare_preview(["--", "--preview"]) == ["--", "--preview"]


# ------------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("photos")
    for i, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("yellow", "star")]):
        draw_shape(ShapeSpec(colour, shape), size=128, seed=70 + i).save(folder / f"{colour}_{shape}.jpg", quality=92)
    shutil.copy(folder / "red_circle.jpg", folder / "red_circle_copy.jpg")  # a group of duplicates
    index = tmp_path_factory.mktemp("idx")
    r = CliRunner().invoke(app, ["index", str(folder), "--index", str(index), "--model", TINY, "-q"])
    assert r.exit_code == 0, r.stderr
    return folder, index


@pytest.mark.parametrize(
    ("mode", "marker"),
    [("kitty", f"{ESC}_Ga=T,f=100,"), ("iterm", f"{ESC}]1337;File=inline=1;"), ("sixel", f'{ESC}P0;1q"1;1;')],
)
def test_search_draws_each_protocol(runner, indexed, mode: str, marker: str) -> None:
    _, index = indexed
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-k", "2", "--preview", mode])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count(marker) == 2  # one picture per result
    assert re.search(r"#1  -?\d\.\d{4}  \w+\.jpg", r.stdout) and "#2  " in r.stdout


def test_each_command_draws_blocks(runner, indexed) -> None:
    folder, index = indexed
    search = runner.invoke(app, ["search", "--preview", "blocks", "a star", "--index", str(index), "-k", "1"])
    dupes = runner.invoke(app, ["dupes", "--index", str(index), "--preview", "blocks"])
    cluster = runner.invoke(app, ["cluster", "-k", "2", "--samples", "1", "--index", str(index), "--preview=blocks"])
    files = [str(folder / "red_circle.jpg"), str(folder / "blue_square.jpg")]
    labels = runner.invoke(app, ["classify", *files, "--model", TINY, "--labels", "red", "blue", "--preview", "blocks"])
    for r in (search, dupes, cluster, labels):
        assert r.exit_code == 0, r.stderr
        assert "▀" in r.stdout and f"{ESC}[38;2;" in r.stdout
    assert re.search(r"group 1: \d+ images, min score", dupes.stdout) and "red_circle_copy.jpg" in dupes.stdout
    assert re.search(r"cluster \d: \d images", cluster.stdout)
    assert re.search(r"red \d\.\d{3}  red_circle\.jpg", labels.stdout)


def test_auto_in_a_pipe_is_the_usual_output(runner, indexed) -> None:
    _, index = indexed
    r = runner.invoke(app, ["search", "a red circle", "--index", str(index), "-k", "1", "--preview"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith('{"rank": 1') and ESC not in r.stdout  # CliRunner's stdout is not a terminal
    bad = runner.invoke(app, ["search", "a red circle", "--index", str(index), "--preview", "kitty", "-f", "json"])
    assert bad.exit_code == 2 and "cannot be combined with --format json" in bad.stderr


# ------------------------------------------------------------------------- a real terminal: tmux
def _tmux(socket: str, *args: str, timeout: float = 30) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def run_in_tmux(command: list[str], width: int = 120) -> str:
    """``command`` in a fresh tmux pane (a real terminal emulator); the pane as ``capture-pane -e`` gives
    it (colours as escape sequences), history included, once the command has finished."""
    if not shutil.which("tmux"):
        if os.environ.get("CI"):
            pytest.fail("tmux not found: CI must install it")
        pytest.skip("tmux not installed (apt-get install tmux)")
    socket = f"mmcli-test-{uuid.uuid4().hex[:8]}"
    other = ("KITTY_WINDOW_ID", "LC_TERMINAL", "TERM_PROGRAM")  # the terminal the tests run in is not this one
    line = " ".join(shlex.quote(a) for a in ["env", *(f"-u{k}" for k in other), *command])
    script = f"{line}; echo rc=$?; tmux -L {socket} wait-for -S done; sleep 600"
    _tmux(socket, "new-session", "-d", "-x", str(width), "-y", "50", script)
    try:
        _tmux(socket, "wait-for", "done", timeout=300)  # signalled once the command has finished
        return _tmux(socket, "capture-pane", "-e", "-p", "-S", "-", "-t", "0")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)


def read_blocks(screen: str) -> list[list[tuple[tuple[int, int, int], tuple[int, int, int] | None]]]:
    """The runs of half blocks at the start of each line, as (top, bottom) colours per cell."""
    rows = []
    fg: tuple[int, int, int] | None = None
    bg: tuple[int, int, int] | None = None
    for line in screen.splitlines():  # (capture-pane -e writes a colour again only where it changes)
        cells = []
        for m in re.finditer(r"\x1b\[([\d;]*)m|(▀)|(.)", line):
            if m.group(1) is not None:
                params = [int(p) for p in m.group(1).split(";") if p] or [0]
                i = 0
                while i < len(params):
                    p = params[i]
                    if p in (38, 48) and params[i + 1 : i + 2] == [2]:
                        colour = tuple(params[i + 2 : i + 5])
                        fg, bg = (colour, bg) if p == 38 else (fg, colour)  # type: ignore[assignment]
                        i += 5
                        continue
                    fg, bg = (None, None) if p == 0 else (None, bg) if p == 39 else (fg, None) if p == 49 else (fg, bg)
                    i += 1
            elif m.group(2):
                cells.append((fg, bg))
            else:
                break  # the text beside the picture
        if cells:
            rows.append(cells)
    return rows


def test_half_blocks_read_back_from_tmux(indexed) -> None:
    folder, index = indexed
    screen = run_in_tmux(
        [
            sys.executable,
            "-m",
            "mmcli",
            "search",
            "a yellow star",
            "--index",
            str(index),
            "-k",
            "1",
            "--preview",
            "blocks",
        ]
    )
    assert "rc=0" in screen, screen
    hit = re.search(r"#1  -?\d\.\d{4}  (\S+)", re.sub(r"\x1b\[[\d;]*m", "", screen))
    assert hit, screen
    from mmcli.config import cache_dir

    want = picture(str(folder / hit.group(1)), None, cache_dir(), (4 * BLOCK_ROWS, 2 * BLOCK_ROWS))
    assert want is not None
    rows = read_blocks(screen)
    assert len(rows) == -(-want.height // 2) and all(len(r) == want.width for r in rows)
    for y, cells in enumerate(rows):
        for x, (top, bottom) in enumerate(cells):
            assert top == want.getpixel((x, 2 * y)), (x, y)
            if 2 * y + 1 < want.height:
                assert bottom == want.getpixel((x, 2 * y + 1)), (x, y)


def test_auto_in_tmux_asks_and_answers_quietly(indexed) -> None:
    _, index = indexed
    screen = run_in_tmux(
        [sys.executable, "-m", "mmcli", "search", "a red circle", "--index", str(index), "-k", "1", "--preview"]
    )
    text = re.sub(r"\x1b\[[\d;]*m", "", screen)
    assert "rc=0" in text and "#1  " in text, screen
    assert "[?" not in text and "1;2c" not in text  # the terminal's answer to DA1 is read, not shown
    assert "▀" in screen or f"{ESC}P" in screen  # half blocks (or sixel, where this tmux draws sixel)


def test_a_video_shows_its_moment(runner, tmp_path: Path) -> None:
    pytest.importorskip("av")
    from videos import write_video

    from mmcli.cli.views import timelines
    from mmcli.config import cache_dir
    from mmcli.results import Segment

    video = write_video(tmp_path / "talk.mp4")  # red circle 0-4 s, blue square 4-8 s, green star 8-10 s
    entry = timelines().previews(Segment(str(video), 4.0, 8.0, "blue", 0.9))[0]  # type: ignore[misc]
    assert entry.time == 4.0 and entry.lines[0] == "blue 0.900  4.0 s - 8.0 s"
    middle = {}
    for seconds in (1.0, 5.0, 9.0):
        img = picture(str(video), seconds, cache_dir(), (64, 32))
        assert img is not None and img.height == 32
        middle[seconds] = img.getpixel((img.width // 2, img.height // 2))
    r, g, b = middle[1.0]
    assert r > 150 and g < 100 and b < 100, middle  # the red circle
    r, g, b = middle[5.0]
    assert b > 150 and r < 100, middle  # the blue square
    out = runner.invoke(app, ["classify", str(video), "--model", TINY, "--labels", "red", "blue", "--preview=blocks"])
    assert out.exit_code == 0, out.stderr
    assert out.stdout.count("s - ") >= 2 and "▀" in out.stdout  # a picture per segment
