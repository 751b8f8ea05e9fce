"""parse_message on the shared corpus (real mail from other projects) and on made cases."""

from __future__ import annotations

import codecs
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ingest.charsets import decode_bytes
from gateway.ingest.mailparse import ParsedMail, ParseError, parse_message
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
EMAIL = CORPUS / "email"
FOLDERS = ("plain", "multipart", "charset-cjk", "replies", "autoreply-bounce", "malformed")
SAMPLES = sorted(EMAIL.glob("*/*.eml"))
CJK_EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "cjk_expected.json").read_text("utf-8")
)
STATED = ("subject", "from_name", "from_address", "text_body", "body_contains", "attachments")


def expected(sample: Path) -> dict[str, Any]:
    path = sample.with_name(sample.name.removesuffix(".eml") + ".expected.json")
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def sample_id(sample: Path) -> str:
    return f"{sample.parent.name}/{sample.name}"


def test_corpus_is_there() -> None:
    missing = [name for name in FOLDERS if not (EMAIL / name).is_dir()]
    if missing:
        message = f"corpus folders missing under {EMAIL}: {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def assert_clean(parsed: ParsedMail) -> None:
    """What the store and the API need: UTF-8-encodable text, consistent attachments."""
    texts = [parsed.subject, parsed.from_name, parsed.text, parsed.html, *parsed.defects]
    texts += [a.filename for a in parsed.attachments] + list(parsed.headers.values())
    for text in texts:
        text.encode("utf-8")  # raises on a lone surrogate
    assert all(a.size == len(a.data) for a in parsed.attachments)
    assert parsed.date is None or parsed.date.tzinfo is not None


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_every_corpus_message_parses(sample: Path) -> None:
    assert_clean(parse_message(sample.read_bytes()))


def same_text(got: str, want: str, stated: dict[str, Any]) -> bool:
    # imap_tools drops the bytes it cannot decode; we decode them. Its value must then be
    # ours less those characters (e.g. "Formao" for our "Formação").
    if got == want:
        return True
    lossy = "imap_tools" in stated.get("source_test", "")
    return lossy and "".join(c for c in got if c.isascii() or c in want) == want


@pytest.mark.parametrize(
    "sample", [s for s in SAMPLES if set(STATED) & set(expected(s))], ids=sample_id
)
def test_stated_expectations(sample: Path) -> None:
    stated = expected(sample)
    parsed = parse_message(sample.read_bytes())
    for key in ("subject", "from_name"):
        if key in stated:
            assert same_text(getattr(parsed, key), stated[key], stated), key
    if "from_address" in stated:  # our contract: addresses come lower-cased
        assert parsed.from_address == stated["from_address"].lower()
    if "text_body" in stated:
        assert parsed.text.strip() == stated["text_body"].replace("\r\n", "\n").strip()
    for snippet in stated.get("body_contains", ()):
        assert snippet in parsed.text
    if "attachments" in stated:
        assert [a.filename for a in parsed.attachments] == stated["attachments"]


@pytest.mark.parametrize(
    "sample", [s for s in SAMPLES if "declared_charset" in expected(s)], ids=sample_id
)
def test_wrong_charset_label_is_overridden(sample: Path) -> None:
    stated = expected(sample)
    parsed = parse_message(sample.read_bytes())
    assert parsed.declared_charset == stated["declared_charset"]
    assert parsed.text_charset is not None
    assert codecs.lookup(parsed.text_charset).name == codecs.lookup(stated["detected_charset"]).name
    assert any("declared" in d for d in parsed.defects)


@pytest.mark.parametrize("name", sorted(k for k in CJK_EXPECTED if not k.startswith("_")))
def test_cjk_samples_decode(name: str) -> None:
    sample = EMAIL / "charset-cjk" / f"{name}.eml"
    if not sample.exists():
        pytest.skip(f"{sample} missing (see test_corpus_is_there)")
    want = CJK_EXPECTED[name]
    parsed = parse_message(sample.read_bytes())
    for key in ("subject", "from_name"):
        if key in want:
            assert getattr(parsed, key) == want[key]
    for snippet in want.get("body_contains", ()):
        assert snippet in parsed.text
    if "attachments" in want:
        assert [a.filename for a in parsed.attachments] == want["attachments"]


# ---------------------------------------------------------------- made cases


def mail(headers: bytes, body: bytes = b"body\n") -> ParsedMail:
    return parse_message(b"From: a@example.com\nTo: ops@corp.example\n" + headers + b"\n" + body)


