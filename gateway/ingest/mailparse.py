"""Raw RFC 5322 bytes -> ParsedMail, a plain value the mail adapters turn into an Intake.

Broken mail is the normal case at a support address, so `parse_message` never raises on a
message, however damaged: it returns what it could recover and lists the damage in `defects`.
The one exception is input that is not a message at all (`ParseError`).

The MIME tree comes from the standard library's compat32 parser, the most forgiving one and
the one that keeps raw header bytes (as surrogate escapes); mail-parser contributes its
forensic address and date parsing, charset-normalizer arbitrates between CJK charsets and
inscriptis turns HTML into text. Text is decoded here because none of them recovers from a
wrong or missing charset, the usual state of Chinese mail (see `charsets.decode_bytes`).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import BytesParser, HeaderParser, Parser
from email.policy import compat32

from inscriptis import get_text
from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from gateway.ingest.charsets import decode_bytes

# Deeper MIME nesting than this is an attack or a loop of forwards; its parts are ignored.
MAX_DEPTH = 12


class ParseError(ValueError):
    """The input is not a mail message at all (empty). Damaged messages never raise this."""


@dataclass(frozen=True)
class Attachment:
    """One kept attachment; attached messages (message/rfc822) are kept whole."""

    filename: str  # decoded (RFC 2047/2231, raw 8-bit); "" when the part has no name
    content_type: str
    data: bytes
    size: int


@dataclass(frozen=True)
class DroppedAttachment:
    """An attachment over the configured limits: listed, its bytes not kept (size 0 when
    it was not measured, as for those past the count limit)."""

    filename: str
    content_type: str
    size: int
    reason: str


class Headers(Mapping[str, str]):
    """All header fields, decoded; names are case-insensitive, `[name]` is the first value."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple(items)
        self._index: dict[str, list[str]] = {}
        for name, value in self._items:
            self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> tuple[str, ...]:
        return tuple(self._index.get(name.lower(), ()))

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


@dataclass(frozen=True)
class Report:
    """An RFC 6522 multipart/report: its report-type and its machine-readable field groups
    (RFC 3464 delivery-status: per-message then per-recipient; RFC 5965 feedback-report;
    RFC 8098 disposition-notification)."""

    report_type: str
    fields: tuple[Headers, ...] = ()


