"""Reply addresses, mail commands and verdicts: pure functions, no I/O."""

from __future__ import annotations

from gateway.config import RepliesSettings
from gateway.ingest.followup import (
    key_from_addresses,
    parse_commands,
    reply_address,
    reply_token,
    verdict,
)

SECRET = "s3cret-for-tests"
CFG = RepliesSettings()


def test_signed_reply_address_round_trips() -> None:
    address = reply_address("support@example.com", SECRET, "INC-000123")
    assert address == f"support+INC-000123.{reply_token(SECRET, 'INC-000123')}@example.com"
    assert key_from_addresses(["someone@else.org", address], SECRET) == "INC-000123"
    # Parsers lower-case addresses; the key still comes back in its canonical form.
    assert key_from_addresses([address.lower()], SECRET) == "INC-000123"


def test_forged_or_foreign_tokens_are_refused() -> None:
    good = reply_address("support@example.com", SECRET, "INC-000123")
    forged = good.replace("INC-000123", "INC-000124")
    assert key_from_addresses([forged], SECRET) is None
    assert key_from_addresses([good], "another-secret") is None
    assert key_from_addresses(["support+INC-000123@example.com"], SECRET) is None
    assert key_from_addresses(["support@example.com"], SECRET) is None


def test_commands_on_their_own_lines_are_split_from_the_text() -> None:
    commands, text = parse_commands(
        "Found it, disk was full.\n#priority P1\n  #assign li@example.com  \n#resolve\n"
        "#hashtag stays\nThanks"
    )
    assert [(c.name, c.arg, c.line) for c in commands] == [
        ("priority", "P1", 2),
        ("assign", "li@example.com", 3),
        ("resolve", "", 4),
    ]
    assert text == "Found it, disk was full.\n#hashtag stays\nThanks"


def test_commands_inside_a_sentence_are_not_commands() -> None:
    commands, text = parse_commands("please #resolve this")
    assert commands == [] and text == "please #resolve this"


def test_verdicts_in_chinese_and_english() -> None:
    accept, reject = CFG.accept_words, CFG.reject_words
    assert verdict("已解决，谢谢", accept, reject) == "accept"
    assert verdict("Confirmed, works now. Thanks!", accept, reject) == "accept"
    assert verdict("问题还是未解决", accept, reject) == "reject"
    assert verdict("Not fixed: still failing on node 3", accept, reject) == "reject"
    # Full-width and case folding.
    assert verdict("ＦＩＸＥＤ", accept, reject) == "accept"
    assert verdict("收到", accept, reject) is None


def test_only_the_opening_lines_decide() -> None:
    text = "收到\n\n\n\n> 已解决了吗？"
    assert verdict(text, CFG.accept_words, CFG.reject_words) is None


def test_imap_mail_threads_by_delivered_to() -> None:
    """IMAP has no envelope: the trace header carries the signed reply address."""
    from gateway.config import load_settings
    from gateway.ingest.mail import mail_to_intake
    from gateway.intake import Source

    address = reply_address("support@example.com", SECRET, "REQ-000042")
    raw = (
        f"Delivered-To: {address}\r\nFrom: alice@example.com\r\nTo: support@example.com\r\n"
        "Subject: Re: VPN\r\n\r\nstill down\r\n"
    ).encode()
    intake = mail_to_intake(raw, Source.IMAP, load_settings(None, require_file=False)).intake
    assert key_from_addresses(intake.recipients, SECRET) == "REQ-000042"
    # Over SMTP the envelope is the truth and a forged trace header is ignored.
    smtp = mail_to_intake(
        raw,
        Source.SMTP,
        load_settings(None, require_file=False),
        envelope_to=("support@example.com",),
    ).intake
    assert key_from_addresses(smtp.recipients, SECRET) is None
