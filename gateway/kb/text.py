"""Search terms from text: pure functions, no I/O (tests/core/test_kb_text.py).

Chinese has no spaces between words, so a term is a run of CJK characters or a run of other
non-space characters; both indexes (FTS5 trigram, pg_trgm) match substrings, so no word
segmentation is needed. A trigram index cannot look up a term shorter than three characters
(two-character words are common in Chinese: 网络, 宕机): such terms are matched with LIKE on
the rows the other terms found, or on the whole (small) table when they are alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# A term: a CJK run, or a run of anything that is neither space, CJK nor punctuation that
# separates words (after NFKC, full-width ，；（） are already their ASCII forms).
# Control characters split terms too: FTS5 reads NUL as the end of its query string.
_TERM = re.compile(
    rf"[{CJK}]+|[^\s\x00-\x1f\x7f{CJK}\u3000-\u303f,;!?()\[\]{{}}<>\"'`|，。、；：？！《》“”‘’]+"
)
MAX_TERM = 64  # longer runs are identifiers or binary noise: their start is enough
_EDGE = ".:-/_#=*+~"
# Too common in English mail to say anything about which fix applies.
# fmt: off
STOPWORDS = frozenset({
    "the", "and", "for", "with", "not", "from", "this", "that", "are", "was", "were", "has",
    "have", "had", "can", "cannot", "could", "our", "you", "your", "please", "help", "issue",
    "problem", "error", "when", "after", "before", "into", "does", "did", "any", "all", "but",
    "out",
})
# fmt: on
MIN_INDEXED = 3  # a trigram index needs at least this many characters


def normalise(text: str) -> str:
    """NFKC (full-width → ASCII, compatibility forms) and case-folded: how text is indexed."""
    return unicodedata.normalize("NFKC", text or "").casefold()


def document(*fields: str | None, tags: Iterable[str] = ()) -> str:
    """The indexed text of an entry: its fields, normalised, one per line (title first)."""
    parts = [f for f in fields if f] + [" ".join(tags)]
    return normalise("\n".join(p for p in parts if p))


def terms(query: str) -> list[str]:
    """The terms of a search box query, in order, without repeats ("MySQL连接" → two)."""
    out: list[str] = []
    for match in _TERM.finditer(normalise(query)):
        term = match.group(0).strip(_EDGE)[:MAX_TERM]
        if term and term not in out:
            out.append(term)
    return out


def is_short(term: str) -> bool:
    return len(term) < MIN_INDEXED


def suggestion_terms(text: str, limit: int = 8) -> list[str]:
    """Terms for "is there a known fix for this?": indexable pieces of the ticket's text.

    English words of three letters or more (not stop words) and every three-character window
    of each CJK run, so a CJK phrase shares terms with any entry that shares a part of it.
    Two-character CJK runs are left out: they would need a scan, and intake must stay cheap.
    """
    out: list[str] = []
    for term in terms(text):
        if term[0] >= "\u3040" and re.fullmatch(f"[{CJK}]+", term):
            pieces: Sequence[str] = [term[i : i + 3] for i in range(len(term) - 2)]
        elif len(term) >= MIN_INDEXED and term not in STOPWORDS and not term.isdigit():
            pieces = [term]
        else:
            pieces = []
        for piece in pieces:
            if piece not in out:
                out.append(piece)
                if len(out) >= limit:
                    return out
    return out


def overlap(wanted: Sequence[str], text: str) -> float:
    """The share of `wanted` terms that occur in `text` (already normalised)."""
    if not wanted:
        return 0.0
    return sum(1 for t in wanted if t in text) / len(wanted)


def like_pattern(term: str) -> str:
    """`%term%` with LIKE's wildcards escaped (ESCAPE '\\')."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_phrase(term: str) -> str:
    """A term as an FTS5 string (a phrase: the trigram tokenizer matches it as a substring)."""
    return '"' + term.replace('"', '""') + '"'