@dataclass(frozen=True)
class ParsedMail:
    """What the intake needs from one message; addresses lower-cased, ids without <>."""

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_name: str
    from_address: str
    reply_to: tuple[str, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str  # plain text, LF line ends; HTML converted when there is no plain part
    html: str
    attachments: tuple[Attachment, ...]
    dropped: tuple[DroppedAttachment, ...]
    date: datetime | None  # aware (UTC) or None
    headers: Headers
    defects: tuple[str, ...]
    content_type: str = "text/plain"  # of the whole message
    report: Report | None = None
    text_charset: str | None = None  # codec the text body was decoded with
    declared_charset: str | None = None  # what the text part claimed


def parse_message(
    raw: bytes, *, max_attachment_bytes: int = 10 * 2**20, max_attachments: int = 20
) -> ParsedMail:
    """Parse one message. Raises ParseError only for empty input; damage goes to `defects`."""
    if not raw or not raw.strip():
        raise ParseError("empty message")
    raw = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")  # BOM / blank lines before headers
    defects: list[str] = []
    msg = _parse_tree(raw, defects)
    hints = _charset_hints(msg)
    headers = Headers((name, _decode_header(value, hints)) for name, value in msg.raw_items())
    senders = _addresses(msg, "from", hints, defects)
    body = _Body(hints, defects, max_attachment_bytes, max_attachments)
    try:
        body.collect(msg)
    except Exception as exc:
        # compat32 accessors can still trip on what its parser let through; what was read so
        # far is kept, and the raw message is kept by the caller anyway.
        defects.append(f"body partially read: {type(exc).__name__}: {exc}"[:300])
    date = None
    if (raw_date := msg.get("Date")) is not None:
        result = parse_mail_date(str(raw_date))
        date = result.value
        defects.extend(f"Date: {reason}" for reason in result.reasons)
    return ParsedMail(
        message_id=next(iter(_ids(headers.get("Message-ID", ""))), None),
        in_reply_to=_ids(headers.get("In-Reply-To", "")),
        references=_ids(headers.get("References", "")),
        from_name=senders[0][0] if senders else "",
        from_address=senders[0][1] if senders else "",
        reply_to=tuple(a for _, a in _addresses(msg, "reply-to", hints, defects)),
        to=tuple(a for _, a in _addresses(msg, "to", hints, defects)),
        cc=tuple(a for _, a in _addresses(msg, "cc", hints, defects)),
        subject=_one_line(headers.get("Subject", "")),
        text=body.text(),
        html="\n".join(body.parts["text/html"]),
        attachments=tuple(body.attachments),
        dropped=tuple(body.dropped),
        date=date,
        headers=headers,
        defects=tuple(defects),
        content_type=msg.get_content_type(),
        report=body.report,
        text_charset=body.text_charset,
        declared_charset=body.declared_charset,
    )


_FIELD_NAME = re.compile(rb"[!-9;-~]+:")  # RFC 5322 §3.6.8: printable ASCII except ":"


def _repair_field_names(raw: bytes, defects: list[str]) -> bytes:
    """compat32 ends the header block at a field name with a space in it and reads the rest
    of the headers (Content-Transfer-Encoding included) as body. When every line up to the
    blank line is still header-shaped, such names are repaired instead."""
    end = re.search(rb"\r?\n\r?\n", raw)
    lines = raw[: end.start()].split(b"\n") if end else []
    bad = [
        i
        for i, line in enumerate(lines)
        if not ((line[:1] in b" \t" and line) or _FIELD_NAME.match(line))
        and not (i == 0 and line.startswith(b"From "))  # an mbox separator line
    ]
    if not end or not bad or any(b":" not in lines[i] for i in bad):
        return raw  # nothing to repair, or the body really starts early: the parser decides
    for i in bad:
        name, _, rest = lines[i].partition(b":")
        # "Subject : x" is RFC 5322 §4.5.3 obsolete syntax: drop the space. Otherwise dashes.
        lines[i] = re.sub(rb"[^!-9;-~]", b"-", name.strip()) + b":" + rest
        defects.append(f"invalid header field name repaired: {name[:40]!r}")
    return b"\n".join(lines) + raw[end.start() :]


def _parse_tree(raw: bytes, defects: list[str]) -> Message:
    raw = _repair_field_names(raw, defects)
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:
        # The parser itself can fail on hostile input: RecursionError on thousands of nested
        # parts, ValueError on a crafted RFC 2231 boundary. Keep the headers, body as text.
        defects.append(f"MIME structure unreadable ({type(exc).__name__}); body kept as text")
        msg = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
        del msg["Content-Type"], msg["Content-Transfer-Encoding"]
    for part, _, _ in _walk(msg):
        kind = part.get_content_type()
        defects.extend(f"{type(d).__name__} in {kind}" for d in part.defects)
        if part.is_multipart() and (hidden := _parts_after_the_end(part)):
            defects.append(f"{len(hidden)} part(s) after the closing boundary of {kind} recovered")
            for extra in hidden:
                part.attach(extra)
    return msg


def _parts_after_the_end(part: Message) -> list[Message]:
    """Parts behind a multipart's closing boundary, where a nested multipart that reuses its
    parent's boundary pushes them (malware does it to hide attachments from scanners).
    mail-parser recovers these too; so do mail clients."""
    try:
        boundary, epilogue = part.get_boundary(), part.epilogue
    except (ValueError, LookupError, UnicodeError, TypeError):  # crafted RFC 2231 boundary
        return []
    if not boundary or not epilogue or f"--{boundary}" not in epilogue:
        return []
    delimiter = re.compile(rf"^--{re.escape(boundary)}(--)?[ \t]*\r?$", re.M)
    pieces = delimiter.split(epilogue)  # text, ("--" or None, text after it)...
    parser = Parser(policy=compat32)
    return [
        parser.parsestr(text.lstrip("\r\n"))
        for close, text in zip(pieces[1::2], pieces[2::2], strict=True)
        if close is None and text.strip()  # what follows a closing delimiter is epilogue
    ]


def _walk(msg: Message) -> Iterator[tuple[Message, int, bool]]:
    """Depth-first (part, depth, inside an attached message), iteratively and depth-capped."""
    stack: list[tuple[Message, int, bool]] = [(msg, 0, False)]
    while stack:
        part, depth, inside = stack.pop()
        yield part, depth, inside
        if not part.is_multipart() or depth >= MAX_DEPTH:
            continue
        children = part.get_payload()
        if part.get_content_type() == "message/delivery-status":
            continue  # its "parts" are field groups (RFC 3464), read by the report code
        nested = inside or part.get_content_maintype() == "message"
        stack.extend((c, depth + 1, nested) for c in reversed(children) if isinstance(c, Message))


def _charset_hints(msg: Message) -> list[str]:
    """Charsets this message declares anywhere: the best guess for its raw 8-bit headers,
    which clients write in the same charset as their body (RFC 6532 says UTF-8, tried first)."""
    found: list[str] = ["utf-8"]
    for part, _, _ in _walk(msg):
        charset = _param(part, "charset")
        if charset and charset.lower() not in found:
            found.append(charset.lower())
    for _, value in msg.raw_items():
        for label in re.findall(r"=\?([^?*\s]+)(?:\*[^?]*)?\?[bBqQ]\?", str(value)):
            if label.lower() not in found:
                found.append(label.lower())
    return found


# ---------------------------------------------------------------- headers

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")


def _unfold(value: str) -> str:
    # RFC 5322 §2.2.3: unfolding removes the CRLF before whitespace, nothing else. A fold
    # line holding only whitespace is obsolete syntax (§4.2) and goes first, whole.
    value = re.sub(r"\r?\n[ \t]*(?=\r?\n|$)", "", value)
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")


def _text_from_8bit(value: str, hints: Iterable[str]) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; decode them for real."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("ascii", "surrogateescape"), None, hints)[0]


def _decode_words(value: str, hints: Iterable[str]) -> str:
    """RFC 2047 encoded words. Whitespace between two of them is dropped (§6.2) and adjacent
    words in one charset are decoded together, so a character that a client split across
    two words survives. A word that does not decode stays as it was."""
    out: list[str] = []
    run: tuple[str, bytearray] | None = None  # the charset and bytes of adjacent words

    def flush() -> None:
        nonlocal run
        if run:
            out.append(decode_bytes(bytes(run[1]), run[0], hints)[0])
        run = None

    end = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[end : match.start()]
        end = match.end()
        if gap and not (run and gap.isspace()):
            flush()
            out.append(gap)
        charset, kind, text = match.groups()
        charset = charset.partition("*")[0].lower()  # RFC 2231 §5 language suffix
        data = _word_bytes(kind, text)
        if data is None:
            flush()
            out.append(match.group())
        elif run and run[0] == charset:
            run[1].extend(data)
        else:
            flush()
            run = (charset, bytearray(data))
    flush()
    out.append(value[end:])
    return "".join(out)


def _word_bytes(kind: str, text: str) -> bytes | None:
    if not text.isascii():
        return None
    try:
        if kind in "bB":  # lenient: clients drop padding and wrap words mid-quantum
            return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=False)
        return binascii.a2b_qp(text.replace("_", " "))  # RFC 2047 §4.2: "_" is a space
    except (binascii.Error, ValueError):
        return None


