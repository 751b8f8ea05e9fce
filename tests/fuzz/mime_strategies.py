"""Hypothesis strategies for damaged mail: what a support address really receives, and worse.

Broken headers, RFC 2047 garbage, charsets that lie (GBK labelled UTF-8, Big5 labelled
GB2312, unknown labels), transfer encodings that do not decode, multiparts with odd, huge or
missing boundaries, truncation anywhere, NUL bytes, bare CR/LF and plain binary noise.
"""

from __future__ import annotations

import base64
import quopri

from hypothesis import strategies as st

# Text worth encoding: Chinese (simplified and traditional), other scripts, keywords the
# default rules match, and characters some charsets cannot represent.
SAMPLES = [
    "服务器宕机 db-bj-03",
    "數據庫服務異常，請盡快處理",
    "网络中断 北京机房 10.1.2.3",
    "申请新账号 wang@example.com",
    "内核升级 变更申请",
    "server down, outage on web-01",
    "Ünïcödé ñ ß € ",
    "😀🚨 告警",
    "Re: [INC-000001] 未解决",
    "",
    " ",
    "\u200b\ufeff",
]
CHARSETS = [
    "utf-8", "gbk", "gb2312", "gb18030", "big5", "big5-hkscs", "iso-8859-1", "us-ascii",
    "windows-1252", "shift_jis", "euc-kr", "koi8-r", "utf-16", "utf-7", "hz-gb-2312",
    "x-unknown", "unknown-8bit", "", "utf8", "GB_2312-80", "cp936", "\x00", "utf-8'zh'",
]  # fmt: skip
HEADER_NAMES = [
    "From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
    "Reply-To", "Sender", "Return-Path", "Delivered-To", "X-Original-To", "Auto-Submitted",
    "Precedence", "List-Id", "X-Autoreply", "X-OpsGateway-Ticket", "Content-Disposition",
    "MIME-Version", "Content-ID", "X-Priority", "Importance",
]  # fmt: skip
ENCODINGS = ["", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "b64"]

# Arbitrary BMP text from one bytes draw: st.text draws per character, which made generation
# cost more than parsing and storing the message.
text = st.one_of(
    st.sampled_from(SAMPLES),
    st.binary(max_size=240).map(lambda b: b.decode("utf-16-le", errors="replace")),
)
charset = st.sampled_from(CHARSETS)
noise = st.binary(max_size=200)
# Strategies are built once, here: hypothesis validates every new strategy object, which costs
# more than drawing from it.
WORD_KINDS = st.sampled_from(["B", "Q", "b", "q", "X", ""])
SEPARATORS = st.sampled_from([b" ", b"", b"\r\n ", b"\n\t", b"\x00"])
HEADER_NAME = st.one_of(
    st.sampled_from(HEADER_NAMES).map(str.encode),
    st.binary(max_size=20),  # no colon, spaces, 8-bit, empty
)
CTE = st.sampled_from(ENCODINGS)
LEAF_TYPES = st.sampled_from(
    [b"text/plain", b"text/html", b"application/octet-stream", b"image/png", b"message/rfc822",
     b"text/", b"", b"text/plain; format=flowed", b"\xff/\xfe"]
)  # fmt: skip
DISPOSITIONS = st.sampled_from(
    [
        b'Content-Disposition: attachment; filename="NAME"',
        b"Content-Disposition: attachment; filename*=gbk''NAME",
        b"Content-Disposition: inline; filename*0*=utf-8''%E6%9C; filename*1=NAME",
        b"Content-Disposition: attachment",
    ]
)
SUBTYPES = st.sampled_from([b"mixed", b"alternative", b"related", b"report", b""])
PREAMBLES = st.sampled_from([b"", b"This is a multi-part message.", b"\x00"])
EPILOGUES = st.sampled_from([b"", b"epilogue", b"--"])
ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r", None])
BOUNDARIES = st.one_of(
    st.sampled_from(
        [b"", b"b", b"=_NextPart_000", b"a" * 70, b"a" * 300, b"with space", b"\"quoted\"",
         b"--", b"b--b", b"\xe6\x97\xa5", b"\x00", b"(:)?", b";"]
    ),
    st.binary(min_size=1, max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
)  # fmt: skip


def encode(value: str, name: str) -> bytes:
    """`value` in charset `name`, or UTF-8 where Python has no such codec."""
    try:
        return value.encode(name or "utf-8", errors="replace")
    except (LookupError, ValueError):
        return value.encode("utf-8", errors="surrogatepass")


@st.composite
def encoded_text(draw: st.DrawFn) -> bytes:
    """Text in one charset, perhaps declared (elsewhere) as another."""
    return encode(draw(text), draw(charset))


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    """An RFC 2047 encoded word: right, mislabelled, or garbage inside the delimiters."""
    label = draw(charset)
    payload = encode(draw(text), draw(charset))
    kind = draw(WORD_KINDS)
    if draw(st.booleans()):
        body = base64.b64encode(payload) if kind in "Bb" else quopri.encodestring(payload)
        if draw(st.booleans()):  # cut, or with bytes base64/QP do not allow
            body = body[: draw(st.integers(0, len(body)))] + draw(st.binary(max_size=5))
    else:
        body = draw(noise)
    return b"=?" + label.encode("latin-1", "replace") + b"?" + kind.encode() + b"?" + body + b"?="


ADDRESS = st.one_of(
    st.sampled_from(
        [
            b"alice@example.com",
            b"Alice <alice@example.com>",
            b'"\xe5\xbc\xa0\xe4\xb8\x89" <zhangsan@example.cn>',
            b"=?gbk?B?1cXI/Q==?= <zs@example.cn>",
            b"<>",
            b"undisclosed-recipients:;",
            b"a@b@c",
            b'<support@example.com>, bob@example.com, "x" <>',
            b"MAILER-DAEMON@example.com",
            b"support+INC-000001.deadbeef@example.com",
            b"@",
            b'"unterminated <x@y',
        ]
    ),
    st.binary(max_size=80),
)
ENCODED_TEXT = encoded_text()
ENCODED_WORD = encoded_word()
VALUE_PART = st.one_of(ENCODED_TEXT, ENCODED_WORD, ADDRESS, noise, st.just(b"\r\n\t"))
FILE_NAME = st.one_of(ENCODED_WORD, ENCODED_TEXT, noise)


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(VALUE_PART, max_size=4))
    value = draw(SEPARATORS).join(parts)
    if draw(st.integers(0, 20)) == 0:  # a header line longer than RFC 5322's 998 limit
        value = value + b"x" * draw(st.integers(998, 5000))
    return value


