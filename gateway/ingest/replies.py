"""The new text of a reply: quoted history and signature removed, for a ticket comment.

mail-parser-reply knows how a dozen languages' mail clients introduce a quote ("On … wrote:",
"Am … schrieb:", "Le … a écrit :", …) and we use its table for that. Its own splitter is not
used: it rewrites every line (losing indentation), strips only above a header it knows, and
its whole-text regexes take seconds on long quotes. Here the text is walked line by line, each
regex sees at most a few short lines, and the Chinese clients' markers it lacks are added:
Foxmail/QQ "------ 原始邮件 ------", Outlook-cn "发件人:/发送时间:" blocks with full-width
colons, NetEase/Apple "在 …写道：", Gmail-cn "…于…写道：", "发自我的iPhone".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailparser_reply.constants import MAIL_LANGUAGES

# "On <date>, <name> wrote:" in every language mail-parser-reply knows ("david" is a product).
_WROTE = [
    re.compile(spec["wrote_header"], re.I)
    for lang, spec in MAIL_LANGUAGES.items()
    if lang != "david" and "wrote_header" in spec
] + [
    re.compile(r"^.{0,200}(写道|寫道|寫到)\s*[:：]$"),  # 在…写道： / …于2024年…写道：
    re.compile(r"^-{2,}\s*on\s.{0,200}\swrote\s*-{2,}$", re.I),  # Zoho
]
# A language we have no words for still names the old sender in <> and a date, and ends in
# a colon: "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:".
_ATTRIBUTION = re.compile(
    r"^(?=.*(\d{4}|\d{1,2}:\d{2})).{0,200}<\s*[^<>\s]+@[^<>\s]+\s*>.{0,60}[:：]$"
)
_SEPARATOR = re.compile(
    r"^(-{2,}|={2,})\s*(original message|original|forwarded message|ursprüngliche nachricht|"
    r"weitergeleitete nachricht|message d'origine|message transféré|mensaje original|"
    r"mensaje reenviado|messaggio originale|mensagem original|oorspronkelijk bericht|"
    r"oprindelig meddelelse|originalmeddelande|wiadomość oryginalna|исходное сообщение|"
    r"пересылаемое сообщение|原始邮件|原始郵件|转发邮件|轉寄郵件|转发的邮件|邮件原文|"
    r"回复的原邮件)\s*(-{2,}|={2,})$"
    r"|^(begin forwarded message|开始转发的邮件|以下是转发的邮件|"
    r"anfang der weitergeleiteten nachricht|début du message réexpédié)\s*[:：]?$"
    r"|^_{20,}$",  # Outlook's rule above the old header block; Mailman's footer rule
    re.I,
)
# An old message's header block: a From line, then another header field within three lines.
_FIELD = r"^[*\s]*({})[*\s]*[:：]"
_FROM_FIELD = re.compile(
    _FIELD.format(
        "from|von|de|van|od|fra|från|da|от|寄件者|寄件人|发件人|發件人|差出人|보낸\\s?사람"
    ),
    re.I,
)
_OTHER_FIELD = re.compile(
    _FIELD.format(
        "sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|date|à|objet|verzonden|aan|"
        "onderwerp|wysłano|do|temat|sendt|til|emne|skickat|till|ämne|inviato|a|oggetto|"
        "enviado|para|asunto|fecha|отправлено|кому|тема|дата|发送时间|發送時間|时间|時間|日期|"
        "收件人|主题|主題|抄送|副本|送信日時|宛先|件名|보낸\\s?날짜|받는\\s?사람|제목"
    ),
    re.I,
)
# Signatures: RFC 3676 §4.3 "-- " (and the common "--"), and the one-liners phones add.
_SIG_DELIMITER = re.compile(r"^--\s*$")
_SENT_FROM = re.compile(
    r"^(sent from my \S+( \S+){0,3}|sent (from|with|via) (outlook|mail|mailbox|airmail|"
    r"yahoo mail|windows mail|blackberry|sparrow)\b.*|get outlook for \S+.*|"
    r"envoy[ée] (depuis|à partir de) .+|von meinem .+ gesendet|"
    r"发自我的.{1,20}|发自\S{1,12}(手机|邮箱|客户端|大师)|从我的.{1,20}发送|從我的.{1,20}傳送|"
    r"[—-]{0,2}\s*来自.{0,20}(邮箱|iPhone|Android|客户端))$",
    re.I,
)
_DASH_NAME = re.compile(r"^-[^\W\d_][\w.]*( [\w.]+){0,3}$")  # "-Abhishek Kona"
_LONGEST_MARKER = 300  # longer lines are prose, never a client's quote header


def strip_reply(text: str, *, keep_signature: bool = False) -> str:
    """The text a person wrote on top of (or between, or below) the quoted mail they
    answer, without the quote, its header and (unless kept) the signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    lines = _without_history(lines)
    if not keep_signature:
        lines = _without_signature(lines)
    return "\n".join(line.rstrip() for line in lines).strip()