def _decode_header(value: object, hints: Iterable[str]) -> str:
    text = str(value)
    if text.isascii() and "=?" not in text and "\n" not in text and "\r" not in text:
        return text  # most headers: nothing folded, no 8-bit bytes, no encoded words
    return _decode_words(_text_from_8bit(_unfold(text), hints), hints)


def _one_line(value: str) -> str:
    return re.sub(r"[\r\n\t]", " ", value)


def _ids(value: str) -> tuple[str, ...]:
    """Message ids without <> (RFC 5322 §3.6.4); a bare id without brackets is taken whole."""
    ids = re.findall(r"<([^<>\s]+)>", value)
    if not ids and value.strip() and " " not in value.strip():
        ids = [value.strip()]
    return tuple(dict.fromkeys(ids))


_ADDR = (
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)
# `addr@host`, or `Plain Name <addr@host>` with an ASCII name that needs no quoting.
_SIMPLE_MAILBOX = re.compile(
    rf"\s*(?:(?P<name>[A-Za-z0-9 ._'-]*?)\s*<(?P<addr>{_ADDR})>|(?P<bare>{_ADDR}))\s*"
)


def _raw_values(msg: Message, name: str) -> list[str]:
    # raw_items(), not get_all(): compat32's get_all() turns raw 8-bit bytes into U+FFFD.
    return [str(v) for n, v in msg.raw_items() if n.lower() == name]


