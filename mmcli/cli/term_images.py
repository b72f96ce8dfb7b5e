"""Pictures as terminal escape sequences: the kitty graphics protocol, iTerm2 inline images, sixel,
and Unicode half blocks in 24-bit colour (any terminal, over SSH too).

Small encoders written here rather than a library: textual-image queries the terminal when imported
and has no iTerm2 protocol and no tmux passthrough; term-image pins Pillow below 11; rich-pixels
draws half blocks only. Each function takes a Pillow image already shrunk to the size it should
have and returns the text to write; ``tmux_wrap`` makes a sequence pass through tmux to the
terminal outside it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

ESC = "\x1b"
ST = ESC + "\\"  # string terminator (ends APC, DCS)
KITTY_CHUNK = 4096  # base64 bytes per kitty graphics command (the protocol's limit)
UPPER_HALF = "\u2580"  # ▀: the top pixel in the foreground colour, the bottom one in the background colour


def png_bytes(img: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def kitty(png: bytes, cols: int, rows: int) -> list[str]:
    """The kitty graphics protocol: transmit and show (``a=T``) a PNG (``f=100``) scaled to ``cols`` x
    ``rows`` cells, the cursor left where it was (``C=1``), no reply (``q=2``); base64 in chunks of
    4096 with ``m=1`` on every chunk but the last. One escape sequence per chunk (tmux wraps each)."""
    data = base64.standard_b64encode(png).decode("ascii")
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for i, chunk in enumerate(chunks):
        more = int(i < len(chunks) - 1)
        keys = f"a=T,f=100,c={cols},r={rows},C=1,q=2,m={more}" if i == 0 else f"m={more}"
        out.append(f"{ESC}_G{keys};{chunk}{ST}")
    return out


def iterm(data: bytes, cols: int, rows: int) -> str:
    """iTerm2's inline image (also WezTerm, mintty): the file's bytes, shown in ``cols`` x ``rows``
    cells with its aspect ratio kept."""
    b64 = base64.standard_b64encode(data).decode("ascii")
    return f"{ESC}]1337;File=inline=1;size={len(data)};width={cols};height={rows};preserveAspectRatio=1:{b64}\x07"


def sixel(img: Image.Image, colours: int = 255) -> str:
    """DEC sixel: a palette of at most ``colours`` colours (Pillow's median cut, no dithering), then
    bands of six pixel rows, each colour's pixels of a band as one run-length encoded line."""
    import numpy as np
    from PIL import Image

    quantised = img.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    index = np.asarray(quantised, dtype=np.uint8)
    height, width = index.shape
    palette = quantised.getpalette() or []
    out = [f'{ESC}P0;1q"1;1;{width};{height}']  # P2=1: pixels not drawn keep the background; 1:1 pixels
    for c in np.unique(index).tolist():
        r, g, b = palette[3 * c : 3 * c + 3]
        out.append(f"#{c};2;{round(r * 100 / 255)};{round(g * 100 / 255)};{round(b * 100 / 255)}")
    for top in range(0, height, 6):
        band = index[top : top + 6]
        weights = (1 << np.arange(band.shape[0], dtype=np.int64))[:, None]
        lines = []
        for c in np.unique(band).tolist():
            bits = ((band == c) * weights).sum(axis=0)
            lines.append(f"#{c}{_runs(bits.tolist())}")
        out.append("$".join(lines) + "-")
    out.append(ST)
    return "".join(out)


def _runs(bits: list[int]) -> str:
    """One sixel line: a character per column (63 + its six bits), repeats as ``!COUNT CHAR``, the
    empty columns at the end left out."""
    while bits and bits[-1] == 0:
        bits.pop()
    out, i = [], 0
    while i < len(bits):
        j = i
        while j < len(bits) and bits[j] == bits[i]:
            j += 1
        char = chr(63 + bits[i])
        out.append(f"!{j - i}{char}" if j - i > 3 else char * (j - i))
        i = j
    return "".join(out)


def blocks(img: Image.Image) -> list[str]:
    """Unicode upper-half blocks in 24-bit colour: two pixel rows per line of text (the top one as
    the foreground, the bottom one as the background), colours reset at the end of each line."""
    rgb = img.convert("RGB")
    width, height = rgb.size
    px = rgb.load()
    assert px is not None
    lines = []
    for y in range(0, height, 2):
        parts, last = [], ""
        for x in range(width):
            top = px[x, y]
            colour = f"{ESC}[38;2;{top[0]};{top[1]};{top[2]}m"
            if y + 1 < height:
                bottom = px[x, y + 1]
                colour += f"{ESC}[48;2;{bottom[0]};{bottom[1]};{bottom[2]}m"
            else:
                colour += f"{ESC}[49m"  # an odd last row: the bottom half is the terminal's own background
            if colour != last:
                parts.append(colour)
                last = colour
            parts.append(UPPER_HALF)
        parts.append(f"{ESC}[0m")
        lines.append("".join(parts))
    return lines


def tmux_wrap(sequence: str) -> str:
    """Sequences tmux passes to the terminal it runs in (needs ``set -g allow-passthrough on``); tmux may
    move that terminal's cursor between two passthroughs, so what goes together goes in one."""
    return f"{ESC}Ptmux;{sequence.replace(ESC, ESC + ESC)}{ST}"
