"""``one_line``: the one rule for names and queries on a line of a file or a terminal (hypothesis
round trips), and ``json_safe``: JSON that keeps the exact text and prints safely."""

from __future__ import annotations

import json
import os
import unicodedata
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from r2cli.safe_text import json_safe, one_line

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# any code point, lone surrogates included (how Python holds the bytes of a non-UTF-8 name)
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))


def _shows_itself(char: str) -> bool:
    category = unicodedata.category(char)
    return category not in ("Cc", "Cs", "Zl", "Zp") and char not in BIDI and char not in "\ufffe\uffff"


@given(ANY_TEXT)
def test_one_line_leaves_only_characters_that_show_themselves(text):
    line = one_line(text)
    assert all(_shows_itself(char) for char in line)
    assert line.splitlines() in ([line], [])  # no line break of any kind (str.splitlines knows them all)
    line.encode("utf-8")  # no lone surrogate
    assert one_line(line) == line  # applying the rule twice changes nothing
    assert ET.fromstring(ET.tostring(ET.Element("clip", name=line))).get("name") == line  # valid XML 1.0


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                                      blacklist_characters=BIDI + "\ufffe\uffff")))
def test_text_without_controls_is_kept_as_it_is(text):
    assert one_line(text) == text


def test_each_kind_of_character_and_its_escape():
    assert one_line("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert one_line("\x1b[31mred\x07\x7f\x85\x9b") == "\\x1b[31mred\\x07\\x7f\\x85\\x9b"
    assert one_line("\u202eevil\u2066 \u2028") == "\\u202eevil\\u2066 \\u2028"
    assert one_line(os.fsdecode(b"caf\xe9.mp4")) == "caf\\xe9.mp4"  # the byte of a non-UTF-8 name
    kept = "<img src=x onerror=alert(1)> it's \"q\" & 100% #1 -x \\ 日本語 👨\u200d👩\u200d👧 é"
    assert one_line(kept) == kept


@given(st.recursive(ANY_TEXT | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
                    max_leaves=8))
def test_json_safe_is_the_same_json_and_prints_safely(data):
    text = json_safe(json.dumps(data, indent=2, ensure_ascii=False))
    assert json.loads(text) == data  # exact, lone surrogates included
    assert all(_shows_itself(char) or char == "\n" for char in text)
