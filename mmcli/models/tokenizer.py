"""CLIP's byte-level BPE tokenizer without torch: the token ids open_clip's ``SimpleTokenizer`` gives.

Same vocabulary file (``bpe_simple_vocab_16e6.txt.gz``, shipped with open_clip and found on disk
without importing it), same cleaning (ftfy, HTML entities twice, whitespace folded, lower case),
same pre-tokenising pattern, same merges, same truncation (the last kept token becomes the
end-of-text token) and zero padding. A test compares the ids with open_clip's on many strings.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

SPECIAL = ("<start_of_text>", "<end_of_text>")
N_MERGES = 49152 - 256 - 2


def default_vocab_file() -> Path:
    """open_clip's vocabulary file, located through the package's spec (nothing is imported)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open_clip is not installed: its BPE vocabulary file is needed")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


@cache
def _byte_alphabet() -> dict[int, str]:
    """Every byte as a printable character: printable Latin-1 bytes stand for themselves, the rest
    (controls, space, a few others) are moved to code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clean_lower(text: str) -> str:
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def clean_whitespace(text: str) -> str:
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split())


CLEANERS = {"lower": clean_lower, "whitespace": clean_whitespace}


class Tokenizer:
    """``tokenize(texts)`` -> int64 (N, context_length) ids; ``count(text)`` -> ids without sot/eot."""

    def __init__(self, context_length: int, clean: str = "lower", vocab_file: Path | None = None) -> None:
        import regex

        if clean not in CLEANERS:
            raise ValueError(f"no torch-free tokenizer for clean={clean!r}")
        self.context_length = context_length
        self.clean = CLEANERS[clean]
        lines = gzip.open(vocab_file or default_vocab_file()).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
        symbols = list(_byte_alphabet().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + list(SPECIAL)
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.sot, self.eot = self.ids[SPECIAL[0]], self.ids[SPECIAL[1]]
        self.pattern = regex.compile(
            "|".join(SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
        )
        self._words: dict[str, list[int]] = {s: [self.ids[s]] for s in SPECIAL}

    def _word(self, piece: str) -> list[int]:
        """The ids of one pre-token: its bytes as symbols, the last marked end-of-word, merged by rank."""
        known = self._words.get(piece)
        if known is not None:
            return known
        alphabet = _byte_alphabet()
        parts = [alphabet[b] for b in piece.encode("utf-8")]
        parts[-1] += "</w>"
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), N_MERGES), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best, _ = min(ranked)
            if best == N_MERGES:
                break
            first, second = next((parts[i], parts[i + 1]) for r, i in ranked if r == best)
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.ids[p] for p in parts]
        self._words[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self.pattern.findall(self.clean(text)):
            out.extend(self._word(piece))
        return out

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def tokenize(self, texts: list[str]) -> np.ndarray:
        result = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            result[row, : len(ids)] = ids
        return result
