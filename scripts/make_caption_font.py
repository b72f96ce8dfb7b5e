"""Build the caption font of contact sheets (``mmcli/cli/fonts/``): a subset of DejaVu Sans.

DejaVu Sans covers Latin (with Vietnamese and the combining accents), Greek, Cyrillic, punctuation
(the "…" of shortened names), currency, arrows and the common symbols (☀ ★ ♫), so file names in
those scripts show as themselves, not as boxes. The whole font is 760 kB; these blocks are a
third of it. (Scripts beyond these, such as CJK, come from a system font when one is installed:
``mmcli.cli.pictures.caption_fonts``.)

    pip install fonttools
    python scripts/make_caption_font.py [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]

DejaVu's licence (the Bitstream Vera licence; DejaVu's changes are public domain) allows modified
copies under a name without "Bitstream" or "Vera": the subset is renamed "DejaVu Sans mmcli".
"""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TARGET = Path(__file__).resolve().parent.parent / "mmcli" / "cli" / "fonts" / "DejaVuSans-mmcli.ttf"
BLOCKS = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x024F),  # Latin-1, Latin Extended-A and -B
    (0x0250, 0x036F),  # IPA, spacing modifiers, combining diacritical marks
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x052F),  # Cyrillic and its supplement
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
    (0x2000, 0x206F),  # General Punctuation
    (0x20A0, 0x20CF),  # currency
    (0x2100, 0x214F),  # letterlike symbols
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # mathematical operators
    (0x25A0, 0x26FF),  # geometric shapes, miscellaneous symbols
    (0x2700, 0x27BF),  # dingbats
    (0xFB00, 0xFB06),  # Latin ligatures
    (0xFFFD, 0xFFFD),  # the replacement character (names that are not UTF-8)
)
NAME = "DejaVu Sans mmcli"


def main() -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    source = sys.argv[1] if len(sys.argv) > 1 else SOURCE
    options = subset.Options()
    options.layout_features = ["kern", "liga", "ccmp", "mark", "mkmk"]
    options.hinting = False
    font = TTFont(source)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[c for lo, hi in BLOCKS for c in range(lo, hi + 1)])
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 4, 16):
            record.string = NAME
        elif record.nameID in (3, 6):
            record.string = NAME.replace(" ", "")
    font.save(TARGET)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
