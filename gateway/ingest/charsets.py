"""Decoding text whose charset label may be wrong: the usual state of Chinese mail.

GB2312/GBK labels on GB18030 bytes, Big5 variants, Latin-1 labels on UTF-8 or CJK bytes, and
labels that name no charset at all. `decode_bytes` never raises; it says when it overrode the
label, so the parser can record why.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable

from charset_normalizer import from_bytes as detect_charset

# Labels mail clients use for charsets Python names differently, mapped to the superset
# codec that decodes them all (GB2312 and GBK text is valid GB18030; X-GBK is a Foxmail label).
_ALIASES = {
    **dict.fromkeys(["gb2312", "gbk", "x-gbk", "cp936", "ms936", "euc-cn"], "gb18030"),
    **dict.fromkeys(["x-euc-cn", "gb_2312-80", "csgb2312", "chinese"], "gb18030"),
    **dict.fromkeys(["big5", "big-5", "x-big5", "cn-big5", "csbig5", "x-x-big5"], "big5"),
    **dict.fromkeys(["ks_c_5601-1987", "ks_c_5601", "euc-kr", "windows-949"], "cp949"),
    **dict.fromkeys(["shift_jis", "shift-jis", "x-sjis", "sjis", "windows-31j"], "cp932"),
    # WHATWG's rule, and the mail reality: Latin-1 and ASCII labels mean Windows-1252.
    **dict.fromkeys(["iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"], "cp1252"),
    "iso-2022-jp": "iso2022_jp_ext",
}
# Big5 as written by Windows (cp950) and in Hong Kong (HKSCS) extends plain Big5.
_FAMILY = {"big5": ("big5", "cp950", "big5hkscs"), "gb18030": ("gb18030",)}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _codecs_for(label: str | None) -> tuple[str, ...]:
    if not label:
        return ()
    label = label.strip().strip("\"'").lower()
    name = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(name)
    except (LookupError, UnicodeError, ValueError):  # labels are sender-chosen text
        return ()
    # Not "base64", "rot13" or "unicode_escape": a sender must not pick a transformation.
    if not getattr(info, "_is_text_encoding", True) or "escape" in info.name:
        return ()
    return _FAMILY.get(info.name, (info.name,))


def _strict(data: bytes, names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        try:
            text = data.decode(name)
            text.encode("utf-8")  # some codecs (UTF-16, UTF-7) can yield lone surrogates
            return text, name
        except (UnicodeError, LookupError):
            continue
    return None


def _looks_like_words(text: str, codec: str) -> bool:
    """Plausibility of a strict decode that might still be the wrong charset. Latin-1 bytes
    read as GB18030 put one or two CJK characters inside Latin words ("L黅kebohle"); CJK bytes
    read as Latin-1 pile up runs of symbols ("·ÖÇøÊ¹ÓÃ")."""
    runs = [m for m in _NON_ASCII.finditer(text)]
    if not runs or codec == "utf-8":
        return True
    if _single_byte(codec):
        piled = sum(len(m.group()) for m in runs if len(m.group()) >= 3)
        return piled * 2 <= sum(len(m.group()) for m in runs)
    inside = sum(
        1
        for m in runs
        if len(m.group()) <= 2
        and text[m.start() - 1 : m.start()].isalpha()
        and text[m.end() : m.end() + 1].isalpha()
    )
    return inside * 2 <= len(runs)


def _single_byte(codec: str) -> bool:
    return codecs.lookup(codec).name.startswith(("cp125", "iso8859", "koi8", "mac-"))


def _cjk(data: bytes) -> tuple[str, str] | None:
    """GB18030 or Big5, whichever decodes plausibly; when both do, charset-normalizer
    (restricted to the two, which it tells apart even on a few characters) decides."""
    found = [_strict(data, _FAMILY["gb18030"]), _strict(data, _FAMILY["big5"])]
    good = [r for r in found if r and _looks_like_words(*r)]
    if len(good) == 2:
        best = detect_charset(data, cp_isolation=["gb18030", "big5"]).best()
        if best is not None and best.encoding == "big5":
            return good[1]
    return good[0] if good else None


def decode_bytes(
    data: bytes, declared: str | None, hints: Iterable[str] = ()
) -> tuple[str, str, str | None]:
    """Decode text whose label may be wrong: the declared charset, charsets declared elsewhere
    in the message, UTF-8, GB18030/Big5, detection, and last replacement characters. Returns
    (text, codec, why the label was overridden or None); never raises."""
    own = _codecs_for(declared)
    if data.isascii() and (not own or own[0] in ("cp1252", "utf-8")):
        return data.decode("ascii"), "ascii", None
    got = _strict(data, own)
    if got and _single_byte(got[1]):
        # A Latin-1 label is often just the client's default; valid UTF-8 or readable CJK
        # in its place is far likelier than the mojibake the label would give.
        utf8 = _strict(data, ("utf-8",))
        better = utf8 or (None if _looks_like_words(*got) else _cjk(data))
        if better:
            return better[0], better[1], f"declared {declared} but bytes are {better[1]}"
    if got:
        return got[0], got[1], None
    why = f"declared {declared!r} does not decode" if declared else None
    for names in [_codecs_for(h) for h in hints] + [("utf-8",)]:
        if (tried := _strict(data, names)) and _looks_like_words(*tried):
            return tried[0], tried[1], why
    if tried := _cjk(data):
        return tried[0], tried[1], why
    best = detect_charset(data).best()
    if best is not None:
        return str(best), best.encoding, why
    fallback = own[0] if own else "cp1252"
    text = re.sub("[\ud800-\udfff]", "\ufffd", data.decode(fallback, "replace"))
    return text, fallback, why