@pytest.mark.parametrize("raw", [b"", b" \r\n\t\n"])
def test_empty_input_is_not_a_message(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(raw)


def test_gb2312_label_decodes_gbk_characters() -> None:
    # 镕 is GBK, not GB2312; mail clients label GBK text GB2312 all the time.
    parsed = mail(b"Content-Type: text/plain; charset=gb2312\n", "朱镕基".encode("gbk"))
    assert parsed.text == "朱镕基"
    assert parsed.defects == ()


def test_big5_label_decodes_windows_extensions() -> None:
    # 恒 exists only in the Windows (cp950) extension of Big5.
    parsed = mail(b"Content-Type: text/plain; charset=big5\n", "恒溫機房".encode("cp950"))
    assert parsed.text == "恒溫機房"


@pytest.mark.parametrize(
    ("label", "data", "text"),
    [
        (b"iso-8859-1", "磁盘告警".encode(), "磁盘告警"),  # UTF-8 under a Latin-1 label
        (b"us-ascii", "外部郵件全部退回".encode("big5"), "外部郵件全部退回"),
        (b"utf-8", "数据库异常".encode("gb18030"), "数据库异常"),
        (b"x-unknown", "网络中断".encode("gbk"), "网络中断"),
    ],
)
def test_wrong_labels_fall_back(label: bytes, data: bytes, text: str) -> None:
    parsed = mail(b"Content-Type: text/plain; charset=" + label + b"\n", data)
    assert parsed.text == text


def test_latin1_text_is_not_read_as_chinese() -> None:
    # Valid GB18030 byte pairs ("üß" is 0xFC 0xDF), but Chinese inside Latin words is no text.
    text, _, _ = decode_bytes("Grüße aus München".encode("latin-1"), None)
    assert text == "Grüße aus München"


def test_decode_bytes_never_raises_on_hostile_labels() -> None:
    for label in ("base64", "rot13", "unicode_escape", "utf-16", "\udcff", "x" * 300, None):
        text, _, _ = decode_bytes(b"\xff\xfe\x00\xd8 abc \xe4\xbd", label)
        text.encode("utf-8")


def test_encoded_words_split_inside_a_character() -> None:
    # 你好 = E4 BD A0 E5 A5 BD, cut after the fourth byte: RFC 2047 §6.2 joins adjacent words.
    parsed = mail(b"Subject: =?UTF-8?B?5L2g5Q==?=\n =?UTF-8?B?pb0=?= [OPS-1]\n")
    assert parsed.subject == "你好 [OPS-1]"


def test_raw_8bit_headers_take_the_body_charset() -> None:
    headers = "Subject: 打印机故障\n".encode("gbk") + b"Content-Type: text/plain; charset=GBK\n"
    parsed = mail(headers, "三楼打印机卡纸".encode("gbk"))
    assert parsed.subject == "打印机故障"
    assert parsed.text == "三楼打印机卡纸"


def test_attachment_names_rfc2231_rfc2047_and_raw() -> None:
    body = (
        b"--b\nContent-Type: text/plain; charset=utf-8\n\nsee attached\n"
        b"--b\nContent-Type: application/octet-stream\n"
        b"Content-Disposition: attachment; filename*=gb2312''%C9%EA%C7%EB.txt\n\nA\n"
        b'--b\nContent-Type: application/pdf; name="=?UTF-8?B?5oql5ZGKLnBkZg==?="\n\nB\n'
        b'--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename="'
        + "日志.log".encode("gbk")
        + b'"\n\nC\n--b--\n'
    )
    parsed = mail(b'Content-Type: multipart/mixed; boundary="b"\n', body)
    assert [a.filename for a in parsed.attachments] == ["申请.txt", "报告.pdf", "日志.log"]
    assert parsed.text == "see attached"  # the line end before a boundary is the boundary's


def test_attachment_limits() -> None:
    parts = b"".join(
        b"--b\nContent-Type: application/octet-stream; name=f%d.bin\n\n" % i + b"x" * size + b"\n"
        for i, size in enumerate((10, 2000, 10, 10))
    )
    parsed = parse_message(
        b'Content-Type: multipart/mixed; boundary="b"\n\n' + parts + b"--b--\n",
        max_attachment_bytes=1000,
        max_attachments=2,
    )
    assert [(a.filename, a.size) for a in parsed.attachments] == [("f0.bin", 10), ("f2.bin", 10)]
    assert [(d.filename, d.reason) for d in parsed.dropped] == [
        ("f1.bin", "larger than 1000 bytes"),
        ("f3.bin", "too many attachments"),
    ]


def test_ids_addresses_and_date() -> None:
    parsed = parse_message(
        b"From: =?UTF-8?B?5byg5LiJLCDov5Dnu7Q=?= <Zhang@Corp.Example>\n"
        b"To: ops@corp.example, Li Si <LI@corp.example>\nCc: <w@corp.example>\n"
        b"Reply-To: desk@corp.example\nMessage-ID: <abc@mx.example>\n"
        b"In-Reply-To: <t1@gw.example>\nReferences: <t0@gw.example>\n <t1@gw.example>\n"
        b"Date: Wed, 01 May 2024 10:00:00 +0800\nSubject: x\n\nhi\n"
    )
    assert (parsed.from_name, parsed.from_address) == ("张三, 运维", "zhang@corp.example")
    assert parsed.to == ("ops@corp.example", "li@corp.example")
    assert (parsed.cc, parsed.reply_to) == (("w@corp.example",), ("desk@corp.example",))
    assert parsed.message_id == "abc@mx.example"
    assert parsed.in_reply_to == ("t1@gw.example",)
    assert parsed.references == ("t0@gw.example", "t1@gw.example")
    assert parsed.date == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert parsed.headers["subject"] == parsed.headers.get_all("SUBJECT")[0] == "x"


def test_bad_date_is_a_defect_not_an_error() -> None:
    parsed = mail(b"Date: the day after tomorrow\n")
    assert parsed.date is None
    assert any(d.startswith("Date:") for d in parsed.defects)


def test_html_only_body_becomes_text() -> None:
    html = "<html><body><p>服务器<b>宕机</b></p><ul><li>web-01</li></ul></body></html>"
    parsed = mail(b"Content-Type: text/html; charset=utf-8\n", html.encode())
    assert "服务器宕机" in parsed.text and "web-01" in parsed.text
    assert parsed.html.startswith("<html>")


def test_deep_nesting_is_bounded() -> None:
    depth = 3000
    raw = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(depth)
    )
    parsed = parse_message(b"Subject: deep\n" + raw + b"Content-Type: text/plain\n\nleaf\n")
    assert parsed.subject == "deep"
    assert parsed.defects


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    try:
        parsed = parse_message(raw)
    except ParseError:
        assert not raw.strip()
        return
    assert_clean(parsed)


