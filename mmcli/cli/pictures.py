"""Results as pictures: a self-contained HTML page and a PNG contact sheet.

The page embeds each thumbnail as a base64 JPEG, so it can be mailed or opened anywhere; a file
that cannot be read gets a labelled placeholder instead of a broken image. The layout is a CSS
grid that reflows from one column on a phone to many on a desktop.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcli.atomic import write_output
from mmcli.media.thumbnail import THUMB, render_thumbnail, thumbnail  # noqa: F401 (render_thumbnail re-exported)

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Tile:
    """One picture on a page or sheet: its file and the lines of text under it."""

    path: str
    caption: tuple[str, ...]
    time: float | None = None  # a moment of a video: its frame is shown, and linked with #t=SECONDS
    group: int | None = None  # tiles of one group (dupes): a contact sheet starts each group on a new row


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _file_url(path: str, time: float | None = None) -> str:
    if not (os.path.isabs(path) or os.path.exists(path)):
        return path
    from mmcli.media.video import media_url

    return media_url(path, time)  # with a media fragment (#t=SECONDS) for a moment: players start there


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 1rem; background: #fafafa; color: #222; }}
h1 {{ font-size: 1.2rem; margin: 0 0 .25rem; word-break: break-word; }}
p.sub {{ margin: 0 0 1rem; color: #666; }}
ol {{ list-style: none; padding: 0; margin: 0; display: grid; gap: .75rem;
     grid-template-columns: repeat(auto-fill, minmax(min(100%, 220px), 1fr)); }}
li {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; }}
li a.pic {{ display: block; aspect-ratio: 1; background: #eee; }}
li img {{ width: 100%; height: 100%; object-fit: contain; display: block; }}
li .missing {{ display: flex; align-items: center; justify-content: center; height: 100%; color: #a00; }}
li .meta {{ padding: .4rem .5rem; }}
li .head {{ font-weight: 600; }}
li .path {{ font-size: 12px; color: #555; word-break: break-all; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
<ol>
{items}
</ol>
</body></html>
"""


def render_html(tiles: Sequence[Tile], title: str, subtitle: str = "") -> str:
    items = []
    for tile in tiles:
        thumb = thumbnail(tile.path, time=tile.time)
        url = html.escape(_file_url(tile.path, tile.time), quote=True)
        shown = html.escape(tile.path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if thumb is not None:
            pic = f'<img src="{_data_uri(thumb)}" alt="{shown}" width="{thumb.width}" height="{thumb.height}">'
        else:
            pic = '<span class="missing">cannot read this file</span>'
        head, *rest = tile.caption or ("",)
        extra = "".join(f"<div>{html.escape(line)}</div>" for line in rest)
        items.append(
            f'<li><a class="pic" href="{url}">{pic}</a><div class="meta"><div class="head">'
            f'{html.escape(head)}</div>{extra}<a class="path" href="{url}">{shown}</a></div></li>'
        )
    return PAGE.format(title=html.escape(title), subtitle=html.escape(subtitle), items="\n".join(items))


def write_html(path: Path, tiles: Sequence[Tile], title: str, subtitle: str = "") -> None:
    write_output(path, render_html(tiles, title, subtitle).encode("utf-8"))


FONT_FILE = Path(__file__).resolve().parent / "fonts" / "DejaVuSans-mmcli.ttf"  # see scripts/make_caption_font.py
SYSTEM_FONTS = (  # for what the bundled font lacks (CJK, ...), where installed
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/seguisym.ttf",
    "C:/Windows/Fonts/msyh.ttc",
)
CAPTION_SIZE = 11
LINE_HEIGHT = 14


@functools.lru_cache(maxsize=4)
def caption_fonts(size: int = CAPTION_SIZE) -> tuple[Any, ...]:
    """The fonts captions are drawn with, in order of preference: the bundled DejaVu Sans subset, then
    system fonts for the characters it lacks; Pillow's own font if none can be loaded."""
    from PIL import ImageFont

    fonts: list[Any] = []
    for path in (FONT_FILE, *SYSTEM_FONTS):
        try:
            fonts.append(ImageFont.truetype(str(path), size))
        except OSError:  # not installed here (or not a font FreeType reads)
            continue
    return tuple(fonts) or (ImageFont.load_default(size),)


@functools.lru_cache(maxsize=4096)
def _has_glyph(font: Any, char: str) -> bool:
    """Does ``font`` draw ``char`` as itself (not as its box for a missing glyph, U+FFFF's)?"""
    if char.isspace():
        return True
    return bytes(font.getmask(char)) != bytes(font.getmask("\uffff"))


def caption_runs(text: str, fonts: Sequence[Any]) -> list[tuple[Any, str]]:
    """``text`` in runs of characters drawn by the same font: each character in the first font that has
    it (the first font if none has it); composed first (NFC), so accents given apart sit on their letter."""
    runs: list[tuple[Any, str]] = []
    for char in unicodedata.normalize("NFC", text):
        font = next((f for f in fonts if _has_glyph(f, char)), fonts[0])
        if runs and runs[-1][0] is font:
            runs[-1] = (font, runs[-1][1] + char)
        else:
            runs.append((font, char))
    return runs


def draw_caption(draw: Any, xy: tuple[int, int], text: str, width: int, fill: tuple[int, int, int]) -> None:
    """``text`` on one line from ``xy`` (its top left), shortened in the middle with "…" to ``width`` pixels."""
    fonts = caption_fonts()

    def length(t: str) -> float:
        return sum(font.getlength(run) for font, run in caption_runs(t, fonts))

    shown, keep = text, len(text)
    while keep > 0 and length(shown) > width:
        keep -= 1
        shown = text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]
    x, baseline = float(xy[0]), xy[1] + LINE_HEIGHT - 3
    for font, run in caption_runs(shown, fonts):
        draw.text((x, baseline), run, fill=fill, font=font, anchor="ls")
        x += font.getlength(run)


