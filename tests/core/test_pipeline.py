"""The one intake pipeline on real databases: dedup, raw storage, threading, journal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.intake import Intake, Source
from gateway.pipeline import Created, Duplicate, Pipeline, Quarantined, RawInput, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import IntakeKey, RawMessage, Ticket, TicketEvent

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"


@pytest.fixture
def pipeline(db: Database, settings: Settings, clock) -> Pipeline:
    return Pipeline(db, settings, RulesHolder(RULES).classify, clock)


def mail(subject: str, body: str = "", sender: str = "alice@example.com", **kw) -> Intake:
    return Intake(source=Source.SMTP, sender=sender, subject=subject, body=body, **kw)


def count(db: Database, model) -> int:
    with db.unit(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model))


def ticket(db: Database, key: str) -> Ticket:
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        t.events  # noqa: B018 - load the journal before the session closes
        return t


def test_created_ticket_is_journalled_with_its_classification(pipeline, db) -> None:
    out = pipeline.process(mail("服务器宕机", "db-bj-03 不通", message_id="a@x"))
    assert isinstance(out, Created)
    t = ticket(db, out.key)
    assert t.requester == "alice@example.com" and t.source == "smtp"
    kinds = [e.kind for e in t.events]
    assert kinds == ["created", "classified"]
    created, classified = t.events
    assert created.actor == "alice@example.com" and created.channel == "smtp"
    assert created.after["status"] == t.status
    assert classified.after["type"] == t.type and classified.after["priority"] == t.priority
    assert classified.note.startswith("rule ")
    assert classified.public is False


def test_same_message_id_twice_is_one_ticket(pipeline, db) -> None:
    raw = RawInput(b"Message-ID: <a@x>\r\n\r\nhi\r\n")
    first = pipeline.process(mail("printer", message_id="a@x"), raw)
    second = pipeline.process(mail("printer", message_id="a@x"), raw)
    assert isinstance(first, Created)
    assert second == Duplicate(first.key)
    assert count(db, Ticket) == 1 and count(db, RawMessage) == 1
    with db.unit(readonly=True) as s:
        assert s.scalars(select(IntakeKey)).one().deliveries == 2


def test_without_message_id_the_same_bytes_are_one_ticket(pipeline, db) -> None:
    raw = RawInput(b"Subject: printer\r\n\r\nhi\r\n")
    first = pipeline.process(mail("printer"), raw)
    assert pipeline.process(mail("printer"), raw) == Duplicate(first.key)
    other = pipeline.process(mail("printer"), RawInput(b"Subject: printer\r\n\r\nhi again\r\n"))
    assert isinstance(other, Created) and other.key != first.key


def test_unparseable_raw_is_kept_in_quarantine(pipeline, db) -> None:
    junk = b"\x00\xff\xfe garbage that is no message"
    out = pipeline.process(
        mail(""), RawInput(junk, "x@y", ("support@example.com",), "not a message")
    )
    assert out == Quarantined("not a message")
    assert count(db, Ticket) == 0
    with db.unit(readonly=True) as s:
        raw = s.scalars(select(RawMessage)).one()
        assert raw.data == junk and raw.status == "quarantined" and raw.reason == "not a message"
        assert raw.envelope_to == ["support@example.com"]


def test_subject_tag_from_the_requester_comments_on_the_ticket(pipeline, db) -> None:
    key = pipeline.process(mail("VPN down", cc=("bob@example.com",))).key
    reply = pipeline.process(mail(f"Re: [{key}] VPN down", "still down"))
    assert reply == Updated(key)
    cc_reply = pipeline.process(mail(f"Re: [{key}] VPN", "me too", sender="bob@example.com"))
    assert cc_reply == Updated(key)
    t = ticket(db, key)
    comments = [e for e in t.events if e.kind == "comment"]
    assert [(c.actor, c.note) for c in comments] == [
        ("alice@example.com", "still down"),
        ("bob@example.com", "me too"),
    ]


def test_subject_tag_from_a_stranger_never_touches_the_ticket(pipeline, db) -> None:
    key = pipeline.process(mail("VPN down")).key
    out = pipeline.process(mail(f"Re: [{key}] close this", "spoof", sender="mallory@evil.test"))
    assert isinstance(out, Created) and out.key != key
    old = ticket(db, key)
    # Only an internal note that someone wrote about it; no comment, no state change.
    assert [e.kind for e in old.events] == ["created", "classified", "linked"]
    assert old.events[-1].public is False and out.key in old.events[-1].note
    assert old.status == "new"
    assert ticket(db, out.key).parent_id == old.id


def test_repeat_of_an_active_fingerprint_counts_an_occurrence(pipeline, db) -> None:
    alert = Intake(source=Source.ALERTMANAGER, sender="", subject="disk full", fingerprint="fp1")
    key = pipeline.process(alert).key
    assert pipeline.process(alert) == Updated(key)
    assert pipeline.process(alert) == Updated(key)
    t = ticket(db, key)
    assert t.occurrences == 3
    assert len(t.events) == 2  # no journal flood
    assert count(db, TicketEvent) == 2


def test_channel_preset_fields_win_over_rules(pipeline, db) -> None:
    out = pipeline.process(
        Intake(
            source=Source.INSPECTION,
            sender="",
            subject="服务器宕机 drill",
            type="inspection",
            priority="P2",
            group="patrol",
        )
    )
    t = ticket(db, out.key)
    assert (t.type, t.priority, t.group) == ("inspection", "P2", "patrol")
    assert t.key.startswith("INS-")


GROUPS = """
groups:
  dba: {strategy: round_robin, members: [ann@example.com, ben@example.com, cat@example.com]}
  ops: {strategy: least_open, members: [dan@example.com, eve@example.com]}
  queue: {strategy: none, members: [fay@example.com]}
