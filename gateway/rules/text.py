"""Text folding for matching: NFKC + casefold, whitespace, and the byte form the automaton scans.

Both keywords and ticket text go through `normalise`, so whatever it does, it does to both.
It runs on every field of every intake, so the common cases take fast paths (measured on
10 KB of mixed Chinese/English: full NFKC ~0.45 ms, this ~0.2 ms including whitespace).
"""

from __future__ import annotations

import re
import unicodedata

# Chinese is written without spaces, but mixed text is spaced inconsistently ("应用 BUG",
# "应用BUG"); dropping spaces next to CJK characters lets one keyword match both. Only a
# lookahead is fast in `re` (a lookbehind is tried at every position), so spaces *after* a
# CJK character are removed by running the same lookahead over the reversed string.
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff"
_SPACE_BEFORE_CJK = re.compile(rf" (?=[{_CJK}])")

# NFKC maps U+FF01..U+FF5E (full-width ASCII) to U+0021..U+007E and U+3000 to a space. In
# UTF-8 those are EF BC 81..BF and EF BD 80..9E; folding them bytewise is exact and far
# cheaper than normalising text that is otherwise already NFKC (typical Chinese prose, whose
# only compatibility characters are full-width punctuation like "，" and "：").
_FW_BC = {chr(0x81 + i): chr(0x21 + i) for i in range(0x3F)}
_FW_BD = {chr(0x80 + i): chr(0x60 + i) for i in range(0x1F)}
# The full-width characters Chinese prose actually uses: str.replace on these few costs a few
# microseconds and usually leaves nothing else to fold.
_COMMON_FW = [
    (ch, chr(ord(ch) - 0xFEE0)) for ch in "，：（）！？；％～－／＋＂＇＃＠＆＊＜＞［］｛｝｜＝"
]
_COMMON_FW.append(("\u3000", " "))


def to_bytes(text: str) -> str:
    """UTF-8 bytes as a latin-1 str: what the automaton scans.

    pyahocorasick looks up a node's children by linear scan, so a root with thousands of
    Chinese first characters makes every step slow (measured 9 ms vs 0.1 ms per 10 KB). Over
    bytes a node has at most 256 children whatever the number of keywords; UTF-8 is
    self-synchronising, so a keyword's bytes never match in the middle of a character.
    """
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def from_bytes(data: str) -> str:
    return data.encode("latin-1").decode("utf-8", "surrogatepass")


def _fold_full_width(text: str) -> str:
    data = to_bytes(text)
    if "\xef\xbc" not in data and "\xef\xbd" not in data and "\xe3\x80\x80" not in data:
        return text
    data = data.replace("\xe3\x80\x80", " ")
    for lead, table in (("\xef\xbc", _FW_BC), ("\xef\xbd", _FW_BD)):
        head, *rest = data.split(lead)
        # Anything outside the table (half-width katakana, U+FF00) keeps its bytes.
        data = head + "".join(table.get(p[:1], lead + p[:1]) + p[1:] for p in rest)
    return from_bytes(data)


def normalise(text: str) -> str:
    """NFKC and casefold (full-width -> half-width, case-insensitive), one space per run of
    whitespace, no space next to a CJK character."""
    folded = text.casefold()
    if not unicodedata.is_normalized("NFKC", folded):
        for wide, narrow in _COMMON_FW:
            if wide in folded:
                folded = folded.replace(wide, narrow)
        if not unicodedata.is_normalized("NFKC", folded):
            folded = _fold_full_width(folded)
        if not unicodedata.is_normalized("NFKC", folded):
            # Rarer compatibility characters (ligatures, circled digits, math letters):
            # NFKC may produce upper case again, hence the second casefold. (Casefolding
            # first differs from NFKC-then-casefold only in how a combining mark after "ß"
            # or "İ" composes; keywords and text are folded alike, so both agree.)
            folded = unicodedata.normalize("NFKC", folded).casefold()
    spaced = " ".join(folded.split())
    if " " not in spaced:
        return spaced
    spaced = _SPACE_BEFORE_CJK.sub("", spaced)
    return _SPACE_BEFORE_CJK.sub("", spaced[::-1])[::-1]
