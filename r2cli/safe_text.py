"""Names and queries as data: one rule for putting user text on one line of a file or a terminal.

A file name may hold any byte but ``/`` and NUL: line breaks, ESC sequences that drive a terminal,
BEL, bidirectional overrides that reverse what is shown (U+202E), bytes that are not UTF-8. Every
text output of r2cli (EDL, WebVTT, SRT, chapters, FCPXML, FCP 7 XML, OTIO, tables, warnings and
errors on the terminal) passes such text through ``one_line`` before it reaches a line; the
formats then apply their own quoting (XML entities, WebVTT ``&lt;``, ffmetadata backslashes) on
top. File URLs (``file://``, percent-encoded from the bytes) carry the exact name where a format
has one.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# What is escaped: C0 controls, DEL, C1 controls (NEL U+0085 included); lone surrogates (a byte of a
# non-UTF-8 file name is decoded by Python as U+DC80..U+DCFF; no encoding holds a lone surrogate);
# the bidirectional controls of Unicode UAX #9 (marks, embeddings, overrides, isolates), which
# reorder what a terminal or an editor shows without being visible; the line and paragraph
# separators U+2028/U+2029; the non-characters U+FFFE/U+FFFF, which XML 1.0 forbids.
_BEYOND_C0 = "\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufffe\uffff"
_UNSAFE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_UNSAFE_IN_JSON = re.compile(f"[{_BEYOND_C0}]")  # JSON itself escapes C0 inside strings


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # the byte of a non-UTF-8 name
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def one_line(text: object) -> str:
    """``text`` as one line of characters that only show themselves.

    Line breaks and tabs become ``\\n``, ``\\r``, ``\\t``; other C0 and C1 control characters
    and DEL become ``\\xNN``; a byte of a non-UTF-8 file name (decoded by Python as a lone
    surrogate) becomes ``\\xNN`` of that byte; bidirectional controls, U+2028/U+2029, other lone
    surrogates and U+FFFE/U+FFFF become ``\\uNNNN``. Everything else (spaces, quotes, ``&<>``,
    ``#%``, backslashes, non-Latin scripts, emoji) is kept. The result encodes as UTF-8, is valid
    XML 1.0 character data, holds no line break and cannot drive a terminal.
    """
    return _UNSAFE.sub(_escape, str(text))


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with the characters ``one_line``
    escapes written as ``\\uNNNN`` escapes: the same JSON value, exact (a non-UTF-8 name's bytes
    come back as the same surrogates), and safe to print (JSON already escapes C0 controls; DEL,
    C1, bidirectional controls, U+2028/U+2029 and lone surrogates can only occur inside strings).
    """
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