HEADER_LINES = st.sampled_from(
    [
        b'Content-Type: multipart/mixed; boundary="b"',
        b"Content-Type: text/plain; charset*=gb2312''%C9",
        b"Content-Type: text/plain; charset=base64",
        b"Content-Disposition: attachment; filename*0*=utf-8''%E4; filename*1=x",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"Subject: =?gb2312?B?1tDOxA?= =?x?q?=FF?=",
        b"From: \xd5\xc5 <\xff@x>",
        b"--b",
        b"--b--",
        b" folded",
        b"",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(HEADER_LINES, st.binary(max_size=40)), max_size=40))
def test_mime_shaped_garbage_never_raises(lines: list[bytes]) -> None:
    raw = b"\r\n".join([b"From: a@b", *lines])
    assert_clean(parse_message(raw))


def test_parts_hidden_after_the_closing_boundary_are_recovered() -> None:
    # The nested multipart reuses its parent's boundary, so the parent "ends" early and the
    # attachment lands in its epilogue; scanners that trust the structure never see it.
    raw = (
        b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
        b'Content-Type: multipart/alternative; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nhello\n--B--\n"
        b"--B\nContent-Type: application/zip; name=x.zip\n\nPK\n--B--\n"
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["x.zip"]
    assert any("after the closing boundary" in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("headers", "body", "text"),
    [
        # A NUL in an RFC 2231 charset makes the stdlib parser raise ValueError.
        (b"Content-Type: multipart/mixed; boundary*=\"a\x00b''x\"\n", b"--x\n\nhi\n", "hi"),
        # Bad field names end compat32's header block; the base64 header after them counts.
        (b"X Bad Name: 1\nContent-Transfer-Encoding: base64\n", b"aGk=\n", "hi"),
    ],
)
def test_hostile_headers(headers: bytes, body: bytes, text: str) -> None:
    parsed = mail(headers, body)
    assert_clean(parsed)
    assert parsed.defects
    assert text in parsed.text


def test_obsolete_space_before_the_colon() -> None:
    assert mail(b"Subject : hi\n").subject == "hi"  # RFC 5322 §4.5.3 obs-optional


def _address_headers() -> list[str]:
    from email.parser import BytesParser
    from email.policy import compat32

    values = set()
    for sample in SAMPLES:
        msg = BytesParser(policy=compat32).parsebytes(sample.read_bytes())
        values.update(
            str(v) for n, v in msg.raw_items() if n.lower() in ("from", "to", "cc", "reply-to")
        )
    made = ["a@b.com", " Foo Bar <foo@bar.com> ", "O'Neil <o@x.org>", "<a@b.c>", "a..b@c.d"]
    return sorted(values) + made


def test_plain_mailbox_fast_path_agrees_with_the_full_parser() -> None:
    """Plain `addr` / `Name <addr>` headers skip mail-parser's RFC 5322 parser; on every such
    header of the corpus the answer must be the one the full parser gives."""
    from mailparser.utils import get_addresses

    from gateway.ingest.mailparse import _SIMPLE_MAILBOX

    taken = 0
    for value in _address_headers():
        simple = _SIMPLE_MAILBOX.fullmatch(value)
        if simple is None:
            continue
        taken += 1
        fast = (
            [("", simple["bare"])] if simple["bare"] else [(simple["name"].strip(), simple["addr"])]
        )
        diagnostics: list[dict[str, object]] = []
        full = [(n, a) for n, a in get_addresses(value, defects=diagnostics) if "@" in a]
        assert fast == full, value
        assert not diagnostics, value
    assert taken > 100  # the fast path is the common case, not a curiosity
