"""The folding of text read from pictures (``mmcli.media.ocr.text``): properties over generated text, the
misreadings it absorbs, and what SQLite's FTS5 trigram tokenizer does with the folded text (no engine)."""

from __future__ import annotations

import sqlite3
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmcli.errors import UsageError
from mmcli.media.ocr.text import (
    CONFUSABLES,
    fold_lines,
    fold_word,
    fts_query,
    is_text,
    is_word_char,
    matches,
    query_words,
    short_words,
    text_filter,
    whole_words,
)

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
latin = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=20
)


@given(words)
def test_fold_is_idempotent_and_keeps_only_letters_and_digits(text: str) -> None:
    folded = fold_word(text)
    assert fold_word(folded) == folded
    assert all(is_word_char(c) for c in folded)
    assert folded == folded.casefold()


@given(latin, st.sampled_from(["-", " ", ".", "/", "★", "'", "\u00a0", "_"]), st.integers(0, 20))
def test_symbols_and_spaces_inside_a_word_do_not_matter(word: str, symbol: str, at: int) -> None:
    """``WIFI PASSWORD`` and ``WIFIPASSWORD``, ``sunflower-2024`` and ``sunflower 2024`` fold alike."""
    cut = min(at, len(word))
    assert fold_word(word[:cut] + symbol + word[cut:]) == fold_word(word)


@given(latin)
def test_case_width_and_confusables_do_not_matter(word: str) -> None:
    wide = "".join(chr(ord(c) + 0xFEE0) for c in word)  # full-width forms (NFKC folds them)
    assert fold_word(word.upper()) == fold_word(word.lower()) == fold_word(wide)
    swapped = word.translate(str.maketrans("oOiIl", "00111"))
    assert fold_word(swapped) == fold_word(word)


@given(st.lists(latin, min_size=1, max_size=6), st.data())
def test_every_word_of_a_picture_finds_it(lines: list[str], data: st.DataObject) -> None:
    """A query made of any words a picture holds matches it, however the engine ran them together."""
    picked = data.draw(st.lists(st.sampled_from(lines), min_size=1, max_size=3))
    assert matches(" ".join(picked), ["".join(lines)])  # the spaces lost
    assert matches(" ".join(picked), lines)


def test_misreadings_absorbed() -> None:
    assert matches("KATORMI54", ["KATORM154"])  # I read as 1
    assert matches("VENDOR78", ["VEND0R78 Monday"])  # O read as 0
    assert matches("password", ["WIFIPASSWORD"])  # the space lost
    assert matches("wifi password", ["WIFIPASSWORD"])
    assert matches("cafe", ["CAFÉ"]) and matches("café", ["Cafe"])  # accents off Latin letters
    assert matches("strasse", ["Straße"])
    assert matches("$4.89", ["Butter 4.89"])
    assert not matches("password", ["WIFI PASS", "WORD"])  # not across lines
    assert not matches("", ["anything"])  # nothing asked, nothing matched
    assert fold_word("ﬁle") == "flle"  # NFKC splits the ligature (then i -> l: both sides alike)
    assert fold_word("Москва") == "москва"  # other scripts keep their letters (and their marks)
    assert fold_word("हिन्दी") == unicodedata.normalize("NFC", "हिन्दी")


def test_confusables_are_one_glyph_each() -> None:
    assert set(CONFUSABLES.values()).isdisjoint(CONFUSABLES)  # a folded letter is never folded again


def test_what_is_text() -> None:
    assert is_text("OPEN", 0.9) and is_text("Q3", 0.6) and is_text("东京", 0.8)
    assert not is_text("★", 0.99) and not is_text("￥", 0.95)  # symbols read off shapes
    assert not is_text("十", 0.9)  # a lone character read off a cross
    assert not is_text("$ 4", 0.9) and not is_text("EXIT", 0.3)


def test_query_words_and_short_ones() -> None:
    assert query_words("Wifi  PASSWORD wifi") == ["wlfl", "password"]
    assert short_words(query_words("q3 revenue to go")) == ["q3", "to", "go"]
    assert fts_query("q3 revenue") == '"revenue"'
    assert fts_query("ab") is None
    assert fts_query('say "hi" now') == '"say" AND "now"'  # quotes are dropped with the other symbols


def test_trigram_tokenizer_on_folded_text() -> None:
    """What phase 2's table relies on, on this Python's SQLite: the trigram tokenizer exists, finds a
    substring anywhere in a word, and a term of fewer than three characters matches nothing."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(folded, tokenize='trigram')")
    texts = (["WIFIPASSWORD", "sunflower-2024"], ["Q3 revenue"], ["KATORM154"], ["Butter 4.89", "TOTAL 13.06"])
    db.executemany("INSERT INTO t(rowid, folded) VALUES (?, ?)", ((i, fold_lines(t)) for i, t in enumerate(texts)))

    def found(query: str) -> list[int]:
        expr = fts_query(query)
        return [r for (r,) in db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid", (expr,))] if expr else []

    assert found("password") == [0] and found("wifi password") == [0] and found("flower") == [0]
    assert found("sunflower-2024") == [0] and found("2024") == [0]
    assert found("revenue") == [1] and found("q3") == []  # too short for a trigram
    assert found("katormi54") == [2] and found("total") == [3] and found("4.89") == [3]
    assert found("password revenue") == []  # every word, in one picture
    assert db.execute("SELECT count(*) FROM t WHERE t MATCH '\"q3\"'").fetchone() == (0,)
    assert db.execute("SELECT rowid FROM t WHERE folded LIKE '%q3%'").fetchall() == [(1,)]  # LIKE: no index


def test_text_filter_folds_each_word_and_keeps_the_operators() -> None:
    assert text_filter("IKEA") == '"lkea"'
    assert text_filter('"Q3 revenue" OR ikea*') == '"q3revenue" OR "lkea"'
    assert text_filter("wifi password") == '"wlfl" AND "password"'
    assert text_filter("(cafe OR coffee) NOT decaf") == '( "cafe" OR "coffee" ) NOT "decaf"'
    assert text_filter("receipt (ikea OR hema)") == '"recelpt" AND ( "lkea" OR "hema" )'
    for bad in ("q3", "OR ikea", "ikea OR", "(ikea", "ikea)", "()", "", "★★★", "NOT ikea"):
        with pytest.raises(UsageError):
            text_filter(bad)


@given(st.lists(st.sampled_from(list('ab cdé0"()*-') + ["OR ", "AND ", "NOT ", "ikea "]), max_size=20).map("".join))
def test_text_filter_gives_sqlite_a_query_it_takes_or_says_why(query: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(folded, tokenize='trigram')")
    db.execute("INSERT INTO t(folded) VALUES ('lkea cafe0')")
    try:
        expression = text_filter(query)
    except UsageError:
        return
    db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()  # no syntax error


def test_whole_words_rank_first() -> None:
    assert whole_words("kato", ["KATO"]) == 1 and whole_words("kato", ["KATORMI54 Garden"]) == 0
    assert whole_words("wifi password", ["WIFI PASSWORD"]) == 2
    assert whole_words("wifi password", ["WIFIPASSWORD"]) == 0  # (still a match, ranked after)
    assert whole_words("katormi54", ["KATORM154"]) == 1  # folded alike