def _addresses(
    msg: Message, name: str, hints: list[str], defects: list[str]
) -> list[tuple[str, str]]:
    """(display name, lower-cased address) of every mailbox in every `name` header. The
    structure is parsed before encoded words are decoded: a decoded name may hold commas.
    Only when that finds no address (a whole mailbox sent as one encoded word) is the
    decoded text parsed instead."""
    found: list[tuple[str, str]] = []
    for value in _raw_values(msg, name):
        if simple := _SIMPLE_MAILBOX.fullmatch(value):
            # One plain mailbox, the common case: mail-parser's full RFC 5322 parser gives the
            # same answer (checked on every From/To/Cc/Reply-To in the corpus) at ~10x the cost.
            if simple["bare"]:
                found.append(("", simple["bare"].lower()))
            else:
                found.append((simple["name"].strip(), simple["addr"].lower()))
            continue
        diagnostics: list[dict[str, object]] = []
        text = _text_from_8bit(_unfold(value), hints)
        pairs = [(n, a) for n, a in get_addresses(text, defects=diagnostics) if "@" in a]
        if not pairs and _ENCODED_WORD.search(text):
            decoded = _decode_words(text, hints)
            pairs = [(n, a) for n, a in get_addresses(decoded) if "@" in a]
        for display, address in pairs:
            found.append((_decode_words(display, hints).strip(), address.lower()))
        defects.extend(f"{name}: {d.get('reason', d)}" for d in diagnostics)
    return found


# ---------------------------------------------------------------- body

_REPORT_TYPES = {"delivery-status", "feedback-report", "disposition-notification"}