def _norm(line: str) -> str:
    # HTML-converted text carries no-break and ideographic spaces (Foxmail's "&nbsp;原始邮件").
    return line.replace("\xa0", " ").replace("\u3000", " ").strip()


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _blank(line: str) -> bool:
    return not _norm(line)


def _has_text(lines: Sequence[str]) -> bool:
    """Unquoted words before any signature: something the sender wrote."""
    for line in lines:
        if _SIG_DELIMITER.match(line):
            return False
        if not _blank(line) and not _quoted(line):
            return True
    return False


def _quote_end(lines: Sequence[str], start: int) -> int:
    """Index after the quoted block at `start`; blank lines inside it belong to it."""
    end = start
    for i in range(start, len(lines)):
        if _quoted(lines[i]):
            end = i + 1
        elif not _blank(lines[i]):
            break
    return end


def _marker(lines: Sequence[str], i: int) -> int:
    """How many lines (1-3) starting at `i` form a quote header or separator; 0 if none."""
    first = _norm(lines[i])
    if not first or len(first) > _LONGEST_MARKER:
        return 0
    if _SEPARATOR.match(first):
        return 1
    if _FROM_FIELD.match(first) and any(
        _OTHER_FIELD.match(_norm(line)) for line in lines[i + 1 : i + 4]
    ):
        return 1
    for size in (1, 2, 3):
        # Clients wrap a long "On … wrote:" line; a blank or quoted line ends the header.
        if i + size > len(lines) or any(
            _blank(line) or _quoted(line) for line in lines[i : i + size]
        ):
            return 0
        if _wrote(lines[i : i + size]):
            # The header is the shortest run of lines that matches: if the same run less
            # its first line matches, that first line is the sender's own text.
            return 0 if size > 1 and _wrote(lines[i + 1 : i + size]) else size
    return 0


def _wrote(lines: Sequence[str]) -> bool:
    window = " ".join(_norm(line) for line in lines)
    if len(window) > _LONGEST_MARKER:
        return False
    # Every header of this kind ends with a colon (Zoho's with dashes): a cheap filter.
    if window.endswith((":", "：")):
        return any(p.match(window) for p in _WROTE) or bool(_ATTRIBUTION.match(window))
    return window.endswith("-") and bool(_WROTE[-1].match(window))


def _without_history(lines: list[str]) -> list[str]:
    kept: list[str] = []
    i = 0
    while i < len(lines):
        size = 0 if _quoted(lines[i]) else _marker(lines, i)
        start = i + size
        while size and start < len(lines) and _blank(lines[start]):
            start += 1
        if size and (start >= len(lines) or not _quoted(lines[start])):
            break  # an unquoted old message (Outlook, forwards): the rest is history
        if _quoted(lines[start if size else i]):
            end = _quote_end(lines, start if size else i)
            if _has_text(kept) and _has_text(lines[end:]):
                kept.extend(lines[i:end])  # an inline answer: the quotes give it context
            elif not size:
                _drop_attribution(kept)
            i = end
            continue
        kept.append(lines[i])
        i += 1
    return kept


def _drop_attribution(kept: list[str]) -> None:
    """Remove the line that introduced a dropped quote in a language we have no words for:
    the last line before it ends with a colon and names a date or an address."""
    while kept and _blank(kept[-1]):
        kept.pop()
    if kept and kept[-1].rstrip().endswith((":", "：")) and re.search(r"\d|@", kept[-1]):
        kept.pop()


def _without_signature(lines: list[str]) -> list[str]:
    seen_text = False
    for i, line in enumerate(lines):
        text = _norm(line)
        if seen_text and (_SIG_DELIMITER.match(line) or _SENT_FROM.match(text)):
            return lines[:i]
        if seen_text and _DASH_NAME.match(text) and not _has_text(lines[i + 1 :]):
            return lines[:i]
        seen_text = seen_text or bool(text)
    return lines
