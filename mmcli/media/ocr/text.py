"""Text read from pictures, made findable: which lines are text, and one folding for indexing and queries.

Pure functions, no model. The same ``fold`` is applied to what the engine read and to what a user asks,
so a search finds a word the engine misread or ran together with its neighbour:

- NFKC (full-width letters and digits, ligatures and compatibility forms become plain ones), then
  ``casefold`` (``Straße`` -> ``strasse``), then accents taken off Latin, Greek and Cyrillic letters
  (``café`` -> ``cafe``; other scripts keep their marks);
- confusable glyphs folded to one (``CONFUSABLES``: ``0`` -> ``o``, ``1`` and ``i`` -> ``l``): the OCR
  engine's commonest misreadings inside made-up words and codes (``KATORM154`` for ``KATORMI54``);
- anything that is neither a letter nor a digit (symbols, punctuation, spaces) dropped, so
  ``sunflower-2024``, ``sunflower 2024`` and ``sunflower2024``, or ``$4.89`` and ``489``, are the same.
  A picture's text is folded line by line (``fold_lines``); its lines stay apart by one space.

Queries are matched word by word, each word a substring of a picture's folded text (``fts_query``): that
finds ``password`` in ``WIFIPASSWORD`` whatever the engine did with the space. SQLite FTS5's ``trigram``
tokenizer indexes every three characters, so such substring matches use the index; a word of fewer
than three characters after folding cannot (``short_words``: match those with ``LIKE`` or drop them).
``text_filter`` turns a user's filter with FTS5's operators (OR, AND, NOT, "phrases", parentheses) into
the same kind of expression, or says why it cannot.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# One glyph for each group the engine confuses (measured: scripts/eval_ocr.py --folds). Applied after
# casefold, so "O"/"0"/"o" and "I"/"l"/"1"/"i" each become one letter.
CONFUSABLES: dict[str, str] = {"0": "o", "1": "l", "i": "l"}
EXTRA_CONFUSABLES: dict[str, str] = {"5": "s", "8": "b", "2": "z", "6": "g"}  # measured, not used: see README
MIN_SCORE = 0.5  # a line the recogniser is less sure of than this is not reported
TRIGRAM = 3  # FTS5's trigram tokenizer: a substring shorter than this matches nothing
_UNMARKED_BELOW = 0x0530  # Latin, Greek, Cyrillic: accents taken off; other scripts keep their marks


def is_word_char(char: str) -> bool:
    """A letter, a digit or a mark of any script (Unicode categories L*, N*, M*: the vowel signs of
    Devanagari are marks; the accents of Latin letters are taken off before this is asked)."""
    return unicodedata.category(char)[0] in "LNM"


def is_text(line: str, score: float) -> bool:
    """Is a line the engine read text worth reporting? At least ``MIN_SCORE``, and at least two letters or
    digits (marks not counted): a line of symbols alone (``★``, ``￥`` read off a shape) or one lone
    character (``十`` read off a cross) is not text."""
    return score >= MIN_SCORE and sum(1 for c in line if unicodedata.category(c)[0] in "LN") >= 2


def _unaccented(text: str) -> str:
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char) and out and ord(out[-1]) < _UNMARKED_BELOW:
            continue
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


def fold_word(word: str, confusables: dict[str, str] = CONFUSABLES) -> str:
    """One word folded: NFKC, casefold, accents off, confusables folded, symbols and punctuation dropped."""
    text = _unaccented(unicodedata.normalize("NFKC", word).casefold())
    return "".join(confusables.get(c, c) for c in text if is_word_char(c))


def fold_lines(lines: Iterable[str], confusables: dict[str, str] = CONFUSABLES) -> str:
    """A picture's text as it is indexed: each line folded whole (``fold_word``: its spaces go too, as the
    engine loses them anyway), the lines joined by one space."""
    return " ".join(w for w in (fold_word(line, confusables) for line in lines) if w)


def query_words(query: str, confusables: dict[str, str] = CONFUSABLES) -> list[str]:
    """The folded words of a query (split at whitespace), each once, in order."""
    seen: list[str] = []
    for word in unicodedata.normalize("NFKC", query).split():
        folded = fold_word(word, confusables)
        if folded and folded not in seen:
            seen.append(folded)
    return seen


def short_words(words: Iterable[str]) -> list[str]:
    """The words too short for the trigram index (``LIKE '%w%'`` finds them, without the index)."""
    return [w for w in words if len(w) < TRIGRAM]


def fts_query(query: str, confusables: dict[str, str] = CONFUSABLES) -> str | None:
    """An FTS5 MATCH expression over folded text: every word of ``query`` (of at least three characters)
    as a quoted substring, all required; None when no word is long enough."""
    words = [w for w in query_words(query, confusables) if len(w) >= TRIGRAM]
    return " AND ".join(f'"{w}"' for w in words) if words else None


def matches(query: str, lines: Iterable[str], confusables: dict[str, str] = CONFUSABLES) -> bool:
    """Do a picture's folded ``lines`` hold every folded word of ``query``? (The FTS5 query, in Python.)"""
    folded = fold_lines(lines, confusables)
    words = query_words(query, confusables)
    return bool(words) and all(w in folded for w in words)