class _Body:
    """One pass over the MIME tree: text and HTML parts, attachments, the report part."""

    def __init__(self, hints: list[str], defects: list[str], max_bytes: int, max_count: int):
        self.hints, self.defects = hints, defects
        self.max_bytes, self.max_count = max_bytes, max_count
        # text/plain and text/html parts, of the message and of messages attached to it
        self.parts: dict[str, list[str]] = {"text/plain": [], "text/html": []}
        self.nested: dict[str, list[str]] = {"text/plain": [], "text/html": []}
        self.attachments: list[Attachment] = []
        self.dropped: list[DroppedAttachment] = []
        self.report: Report | None = None
        self.text_charset: str | None = None
        self.declared_charset: str | None = None
        self.too_deep = False

    def collect(self, msg: Message) -> None:
        for part, depth, inside in _walk(msg):
            kind = part.get_content_type()
            if depth == MAX_DEPTH and part.is_multipart() and not self.too_deep:
                self.too_deep = True
                self.defects.append(f"parts nested deeper than {MAX_DEPTH} levels ignored")
            if kind == "multipart/report" and self.report is None and not inside:
                self.report = Report((_param(part, "report-type") or "").lower())
            elif kind.startswith("message/") and kind[8:] in _REPORT_TYPES and not inside:
                self._report_fields(part)
            elif part.get_content_maintype() == "multipart":
                continue
            # As imap_tools and most clients: a name, a Content-ID (inline image) or an
            # attached message makes an attachment; so does any non-text leaf (nothing lost).
            elif (
                (filename := self._filename(part))
                or part.get("Content-ID") is not None
                or part.get_content_disposition() == "attachment"
                or not kind.startswith("text/")
            ):
                self._attach(part, kind, filename)
            elif kind in ("text/plain", "text/html"):
                self._text(part, kind, inside)

    def _filename(self, part: Message) -> str:
        # A view of the two headers with raw 8-bit bytes decoded, so that get_filename()
        # (RFC 2231 parameters, Content-Type name= fallback) sees real text.
        values = [
            (name, value)
            for name in ("content-type", "content-disposition")
            for value in _raw_values(part, name)
        ]
        if not any("name" in value.lower() for _, value in values):
            return ""  # neither filename= nor name=: most text parts, and cheap to tell
        view = Message()
        for name, value in values:
            view[name] = _text_from_8bit(_unfold(value), self.hints)
        try:
            filename = view.get_filename() or ""
        except (TypeError, ValueError, LookupError, UnicodeError, IndexError):  # crafted RFC 2231
            filename = _param(view, "name") or ""
        return _one_line(_decode_words(filename, self.hints)).strip()

    def _attach(self, part: Message, kind: str, filename: str) -> None:
        if len(self.attachments) >= self.max_count:
            self.dropped.append(DroppedAttachment(filename, kind, 0, "too many attachments"))
            return
        if part.is_multipart():  # an attached message: keep it whole (RFC 2046 §5.2.1)
            inner = part.get_payload()
            try:
                data = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
            except Exception:  # the generator trips on what the parser tolerated; keep going
                data = b""
                self.defects.append(f"attached message {filename!r} could not be re-serialised")
        else:
            data = _payload(part)
        if len(data) > self.max_bytes:
            reason = f"larger than {self.max_bytes} bytes"
            self.dropped.append(DroppedAttachment(filename, kind, len(data), reason))
            self.defects.append(f"attachment {filename!r} dropped: {reason}")
            return
        self.attachments.append(Attachment(filename, kind, data, len(data)))

    def _text(self, part: Message, kind: str, inside: bool) -> None:
        declared = _param(part, "charset")
        data = _payload(part)
        if kind == "text/html" and not declared:
            meta = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", data[:4096], re.I)
            declared = meta.group(1).decode("ascii") if meta else None
        text, used, why = decode_bytes(data, declared, self.hints)
        if why:
            self.defects.append(f"{kind}: {why}")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if kind == "text/plain" and not inside and self.text_charset is None:
            self.text_charset, self.declared_charset = used, declared
        (self.nested if inside else self.parts)[kind].append(text)

    def _report_fields(self, part: Message) -> None:
        payload = part.get_payload()
        if isinstance(payload, list):  # compat32 splits delivery-status into field groups
            blocks = [b for b in payload if isinstance(b, Message)]
        else:
            blocks = [HeaderParser(policy=compat32).parsestr(_payload(part).decode("latin-1"))]
        groups = tuple(
            Headers((n, _decode_header(v, self.hints)) for n, v in b.raw_items()) for b in blocks
        )
        kind = part.get_content_type()[8:]
        self.report = Report(self.report.report_type if self.report else kind, groups)

    def text(self) -> str:
        """The plain parts; else the HTML ones as text; else those of an attached message
        (a mail forwarded as an attachment with nothing written around it)."""
        for found in (self.parts, self.nested):
            if any(p.strip() for p in found["text/plain"]):
                return "\n".join(found["text/plain"])
            if found["text/html"]:
                return "\n".join(html_to_text(h) for h in found["text/html"])
        return ""


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    """A MIME parameter as text, or None. compat32 raises on some crafted RFC 2231 sets and
    returns a (charset, language, value) tuple for encoded ones, which we do not want here."""
    try:
        value = part.get_param(name, header=header)
    except (TypeError, ValueError, LookupError, UnicodeError, IndexError):
        return None
    return value if isinstance(value, str) else None


def _payload(part: Message) -> bytes:
    """Transfer-decoded bytes; compat32 already tolerates bad base64 and unknown encodings."""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError, binascii.Error):
        data = part._payload  # compat32's undecoded body: better than nothing
    if isinstance(data, str):
        return data.encode("ascii", "surrogateescape")
    return data if isinstance(data, bytes) else b""


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (inscriptis keeps block layout and list structure)."""
    try:
        return get_text(html).strip("\n")
    except Exception:  # lxml rejects some garbage; fall back to dropping the tags
        return re.sub(r"<[^>]*>", " ", html)
