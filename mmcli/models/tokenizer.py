"""CLIP's byte-level BPE tokenizer without torch: the token ids open_clip's ``SimpleTokenizer`` gives.

Same vocabulary file (``bpe_simple_vocab_16e6.txt.gz``, shipped with open_clip and found on disk
without importing it), same cleaning (ftfy, HTML entities twice, whitespace folded, lower case),
same pre-tokenising pattern, same merges, same truncation (the last kept token becomes the
end-of-text token) and zero padding. Tests compare the ids with open_clip's on many strings.

Start-up is what a query pays: the tables (token -> id, merge -> rank) are prepared once into
``$MMCLI_CACHE/onnx/bpe-<key>.marshal`` (checked by a SHA-256 in its first line) and read from
there, not parsed from the vocabulary file each time. Text of printable ASCII without
``&`` (most queries) is one ftfy and HTML unescaping leave as it is, so it skips them (and the
import of ftfy); ASCII text is pre-tokenised with ``re`` (what ``regex``'s Unicode classes mean
on ASCII), anything else with ``regex``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

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


# Printable ASCII, tab and newline, no "&": ftfy and HTML unescaping leave such text as it is (a test
# checks it against ftfy, exhaustively on short strings and on random ones).
_PLAIN = re.compile(r"[\t\n\x20-\x25\x27-\x7e]*")
_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# The same on ASCII text (where \p{L} is [a-z] either case, \p{N} is [0-9]): no ``regex`` import needed.
_ASCII_PATTERN = re.compile(
    "|".join(SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+""", re.IGNORECASE | re.ASCII
)


def _fix(text: str) -> str:
    if _PLAIN.fullmatch(text):
        return text
    import html

    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text)))


def clean_lower(text: str) -> str:
    return " ".join(_fix(text).split()).lower()


def clean_whitespace(text: str) -> str:
    return " ".join(_fix(text).split())


CLEANERS = {"lower": clean_lower, "whitespace": clean_whitespace}
TABLES_FORMAT = b"mmcli-bpe/2"


@cache
def _unicode_pattern() -> Any:
    import regex

    return regex.compile("|".join(SPECIAL) + "|" + _PATTERN, regex.IGNORECASE)


def _parse(vocab_file: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(token -> id, merge "a b" -> rank) from open_clip's vocabulary file."""
    lines = gzip.open(vocab_file).read().decode("utf-8").split("\n")
    merges = [" ".join(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(_byte_alphabet().values())
    vocab = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges] + list(SPECIAL)
    return dict(zip(vocab, range(len(vocab)))), dict(zip(merges, range(len(merges))))


def _prepared_file(vocab_file: Path) -> Path | None:
    """Where the tables of ``vocab_file`` are kept ready: marshal's format, so per Python version."""
    import marshal
    import sys

    from mmcli.config import cache_dir

    try:
        st = vocab_file.stat()
    except OSError:
        return None
    ident = f"{vocab_file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{sys.version_info[:2]}|{marshal.version}"
    key = hashlib.sha256(ident.encode("utf-8", "replace")).hexdigest()[:24]
    return cache_dir() / "onnx" / f"bpe-{key}.marshal"


def _tables(vocab_file: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The tables, from the prepared file when it is there and whole (its SHA-256 checked), else parsed
    (and prepared for the next time)."""
    import marshal

    prepared = _prepared_file(vocab_file)
    if prepared is not None:
        try:
            head, _, body = prepared.read_bytes().partition(b"\n")
            name, digest = head.split(b" ")
            if name == TABLES_FORMAT and hashlib.sha256(body).hexdigest().encode() == digest:
                ids, ranks = marshal.loads(body)
                if isinstance(ids, dict) and isinstance(ranks, dict):
                    return ids, ranks
        except (OSError, ValueError, EOFError, TypeError):
            pass
    ids, ranks = _parse(vocab_file)
    if prepared is not None:
        from mmcli.atomic import atomic_write_bytes

        body = marshal.dumps((ids, ranks))
        try:
            head = TABLES_FORMAT + b" " + hashlib.sha256(body).hexdigest().encode()
            atomic_write_bytes(prepared, head + b"\n" + body)
        except OSError:
            pass  # a read-only cache: parsed each time
    return ids, ranks


class Tokenizer:
    """``tokenize(texts)`` -> int64 (N, context_length) ids; ``count(text)`` -> ids without sot/eot."""

    def __init__(self, context_length: int, clean: str = "lower", vocab_file: Path | None = None) -> None:
        if clean not in CLEANERS:
            raise ValueError(f"no torch-free tokenizer for clean={clean!r}")
        self.context_length = context_length
        self.clean = CLEANERS[clean]
        self.ids, self.ranks = _tables(vocab_file or default_vocab_file())
        self.sot, self.eot = self.ids[SPECIAL[0]], self.ids[SPECIAL[1]]
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
            ranked = [(self.ranks.get(f"{a} {b}", N_MERGES), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
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
        cleaned = self.clean(text)
        pattern = _ASCII_PATTERN if cleaned.isascii() else _unicode_pattern()
        out: list[int] = []
        for piece in pattern.findall(cleaned):
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