def contact_sheet(tiles: Sequence[Tile], columns: int = 5, size: int = 192) -> Image.Image:
    """A grid of thumbnails with their caption lines under each; each group of tiles (``Tile.group``)
    starts on a row of its own. A thumbnail sits on its caption (a wide one is not left floating)."""
    from PIL import Image, ImageDraw

    lines = max((len(t.caption) for t in tiles), default=1)
    cell_w, cell_h = size + 12, size + 12 + lines * LINE_HEIGHT
    cols = max(1, min(columns, len(tiles)))
    places, row, col = [], 0, 0
    for i, tile in enumerate(tiles):
        if col == cols or (i and col and tile.group != tiles[i - 1].group):
            row, col = row + 1, 0
        places.append((col * cell_w + 6, row * cell_h + 6))
        col += 1
    rows = row + 1
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for tile, (x, y) in zip(tiles, places):
        thumb = thumbnail(tile.path, size, tile.time)
        if thumb is None:
            draw.rectangle((x, y, x + size, y + size), outline=(200, 0, 0))
            draw_caption(draw, (x + 8, y + size // 2), "cannot read", size - 16, (200, 0, 0))
        else:
            sheet.paste(thumb, (x + (size - thumb.width) // 2, y + size - thumb.height))
        for k, text in enumerate(tile.caption):
            draw_caption(draw, (x, y + size + 2 + k * LINE_HEIGHT), text, size, (0, 0, 0))
    return sheet


def write_grid(path: Path, tiles: Sequence[Tile], columns: int = 5) -> None:
    buf = io.BytesIO()
    contact_sheet(tiles, columns).save(buf, "PNG")
    write_output(path, buf.getvalue())


def short_name(path: str, width: int = 34) -> str:
    """The file name, shortened in the middle to ``width`` characters (what fits under a thumbnail)."""
    name = os.path.basename(path) or path
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: keep - keep // 2] + "…" + name[len(name) - keep // 2 :]


def write_pictures(
    tiles: Sequence[Tile], html_out: Path | None, grid_out: Path | None, title: str, subtitle: str = ""
) -> list[Path]:
    """The page and/or the contact sheet asked for; returns the files written."""
    written = []
    if html_out is not None:
        write_html(html_out, tiles, title, subtitle)
        written.append(html_out)
    if grid_out is not None:  # a sheet has no links: each cell also gets its file name
        write_grid(grid_out, [Tile(t.path, (*t.caption, short_name(t.path)), t.time, t.group) for t in tiles])
        written.append(grid_out)
    return written
