"""classify_automatic on real bounces, delays, auto-replies and reports, and on made cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.ingest.autoreply import AutoKind, classify_automatic
from gateway.ingest.mailparse import parse_message
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
SAMPLES = sorted((CORPUS / "email" / "autoreply-bounce").glob("*.eml"))  # presence: test_mailparse


def stated_kind(sample: Path) -> str | None:
    path = sample.with_name(sample.name.removesuffix(".eml") + ".expected.json")
    return json.loads(path.read_text("utf-8")).get("kind") if path.exists() else None


@pytest.mark.parametrize(
    "sample", [s for s in SAMPLES if stated_kind(s)], ids=lambda s: s.name.removesuffix(".eml")
)
def test_corpus_kinds(sample: Path) -> None:
    kind = stated_kind(sample)
    got = classify_automatic(parse_message(sample.read_bytes()))
    if kind == "not-bounce":
        assert got is None
    else:  # the corpus spells them with hyphens: feedback-report, read-receipt
        assert got == AutoKind(kind.replace("-", "_"))


def classify(headers: str, body: str = "hello\n", **kwargs: object) -> AutoKind | None:
    raw = f"From: Zhang San <zhang@corp.example>\nTo: ops@corp.example\n{headers}\n{body}"
    return classify_automatic(parse_message(raw.encode()), **kwargs)  # type: ignore[arg-type]


def test_a_person_is_not_automatic() -> None:
    assert classify("Subject: 打印机坏了\nAuto-Submitted: no\n") is None
    assert classify("Subject: Re: Undeliverable: mail to the printer\n") is None  # about a bounce


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("Auto-Submitted: auto-replied\n", AutoKind.AUTOREPLY),
        ("X-Autoreply: yes\n", AutoKind.AUTOREPLY),
        ("X-Autorespond: on vacation\n", AutoKind.AUTOREPLY),
        ("X-Auto-Response-Suppress: OOF\n", AutoKind.AUTOREPLY),
        ("Precedence: auto_reply\n", AutoKind.AUTOREPLY),
        ("Subject: 自动回复: [OPS-12] 打印机故障\n", AutoKind.AUTOREPLY),
        ("Subject: Out of Office: [OPS-12]\n", AutoKind.AUTOREPLY),
        ("Return-Path: <>\n", AutoKind.AUTOREPLY),
        ("Auto-Submitted: auto-generated\n", AutoKind.BULK),  # e.g. a monitoring alert
        ("Precedence: bulk\n", AutoKind.BULK),
        ("Precedence: junk\n", AutoKind.BULK),
        ("List-Unsubscribe: <mailto:u@news.example>\n", AutoKind.BULK),
        ("List-Id: <ops.lists.corp.example>\n", AutoKind.LIST),
        ("Precedence: list\n", AutoKind.LIST),
        ("X-Failed-Recipients: a@x.example\n", AutoKind.BOUNCE),
        ("Subject: 系统退信: [OPS-12]\n", AutoKind.BOUNCE),
        ("X-OpsGateway-Ticket: OPS-12\n", AutoKind.OWN_LOOP),
    ],
)
def test_headers(headers: str, kind: AutoKind) -> None:
    assert classify(headers) == kind


def test_mailer_daemon_sender() -> None:
    raw = b"From: MAILER-DAEMON@mx.example\nSubject: Warning: message delayed 4 hours\n\nx\n"
    assert classify_automatic(parse_message(raw)) == AutoKind.DELAY
    raw = b"From: Mail Delivery System <x@mx.example>\nSubject: failure notice\n\nx\n"
    assert classify_automatic(parse_message(raw)) == AutoKind.BOUNCE


def test_own_addresses_and_header() -> None:
    assert classify("", own_addresses=["Zhang@Corp.Example"]) == AutoKind.OWN_LOOP
    assert classify("X-Gw: 1\n", own_header="X-Gw") == AutoKind.OWN_LOOP


def report(kind: str, fields: str) -> bytes:
    return (
        "From: mailer-daemon@mx.example\nSubject: report\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nsee below\n"
        f"--b\nContent-Type: message/{kind}\n\n{fields}\n--b--\n"
    ).encode()


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("delivery-status", "Reporting-MTA: dns; mx\n\nAction: delayed\n", AutoKind.DELAY),
        (
            "delivery-status",
            "Reporting-MTA: dns; mx\n\nAction: delayed\n\nAction: failed\n",
            AutoKind.BOUNCE,
        ),
        ("delivery-status", "Reporting-MTA: dns; mx\n\nAction: relayed\n", AutoKind.READ_RECEIPT),
        ("feedback-report", "Feedback-Type: abuse\n", AutoKind.FEEDBACK_REPORT),
        (
            "disposition-notification",
            "Disposition: manual-action/MDN-sent-manually; displayed\n",
            AutoKind.READ_RECEIPT,
        ),
    ],
)
def test_reports(kind: str, fields: str, expected: AutoKind) -> None:
    assert classify_automatic(parse_message(report(kind, fields))) == expected