_OPERATORS = frozenset({"AND", "OR", "NOT"})


def _tokens(query: str) -> list[str]:
    """A ``--text`` query's tokens: "quoted phrases" (whole), ( and ), and the words between."""
    out: list[str] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(c)
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            end = n if end < 0 else end
            out.append(query[i : end + 1] if end < n else query[i:] + '"')
            i = end + 1
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in '()"':
                j += 1
            out.append(query[i:j])
            i = j
    return out


def text_filter(query: str, confusables: dict[str, str] = CONFUSABLES) -> str:
    """A user's text filter (``--text``: words, "phrases", OR, AND, NOT, parentheses, a prefix*) as an FTS5
    MATCH expression over folded text: each word and phrase folded and quoted (a phrase's spaces go, as
    they go from the picture's text; a trailing * is dropped: a substring match finds prefixes anyway);
    words side by side must all match. UsageError for one that folds to fewer than three characters
    (the trigram index cannot look it up) or an unbalanced parenthesis."""
    from mmcli.errors import UsageError

    parts: list[str] = []
    depth = 0
    for token in _tokens(query):
        if token in _OPERATORS:
            if not parts or parts[-1] in _OPERATORS or parts[-1] == "(":
                raise UsageError(f"--text {query!r}: {token} needs a word before it")
            parts.append(token)
        elif token in "()":
            depth += 1 if token == "(" else -1
            if depth < 0:
                raise UsageError(f"--text {query!r}: a ) without its (")
            if token == ")" and parts[-1] in ("(", *_OPERATORS):
                raise UsageError(f"--text {query!r}: no word before a )")
            if token == "(" and parts and parts[-1] not in _OPERATORS and parts[-1] != "(":
                parts.append("AND")
            parts.append(token)
        else:
            folded = fold_word(token.strip('"').rstrip("*"), confusables)
            if len(folded) < TRIGRAM:
                raise UsageError(
                    f"--text {query!r}: {token!r} is too short to look up in the text of pictures",
                    hint="each word needs at least 3 letters or digits",
                )
            if parts and parts[-1] not in _OPERATORS and parts[-1] != "(":
                parts.append("AND")
            parts.append(f'"{folded}"')
    if depth:
        raise UsageError(f"--text {query!r}: a ( without its )")
    if not parts or parts[-1] in _OPERATORS:
        raise UsageError(
            f"--text {query!r}: no word to look for" if not parts else f"--text {query!r}: ends in {parts[-1]}"
        )
    return " ".join(parts)


def whole_words(query: str, lines: Iterable[str], confusables: dict[str, str] = CONFUSABLES) -> int:
    """How many of the query's words are whole words of a picture's text (folded alike), not only parts of
    longer ones: the first key of the ranking among pictures that match (then bm25), so that ``kato`` finds
    the sign saying KATO before the one saying KATORMI54."""
    words = {fold_word(w, confusables) for line in lines for w in unicodedata.normalize("NFKC", line).split()}
    return sum(1 for w in query_words(query, confusables) if w in words)