rules:
  - name: database
    when: {any: [数据库, mysql]}
    then: {type: incident, priority: P1, group: dba}
  - name: server
    when: {any: [server]}
    then: {type: incident, priority: P2, group: ops}
  - name: queued
    when: {any: [printer]}
    then: {group: queue}
"""


@pytest.fixture
def routed(db: Database, settings: Settings, clock, tmp_path: Path) -> Pipeline:
    path = tmp_path / "rules.yaml"
    path.write_text(GROUPS, encoding="utf-8")
    holder = RulesHolder(path)
    return Pipeline(db, settings, holder.classify, clock, lambda n: holder.ruleset.group(n))


def test_round_robin_takes_turns_from_the_database(routed, db) -> None:
    keys = [routed.process(mail(f"mysql 慢查询 {i}")).key for i in range(4)]
    owners = [ticket(db, k).assignee for k in keys]
    assert owners == [
        "ann@example.com",
        "ben@example.com",
        "cat@example.com",
        "ann@example.com",
    ]
    t = ticket(db, keys[0])
    assert t.status == "assigned" and t.group == "dba"
    routed_event = [e for e in t.events if e.kind == "routed"]
    assert routed_event and "round_robin" in routed_event[0].note


def test_least_open_goes_to_the_lighter_load(routed, db) -> None:
    first = routed.process(mail("server down 1")).key
    second = routed.process(mail("server down 2")).key
    assert {ticket(db, first).assignee, ticket(db, second).assignee} == {
        "dan@example.com",
        "eve@example.com",
    }
    # Close dan's ticket: dan now has fewer open tickets and gets the next one.
    dan_key = first if ticket(db, first).assignee == "dan@example.com" else second
    with db.unit() as s:
        s.scalars(select(Ticket).where(Ticket.key == dan_key)).one().status = "closed"
    third = routed.process(mail("server down 3")).key
    assert ticket(db, third).assignee == "dan@example.com"


def test_strategy_none_leaves_the_ticket_in_the_group_queue(routed, db) -> None:
    t = ticket(db, routed.process(mail("printer jam")).key)
    assert t.group == "queue" and t.assignee is None and t.status == "new"


AGENT = "olga@example.com"


@pytest.fixture
def replying(db: Database, settings: Settings, clock) -> Pipeline:
    settings = settings.model_copy(
        update={"replies": settings.replies.model_copy(update={"secret": "k", "agents": [AGENT]})}
    )
    return Pipeline(db, settings, RulesHolder(RULES).classify, clock)


def move(db: Database, key: str, status: str) -> None:
    with db.unit() as s:
        s.scalars(select(Ticket).where(Ticket.key == key)).one().status = status


def test_requester_reply_to_pending_resumes_work(replying, db) -> None:
    key = replying.process(mail("VPN down")).key
    move(db, key, "pending")
    out = replying.process(mail(f"Re: [{key}]", "v5.1 on Windows", reply_text="v5.1 on Windows"))
    assert out == Updated(key)
    t = ticket(db, key)
    assert t.status == "in_progress"
    start = next(e for e in t.events if e.kind == "action.start")
    assert start.actor == "alice@example.com" and start.channel == "smtp"


def test_requester_rejects_then_accepts_a_resolution(replying, db) -> None:
    key = replying.process(mail("VPN down")).key
    move(db, key, "resolved")
    replying.process(mail(f"Re: [{key}]", "x", reply_text="还是不行，未解决"))
    t = ticket(db, key)
    assert t.status == "reopened"
    assert "未解决" in next(e for e in t.events if e.kind == "action.reopen").note
    move(db, key, "resolved")
    replying.process(mail(f"Re: [{key}] ok", "x", reply_text="已解决，谢谢"))
    assert ticket(db, key).status == "closed"


def test_participant_comments_but_cannot_accept(replying, db) -> None:
    key = replying.process(mail("VPN down", cc=("bob@example.com",))).key
    move(db, key, "resolved")
    replying.process(mail(f"Re: [{key}]", "x", sender="bob@example.com", reply_text="已解决"))
    t = ticket(db, key)
    assert t.status == "resolved"
    assert [e.note for e in t.events if e.kind == "comment"] == ["已解决"]


def test_agent_commands_by_mail_are_journalled(replying, db) -> None:
    key = replying.process(mail("VPN down")).key
    text = "Looking now.\n#assign olga@example.com\n#priority P0\n#start\n#explode\n#resolve"
    replying.process(mail(f"Re: [{key}]", text, sender=AGENT, reply_text=text))
    t = ticket(db, key)
    assert (t.assignee, t.priority, t.status) == (AGENT, "P0", "resolved")
    kinds = [e.kind for e in t.events]
    assert kinds[-5:] == ["comment", "action.assign", "updated", "action.start", "action.resolve"]
    assert [e.note for e in t.events if e.kind == "comment"] == ["Looking now.\n#explode"]
    assert all(e.actor == AGENT for e in t.events[-4:])


def test_refused_mail_command_is_journalled(replying, db) -> None:
    key = replying.process(mail("VPN down")).key
    replying.process(mail(f"Re: [{key}]", "#close", sender=AGENT, reply_text="#close"))
    t = ticket(db, key)
    assert t.status == "new"
    refused = [e for e in t.events if e.kind == "refused"]
    assert refused and "#close" in refused[0].note and "resolve it first" in refused[0].note


def test_signed_reply_address_threads_without_a_subject_tag(replying, db) -> None:
    from gateway.ingest.followup import reply_address

    key = replying.process(mail("VPN down")).key
    to = reply_address("support@example.com", "k", key).lower()
    out = replying.process(mail("Re: VPN", "more info", recipients=(to,), reply_text="more info"))
    assert out == Updated(key)


def test_automatic_mail_notes_a_ticket_but_never_creates_one(replying, db) -> None:
    key = replying.process(mail("VPN down")).key
    out = replying.process(
        mail(f"Auto: [{key}]", "I am on leave", auto="autoreply", reply_text="I am on leave")
    )
    assert out == Updated(key)
    note = ticket(db, key).events[-1]
    assert note.kind == "comment" and note.public is False and "autoreply" in note.note
    assert ticket(db, key).status == "new"
    bounce = replying.process(
        mail("Undeliverable", "550 user unknown", auto="bounce"), RawInput(b"bounce bytes")
    )
    assert isinstance(bounce, Quarantined) and "bounce" in bounce.reason
    with db.unit(readonly=True) as s:
        raw = s.scalars(select(RawMessage).where(RawMessage.data == b"bounce bytes")).one()
        assert raw.status == "quarantined"
    assert count(db, Ticket) == 1


def test_attachments_are_kept_once_by_content(pipeline, db) -> None:
    from gateway.intake import IntakeFile
    from gateway.storage.models import Attachment, Blob

    logo = IntakeFile("logo.png", "image/png", b"\x89PNG same bytes")
    log = IntakeFile("错误日志.txt", "text/plain", "ORA-12541 无监听程序".encode())
    key = pipeline.process(
        mail("数据库报错", files=(logo, log), dropped_files=("dump.bin (too big)",))
    ).key
    pipeline.process(mail(f"Re: [{key}]", "again", files=(logo,), reply_text="again"))
    t = ticket(db, key)
    assert [(a.filename, a.size) for a in t.attachments] == [
        ("logo.png", len(logo.data)),
        ("错误日志.txt", len(log.data)),
        ("logo.png", len(logo.data)),
    ]
    assert count(db, Attachment) == 3 and count(db, Blob) == 2
    with db.unit(readonly=True) as s:
        blob = s.get(Blob, t.attachments[1].sha256)
        assert blob is not None and blob.data == log.data
    dropped = [e for e in t.events if e.kind == "attachments_dropped"]
    assert dropped and "dump.bin" in dropped[0].note
