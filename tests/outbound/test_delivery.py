"""Notifications end to end on real databases, through a real SMTP relay (an aiosmtpd sink)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy import select

from gateway.config import Settings
from gateway.ingest.followup import reply_address
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Intake, Source
from gateway.outbound.policy import Failed
from gateway.outbound.relay import Relay
from gateway.outbound.worker import OutboxWorker
from gateway.pipeline import Created, Pipeline, RawInput, Updated
from gateway.storage.db import Database
from gateway.storage.models import OutboxMessage, Ticket
from tests.conftest import SHARED
from tests.outbound.conftest import auth


def mail(subject: str, sender: str = "alice@example.com", **kw) -> Intake:
    kw.setdefault("sender_name", "张三")
    return Intake(source=Source.SMTP, sender=sender, subject=subject, body="VPN 连不上", **kw)


def rows(db: Database) -> list[OutboxMessage]:
    with db.unit(readonly=True) as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def ticket(db: Database, key: str) -> Ticket:
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        t.events  # noqa: B018 - load the journal before the session closes
        return t


def worker(db: Database, settings: Settings, clock, name: str = "w1") -> OutboxWorker:
    return OutboxWorker(db, settings, clock=clock, name=name)


def test_acknowledgement_has_the_exact_headers(db, out_settings, pipeline, sink, clock) -> None:
    sink.start()
    raw = RawInput(b"Message-ID: <first@client.example>\r\n\r\nVPN\r\n")
    out = pipeline.process(mail("VPN 无法连接", message_id="first@client.example"), raw)
    assert isinstance(out, Created)
    (row,) = rows(db)
    assert (row.event, row.recipient, row.state) == ("received", "alice@example.com", "pending")
    assert worker(db, out_settings, clock).run_once() == 1

    (msg,) = sink.messages()
    key = out.key
    assert str(msg["Subject"]) == f"[{key}] 已受理：VPN 无法连接"
    # RFC 2047 on the wire: the raw header is ASCII encoded-words.
    head = sink.received[0].data.split(b"\r\n\r\n")[0]
    assert head.isascii() and f"Subject: [{key}] =?utf-8?b?".encode() in head
    assert parseaddr(str(msg["From"])) == ("IT 运维", "support@example.com")
    assert str(msg["To"]) == "alice@example.com"
    assert str(msg["Message-ID"]) == f"<{row.message_id}>"
    assert row.message_id.endswith("@example.com") and row.message_id.startswith(key.lower())
    # The ack threads under the requester's own mail.
    assert str(msg["In-Reply-To"]) == "<first@client.example>"
    assert str(msg["References"]) == "<first@client.example>"
    signed = reply_address("support@example.com", "s3cret-for-tests", key)
    assert parseaddr(str(msg["Reply-To"]))[1] == signed
    assert str(msg["Auto-Submitted"]) == "auto-generated"
    assert str(msg["X-Auto-Response-Suppress"]) == "All"
    assert str(msg["X-OpsGateway-Ticket"]) == key
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert key in text and "已解决" in text and "未解决" in text
    assert "2026-11-25 17:00 (Asia/Shanghai)" in text  # 09:00 UTC in the daemon's zone
    assert "<p>" in html and key in html
    assert sink.received[0].rcpt_tos == ["alice@example.com"]
    (after,) = rows(db)
    assert after.state == "sent" and after.attempts == 1 and after.sent_at == clock.now


def test_thread_chain_and_a_reply_lands_on_its_ticket(
    db, out_settings, pipeline: Pipeline, client, sink, clock
) -> None:
    sink.start()
    raw = RawInput(b"Message-ID: <m0@client.example>\r\n\r\nprinter\r\n")
    out = pipeline.process(mail("打印机卡纸", message_id="m0@client.example"), raw)
    key = out.key
    headers = auth("olga")
    r = client.post(
        f"/api/v1/tickets/{key}/transitions",
        json={"action": "assign", "assignee": "olga@example.com"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert (
        client.post(
            f"/api/v1/tickets/{key}/transitions", json={"action": "start"}, headers=headers
        ).status_code
        == 200
    )
    r = client.post(
        f"/api/v1/tickets/{key}/comments", json={"text": "请问是哪台打印机？"}, headers=headers
    )
    assert r.status_code == 201
    r = client.post(
        f"/api/v1/tickets/{key}/transitions",
        json={"action": "pend", "reason": "等待型号"},
        headers=headers,
    )
    assert r.status_code == 200
    worker(db, out_settings, clock).run_once()

    to_alice = [m for m in sink.messages() if str(m["To"]) == "alice@example.com"]
    assert [str(m["X-OpsGateway-Event"]) for m in to_alice] == ["received", "commented", "pending"]
    ids = [str(m["Message-ID"]) for m in to_alice]
    # Each mail answers the previous one and carries the whole thread.
    assert str(to_alice[1]["In-Reply-To"]) == ids[0]
    assert str(to_alice[2]["In-Reply-To"]) == ids[1]
    assert str(to_alice[2]["References"]).split() == ["<m0@client.example>", ids[0], ids[1]]
    # The agent is not told about their own assignment, comment or question.
    assert not [m for m in sink.messages() if str(m["To"]) == "olga@example.com"]

    # Alice answers the question as a mail client would.
    question = to_alice[2]
    reply = EmailMessage()
    reply["From"] = "张三 <alice@example.com>"
    reply["To"] = str(question["Reply-To"])
    reply["Subject"] = "Re: " + str(question["Subject"])
    reply["Message-ID"] = "<answer-1@client.example>"
    reply["In-Reply-To"] = str(question["Message-ID"])
    reply["References"] = f"{question['References']} {question['Message-ID']}"
    reply.set_content("是三楼的 HP M404。\n\n> 请问是哪台打印机？\n")
    parsed = mail_to_intake(
        reply.as_bytes(),
        Source.SMTP,
        out_settings,
        envelope_from="alice@example.com",
        envelope_to=(parseaddr(str(question["Reply-To"]))[1],),
    )
    assert parsed.intake.auto is None
    assert pipeline.process(parsed.intake, parsed.raw) == Updated(key)
    t = ticket(db, key)
    comment = [e for e in t.events if e.kind == "comment"][-1]
    assert comment.actor == "alice@example.com" and "HP M404" in comment.note
    assert t.status == "in_progress"  # the reply answered the pending question

    # Alice's reply notifies the assignee (not Alice herself), threaded for the assignee.
    worker(db, out_settings, clock).run_once()
    to_olga = [m for m in sink.messages() if str(m["To"]) == "olga@example.com"]
    assert [str(m["X-OpsGateway-Event"]) for m in to_olga] == ["commented"]
    assert "HP M404" in to_olga[0].get_body(("plain",)).get_content()


def test_our_own_mail_coming_back_is_never_a_new_ticket(
    db, out_settings, pipeline, sink, clock
) -> None:
    sink.start()
    pipeline.process(mail("磁盘满了"))
    worker(db, out_settings, clock).run_once()
    (sent,) = sink.received
    looped = mail_to_intake(
        sent.data, Source.SMTP, out_settings, envelope_to=("support@example.com",)
    )
    assert looped.intake.auto == "own_loop"
    before = len(rows(db))
    pipeline.process(looped.intake, looped.raw)
    with db.unit(readonly=True) as s:
        assert len(s.scalars(select(Ticket)).all()) == 1
    assert len(rows(db)) == before


def test_english_by_recipient_domain(db, out_settings, pipeline, sink, clock) -> None:
    cfg = out_settings.outbound.model_copy(update={"languages": {"corp.example.org": "en"}})
    settings = out_settings.model_copy(update={"outbound": cfg})
    pipeline.settings = settings
    sink.start()
    out = pipeline.process(mail("Mailbox full", sender="bob@corp.example.org", sender_name="Bob"))
    worker(db, settings, clock).run_once()
    (msg,) = sink.messages()
    assert str(msg["Subject"]) == f"[{out.key}] Received: Mailbox full"
    text = msg.get_body(("plain",)).get_content()
    assert "Hello Bob" in text and '"confirmed"' in text and '"not fixed"' in text


def test_automatic_mail_never_triggers_a_notification(
    db, out_settings, pipeline, sink, clock
) -> None:
    out = pipeline.process(mail("VPN down", message_id="orig@client.example"))
    start = len(rows(db))
    bounce = (SHARED / "corpus/email/autoreply-bounce/flanker--bounce-office365.eml").read_bytes()
    parsed = mail_to_intake(bounce, Source.SMTP, out_settings, envelope_to=("support@example.com",))
    assert parsed.intake.auto
    # Point the bounce at the ticket, as a bounce of our acknowledgement would be.
    intake = dataclasses.replace(parsed.intake, subject=f"Undeliverable: [{out.key}] VPN down")
    assert pipeline.process(intake, parsed.raw) == Updated(out.key)
    assert any(e.kind == "comment" and not e.public for e in ticket(db, out.key).events)
    assert len(rows(db)) == start


def test_ack_limit_per_recipient_per_hour(db, out_settings, pipeline, sink, clock) -> None:
    cfg = out_settings.outbound.model_copy(update={"ack_limit_per_hour": 2})
    pipeline.settings = out_settings.model_copy(update={"outbound": cfg})
    for n in range(4):
        pipeline.process(mail(f"loop {n}", sender="robot@other.example"))
    assert [r.event for r in rows(db)] == ["received", "received"]
    clock.now += timedelta(hours=1, seconds=1)
    pipeline.process(mail("after an hour", sender="robot@other.example"))
    assert len(rows(db)) == 3


def test_own_addresses_are_never_mailed(db, out_settings, pipeline, client, sink, clock) -> None:
    out = pipeline.process(
        mail(
            "cc to ourselves",
            cc=("support@example.com", "carol@example.com", "support+x@example.com"),
        )
    )
    r = client.post(
        f"/api/v1/tickets/{out.key}/transitions",
        json={"action": "assign", "assignee": "support@example.com"},
        headers=auth("olga"),
    )
    assert r.status_code == 200
    client.post(
        f"/api/v1/tickets/{out.key}/comments", json={"text": "update"}, headers=auth("olga")
    )
    recipients = {r.recipient for r in rows(db)}
    assert {"alice@example.com", "carol@example.com"} <= recipients
    assert not recipients & {"support@example.com", "support+x@example.com"}


def test_header_injection_in_a_subject_is_folded(db, out_settings, client, sink, clock) -> None:
    sink.start()
    r = client.post(
        "/api/v1/tickets",
        json={"subject": "printer\r\nBcc: victim@evil.example\r\n\r\nspam"},
        headers=auth("alice"),
    )
    assert r.status_code == 201
    worker(db, out_settings, clock).run_once()
    (sent,) = sink.received
    assert sent.rcpt_tos == ["alice@example.com"]
    msg = sent.message
    assert msg["Bcc"] is None
    assert "\n" not in str(msg["Subject"]) and "Bcc: victim" in str(msg["Subject"])


def test_relay_down_then_back_delivers_once(db, out_settings, pipeline, sink, clock) -> None:
    pipeline.process(mail("relay outage"))
    w = worker(db, out_settings, clock)
    w.run_once()  # relay not started: connection refused
    (row,) = rows(db)
    assert row.state == "pending" and row.attempts == 1 and "unavailable" in row.last_error
    first_retry = row.next_attempt_at - clock.now
    assert timedelta(seconds=30) <= first_retry <= timedelta(seconds=60)
    assert w.run_once() == 0  # not due yet
    clock.now = row.next_attempt_at
    w.run_once()
    (row,) = rows(db)
    assert row.attempts == 2
    # Backoff grows (2nd delay >= 60 s) and stays under the cap plus nothing.
    assert timedelta(seconds=60) <= row.next_attempt_at - clock.now <= timedelta(seconds=600)
    sink.start()
    clock.now = row.next_attempt_at
    assert w.run_once() == 1
    clock.now += timedelta(hours=2)
    assert w.run_once() == 0
    assert len(sink.received) == 1
    (row,) = rows(db)
    assert row.state == "sent" and row.attempts == 3


def test_dead_letter_after_max_attempts_and_admin_retry(
    db, out_settings, pipeline, client, sink, clock
) -> None:
    cfg = out_settings.outbound.model_copy(update={"max_attempts": 3})
    settings = out_settings.model_copy(update={"outbound": cfg})
    pipeline.process(mail("dead letter"))
    w = worker(db, settings, clock)
    for _ in range(3):
        w.run_once()
        clock.now += timedelta(seconds=600)
    (row,) = rows(db)
    assert (
        row.state == "dead" and row.attempts == 3 and "gave up after 3 attempts" in row.last_error
    )
    assert client.get("/api/v1/outbox?state=dead", headers=auth("olga")).status_code == 403
    listed = client.get("/api/v1/outbox?state=dead", headers=auth("root")).json()
    assert [m["id"] for m in listed["messages"]] == [row.id]
    assert listed["messages"][0]["ticket"] and listed["messages"][0]["state"] == "dead"
    assert (
        client.post("/api/v1/outbox/999999/retry", headers=auth("root")).json()["error"]
        == "not_found"
    )

    sink.start()
    r = client.post(f"/api/v1/outbox/{row.id}/retry", headers=auth("root"))
    assert r.status_code == 200 and r.json()["state"] == "pending"
    assert client.post(f"/api/v1/outbox/{row.id}/retry", headers=auth("root")).status_code == 409
    w.run_once()
    assert len(sink.received) == 1 and rows(db)[0].state == "sent"


def test_permanent_refusal_is_dead_at_once(db, out_settings, pipeline, sink, clock) -> None:
    sink.refuse = "550 5.1.1 mailbox unavailable"
    sink.start()
    pipeline.process(mail("no such user"))
    worker(db, out_settings, clock).run_once()
    (row,) = rows(db)
    assert row.state == "dead" and row.attempts == 1 and "550" in row.last_error


def test_crash_between_send_and_mark_sends_at_most_one_duplicate(
    db, out_settings, pipeline, sink, clock
) -> None:
    sink.start()
    pipeline.process(mail("crash window"))
    crashed = worker(db, out_settings, clock, "crashed")
    (item,) = crashed.claim_batch()
    with Relay(out_settings.outbound.smtp) as relay:
        crashed.deliver(item, relay)  # sent, then the process "dies" before record()
    survivor = worker(db, out_settings, clock, "survivor")
    assert survivor.run_once() == 0  # the lease still holds
    clock.now += timedelta(seconds=out_settings.outbound.lease_seconds + 1)
    assert survivor.run_once() == 1
    clock.now += timedelta(hours=1)
    assert survivor.run_once() == 0
    assert len(sink.received) == 2  # exactly one duplicate
    first, second = sink.messages()
    assert str(first["Message-ID"]) == str(second["Message-ID"])
    (row,) = rows(db)
    assert row.state == "sent" and row.claimed_by is None
    # The crashed worker coming back cannot overwrite the outcome it no longer owns.
    crashed.record(item, Failed("late news from a dead worker"))
    (row,) = rows(db)
    assert row.state == "sent" and row.attempts == 1 and row.last_error == ""


def test_storm_is_held_and_sent_as_one_digest(
    db, out_settings, pipeline, client, sink, clock
) -> None:
    cfg = out_settings.outbound.model_copy(update={"rate_limit_per_hour": 3, "digest_minutes": 10})
    settings = out_settings.model_copy(update={"outbound": cfg})
    pipeline.settings = settings
    client.app.state.settings = settings
    sink.start()
    out = pipeline.process(mail("alert storm"))
    for n in range(6):
        client.post(
            f"/api/v1/tickets/{out.key}/comments",
            json={"text": f"update {n}"},
            headers=auth("olga"),
        )
    states = [r.state for r in rows(db) if r.recipient == "alice@example.com"]
    assert states == ["pending"] * 3 + ["held"] * 4
    w = worker(db, settings, clock)
    w.run_once()
    to_alice = [m for m in sink.received if m.rcpt_tos == ["alice@example.com"]]
    assert len(to_alice) == 3  # the held ones wait for the digest
    clock.now += timedelta(minutes=10)
    w.run_once()
    to_alice = [m.message for m in sink.received if m.rcpt_tos == ["alice@example.com"]]
    assert len(to_alice) == 4
    digest = to_alice[-1]
    assert str(digest["X-OpsGateway-Event"]) == "digest"
    assert str(digest["Subject"]) == "4 条工单更新汇总"
    body = digest.get_body(("plain",)).get_content()
    assert body.count(f"[{out.key}]") == 4
    assert {r.state for r in rows(db) if r.recipient == "alice@example.com"} == {"sent", "digested"}
