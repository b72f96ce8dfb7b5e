"""`--preview`: each result's thumbnail in the terminal, beside its score and name.

``auto`` picks what the terminal shows: the kitty graphics protocol (``TERM=xterm-kitty``,
``KITTY_WINDOW_ID``, Ghostty), iTerm2 inline images (``TERM_PROGRAM``/``LC_TERMINAL``: iTerm2,
WezTerm, mintty), sixel when the terminal says so in its answer to a DA1 query (asked only when
stdin and stdout are a terminal, waiting at most ``DA1_TIMEOUT``), else Unicode half blocks in 24-bit
colour, which any terminal shows. Inside tmux, kitty and iTerm2 images pass through to the outer
terminal when tmux allows it (``allow-passthrough``), else half blocks. ``auto`` shows nothing when
stdout is not a terminal; a protocol named outright is written anyway (``| less -R``, a recording).

Thumbnails come through the safe decoder and the thumbnail cache (``mmcli.serve.thumbs``); a video's
picture is its frame at the moment of the result.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from mmcli.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

MODES = ("auto", "kitty", "iterm", "sixel", "blocks", "off")
DA1_TIMEOUT = 0.3  # seconds a terminal gets to answer "which features?"; every terminal answers at once
GRAPHIC_ROWS = 6  # lines of text a kitty / iTerm2 / sixel picture takes
BLOCK_ROWS = 8  # lines a half-block picture takes (two pixels each)
DEFAULT_CELL = (10, 20)  # a cell's width and height in pixels when the terminal does not say
GAP = 2  # spaces between a picture and its text


@dataclass(frozen=True)
class Entry:
    """One picture of a result and the lines of text beside it; ``heading``: a line before it (a new
    group of duplicates, a new cluster)."""

    path: str
    lines: tuple[str, ...]
    time: float | None = None  # a video's moment: its frame is shown
    heading: str | None = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def detect(env: Mapping[str, str], ask_sixel: Callable[[], bool]) -> str:
    """The protocol ``auto`` means in the terminal that ``env`` describes; ``ask_sixel`` asks it."""
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if term == "xterm-kitty" or env.get("KITTY_WINDOW_ID") or term == "xterm-ghostty" or program == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm", "mintty") or env.get("LC_TERMINAL") in ("iTerm2", "WezTerm"):
        return "iterm"
    return "sixel" if ask_sixel() else "blocks"


def parse_da1(answer: bytes) -> bool:
    """Does a DA1 answer (``ESC [ ? 62 ; 4 ; 22 c``) list sixel graphics (attribute 4)?"""
    m = re.search(rb"\x1b\[\?([\d;]*)c", answer)
    return bool(m) and b"4" in m.group(1).split(b";")


def query(request: bytes, answer: bytes, timeout: float = DA1_TIMEOUT) -> re.Match[bytes] | None:
    """Write ``request`` to the terminal and read its answer (matching ``answer``) from stdin, without
    echo, for at most ``timeout`` seconds. None when stdin or stdout is not a terminal or no answer came."""
    if not (_isatty(sys.stdin) and _isatty(sys.stdout)):
        return None
    try:
        import select
        import termios
        import tty
    except ImportError:  # Windows
        return None
    import time

    fd = sys.stdin.fileno()
    pattern, got, found = re.compile(answer), b"", None
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    try:
        tty.setcbreak(fd, termios.TCSANOW)  # no echo, no line buffering: the answer is not shown
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), request)
        deadline = time.monotonic() + timeout
        while (found := pattern.search(got)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            got += os.read(fd, 256)
    except OSError:
        return None
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    return found


def ask_sixel(timeout: float = DA1_TIMEOUT) -> bool:
    """Does the terminal list sixel graphics in its answer to DA1 (``ESC [ c``)?"""
    found = query(b"\x1b[c", rb"\x1b\[\?[\d;]*c", timeout)
    return found is not None and parse_da1(found.group(0))


def tmux_passthrough() -> bool:
    """Does the tmux this runs in pass escape sequences through to its terminal? (tmux 3.3 and later
    need ``set -g allow-passthrough on``; older ones always do.)"""
    import subprocess

    try:
        out = subprocess.run(
            ["tmux", "show-options", "-Apv", "allow-passthrough"], capture_output=True, text=True, timeout=2
        )
    except (OSError, subprocess.SubprocessError):
        return False
    if out.returncode != 0:
        return "invalid option" in out.stderr or "unknown option" in out.stderr  # before 3.3: always
    return out.stdout.strip() in ("on", "all")


def choose(mode: str | None, fmt: str | None, out: IO[str], env: Mapping[str, str] | None = None) -> str | None:
    """The protocol to draw with, or None for no pictures. ``auto`` gives None when ``out`` is not a
    terminal; pictures go with the table only (a usage error with another --format)."""
    if mode is None or mode == "off":
        return None
    if mode not in MODES:
        raise UsageError(f"--preview {mode}: not one of {', '.join(MODES)}")
    if fmt not in (None, "table"):
        raise UsageError(f"--preview shows pictures in the table; it cannot be combined with --format {fmt}")
    e = os.environ if env is None else env
    if mode != "auto":
        return mode
    if not _isatty(out):
        return None
    found = detect(e, ask_sixel)
    if e.get("TMUX") and found in ("kitty", "iterm") and not tmux_passthrough():
        from mmcli.cli.console import warn

        warn("tmux does not pass pictures through (tmux set -g allow-passthrough on): half blocks instead")
        return "blocks"
    return found


def pane_origin() -> tuple[int, int] | None:
    """Where this tmux pane's top left cell lies on the terminal outside tmux (0-based row, column)."""
    import subprocess

    try:
        out = subprocess.run(
            ["tmux", "display-message", "-p", "#{pane_top} #{pane_left}"], capture_output=True, text=True, timeout=2
        )
        top, left = (int(v) for v in out.stdout.split())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return top, left


def cell_size(out: IO[str]) -> tuple[int, int]:
    """A character cell's size in pixels, as the terminal reports it (TIOCGWINSZ), else 10 x 20."""
    try:
        import fcntl
        import struct
        import termios

        rows, cols, xpix, ypix = struct.unpack("HHHH", fcntl.ioctl(out.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
        if rows and cols and xpix and ypix:
            return max(1, xpix // cols), max(1, ypix // rows)
    except (ImportError, OSError, ValueError, AttributeError):
        pass
    return DEFAULT_CELL


class Previewer:
    """Writes entries to ``out``: each picture with its lines of text on its right."""

    def __init__(self, protocol: str, out: IO[str] | None = None) -> None:
        from mmcli.config import cache_dir

        self.protocol, self.out = protocol, out or sys.stdout
        self.cache = cache_dir()
        self.tmux = bool(os.environ.get("TMUX")) and protocol in ("kitty", "iterm")
        self.origin = pane_origin() if self.tmux else None
        self.cell = cell_size(self.out)
        try:
            self.width = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            self.width = 100

    def show(self, entries: Sequence[Entry]) -> None:
        from mmcli.cli.console import stdout_safe

        for entry in entries:
            if entry.heading is not None:
                self.out.write(f"\x1b[1m{stdout_safe(entry.heading)}\x1b[0m\n")
            img = picture(entry.path, entry.time, self.cache, self._box_pixels())
            lines = [stdout_safe(line) for line in entry.lines]
            if self.protocol == "blocks":
                self._blocks(img, lines)
            else:
                self._graphic(img, lines)
        self.out.flush()

    def _box_pixels(self) -> tuple[int, int]:
        if self.protocol == "blocks":
            return 4 * BLOCK_ROWS, 2 * BLOCK_ROWS  # a cell is two half-block pixels tall, about square each
        w, h = self.cell
        return 4 * GRAPHIC_ROWS * h // 2, GRAPHIC_ROWS * h  # at most twice as wide as tall (in pixels)

    def _text(self, lines: list[str], cols: int) -> list[str]:
        room = max(10, self.width - cols - GAP)
        shown = [line if len(line) <= room else line[: room - 1] + "…" for line in lines]
        return [f"\x1b[1m{shown[0]}\x1b[0m", *shown[1:]] if shown else []

    def _blocks(self, img: Image.Image | None, lines: list[str]) -> None:
        from mmcli.cli.term_images import blocks

        pic = blocks(img) if img is not None else ["[no picture]"]
        cols = img.width if img is not None else len(pic[0])
        text = self._text(lines, cols)
        for i in range(max(len(pic), len(text))):
            left = pic[i] if i < len(pic) else " " * cols
            right = text[i] if i < len(text) else ""
            self.out.write(f"{left}{' ' * GAP}{right}".rstrip(" ") + "\n")
        self.out.write("\n")

    def _graphic(self, img: Image.Image | None, lines: list[str]) -> None:
        """Room made first (newlines, then back up), the picture drawn at the saved cursor, the text
        written on its right, the cursor put below it: the same steps in kitty, iTerm2 and sixel."""
        rows = GRAPHIC_ROWS
        cols = _cols(img, self.cell, rows) if img is not None else 12
        text = self._text(lines, cols)
        rows_used = max(rows, len(text))
        self.out.write("\n" * rows_used + f"\x1b[{rows_used}A\r\x1b7")
        self.out.write(self._draw(img, cols, rows) if img is not None else "[no picture]")
        self.out.write("\x1b8")
        for line in text:
            self.out.write(f"\x1b[{cols + GAP}C{line}\r\n")
        self.out.write(f"\x1b8\x1b[{rows_used}B\r\n")

    def _draw(self, img: Image.Image, cols: int, rows: int) -> str:
        from mmcli.cli import term_images

        if self.protocol == "sixel":
            return term_images.sixel(img)
        data = term_images.png_bytes(_padded(img, cols * self.cell[0], rows * self.cell[1]))
        parts = (
            term_images.kitty(data, cols, rows) if self.protocol == "kitty" else [term_images.iterm(data, cols, rows)]
        )
        if not self.tmux:
            return "".join(parts)
        # tmux moves the outer terminal's cursor lazily, so a picture passed through lands wherever that
        # cursor happens to be: it goes with a move to the outer cell under this pane's cursor
        here = self._outer_cursor()
        parts = [f"\x1b7\x1b[{here[0]};{here[1]}H", *parts, "\x1b8"] if here else parts
        return term_images.tmux_wrap("".join(parts))  # one passthrough: tmux moves the cursor between two

    def _outer_cursor(self) -> tuple[int, int] | None:
        """The cursor's cell on the terminal outside tmux (1-based): tmux says where it is in the pane
        (DSR, ``ESC [ 6 n``) once it has taken in everything written before; the pane's origin is known."""
        if self.origin is None:
            return None
        self.out.flush()
        found = query(b"\x1b[6n", rb"\x1b\[(\d+);(\d+)R")
        if found is None:
            return None
        return self.origin[0] + int(found.group(1)), self.origin[1] + int(found.group(2))


def _cols(img: Image.Image, cell: tuple[int, int], rows: int) -> int:
    """The cells a picture ``rows`` lines tall takes across, for its aspect ratio and the cell size."""
    height = rows * cell[1]
    return max(1, -(-round(img.width * height / img.height) // cell[0]))


def _padded(img: Image.Image, width: int, height: int) -> Image.Image:
    """The picture scaled to fit ``width`` x ``height`` pixels, centred on a transparent canvas of
    that size (a protocol that stretches to the cells then keeps its aspect ratio)."""
    from PIL import Image

    scaled = img.convert("RGBA")
    scaled.thumbnail((width, height))
    if scaled.height < height // 2:  # a small thumbnail: scaled up (cells are larger than it)
        factor = min(width / scaled.width, height / scaled.height)
        scaled = scaled.resize((max(1, int(scaled.width * factor)), max(1, int(scaled.height * factor))))
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    canvas.paste(scaled, ((width - scaled.width) // 2, (height - scaled.height) // 2))
    return canvas


def picture(path: str, time: float | None, cache: os.PathLike[str] | str, box: tuple[int, int]) -> Image.Image | None:
    """The thumbnail of ``path`` (a video: its frame at ``time``) shrunk to fit ``box`` pixels, through
    the safe decoder and the thumbnail cache; None when it cannot be shown."""
    import io
    from pathlib import Path

    from mmcli.errors import ImageLoadError
    from mmcli.media.video import is_video

    side = max(box)
    try:
        from PIL import Image

        from mmcli.cli.console import warn
        from mmcli.serve.thumbs import PictureCache, cached_thumbnail

        moment = (time or 0.0) if time is not None or is_video(path) else None
        data = cached_thumbnail(path, side, PictureCache(Path(cache), warn), moment).data or b""
        img = Image.open(io.BytesIO(data))
        img.load()
    except (ImageLoadError, OSError):
        return None
    if img is None:
        return None
    img = img.convert("RGB")
    img.thumbnail(box)
    return img


def open_preview(mode: str | None, fmt: str | None, nul: bool = False, out: IO[str] | None = None) -> Previewer | None:
    """What ``--preview MODE`` draws with on ``out`` (stdout), or None for the usual output; ``-0``
    counts as ``--format paths``."""
    stream = out or sys.stdout
    protocol = choose(mode, "paths" if nul else fmt, stream)
    return Previewer(protocol, stream) if protocol is not None else None