HEADER_VALUE = header_value()
HEADER = st.tuples(HEADER_NAME, HEADER_VALUE)


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    found = draw(st.lists(HEADER, max_size=8))
    # Most mail has these; the damage is in their values.
    for must in (b"From", b"Subject", b"Message-ID"):
        if draw(st.integers(0, 3)):
            found.append((must, draw(HEADER_VALUE)))
    return found


def transfer_encoded(draw: st.DrawFn, payload: bytes) -> tuple[bytes, bytes]:
    """(Content-Transfer-Encoding value, body bytes), possibly lying about the encoding."""
    cte = draw(CTE)
    honest = draw(st.integers(0, 3)) > 0
    if cte.lower() == "base64" and honest:
        body = base64.encodebytes(payload)
        if draw(st.booleans()):  # damaged: cut mid-quantum, or junk inside
            body = body[: draw(st.integers(0, len(body)))] + draw(st.binary(max_size=8))
    elif cte == "quoted-printable" and honest:
        body = quopri.encodestring(payload)
        if draw(st.booleans()):
            body += b"=Z" + draw(st.binary(max_size=4)) + b"="
    else:
        body = payload
    return cte.encode(), body


def content_type(kind: bytes, label: str) -> bytes:
    if not label:
        return kind
    return kind + b"; charset=" + label.encode("latin-1", "replace")


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    """One non-multipart entity: its own headers, a blank line, a body."""
    kind = draw(LEAF_TYPES)
    actual, label = draw(charset), draw(charset)
    payload = encode(draw(text), actual)
    if kind == b"text/html":
        payload = b"<html><body><p>" + payload + b"</p><br></body>"
    if draw(st.integers(0, 4)) == 0:
        payload += draw(st.binary(max_size=300))  # NULs, invalid sequences
    cte, body = transfer_encoded(draw, payload)
    lines = [b"Content-Type: " + content_type(kind, label)]
    if cte:
        lines.append(b"Content-Transfer-Encoding: " + cte)
    if draw(st.integers(0, 3)) == 0:
        lines.append(draw(DISPOSITIONS).replace(b"NAME", draw(FILE_NAME)))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


LEAF = leaf()


def multipart(depth: int) -> st.SearchStrategy[bytes]:
    child = LEAF if depth <= 0 else st.one_of(LEAF, LEAF, multipart(depth - 1))
    children = st.lists(child, max_size=4)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        declared = draw(BOUNDARIES)
        used = declared if draw(st.integers(0, 4)) else draw(BOUNDARIES)  # sometimes another
        head = b"Content-Type: multipart/" + draw(SUBTYPES)
        if draw(st.integers(0, 6)):
            head += b'; boundary="' + declared + b'"'
        out = [head, b"", draw(PREAMBLES)]
        for part in draw(children):
            out += [b"--" + used, part]
        if draw(st.integers(0, 3)):  # the closing delimiter, unless truncated
            out.append(b"--" + used + b"--")
        out.append(draw(EPILOGUES) + (used if draw(st.booleans()) else b""))
        return b"\r\n".join(out)

    return build()


BODY = st.one_of(LEAF, multipart(2))
HEADERS = headers()


@st.composite
def message(draw: st.DrawFn) -> bytes:
    """One whole message, mostly mail-shaped; damage decided by the draws."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.binary(max_size=2000))  # not mail at all
    lines = [name + b": " + value for name, value in draw(HEADERS)]
    data = b"\r\n".join(lines) + b"\r\n" + draw(BODY)
    ending = draw(ENDINGS)
    if ending is not None and ending != b"\r\n":
        data = data.replace(b"\r\n", ending)
    if draw(st.integers(0, 8)) == 0:  # the connection dropped, or a proxy cut it
        data = data[: draw(st.integers(0, len(data)))]
    return data


MESSAGE = message()


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """What the group-commit writer sees: a few deliveries committed together."""
    return draw(st.lists(MESSAGE, min_size=1, max_size=8))
