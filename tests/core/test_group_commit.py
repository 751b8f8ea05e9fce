"""Group commit: a batch stores exactly what one-by-one processing stores, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.group_commit import GroupCommitter
from gateway.intake import Intake, IntakeFile, Source
from gateway.pipeline import Created, Duplicate, Pipeline, Quarantined, RawInput, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import IntakeKey, OutboxMessage, RawMessage, Ticket, TicketEvent

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"


@pytest.fixture
def pipeline(db: Database, settings: Settings, clock) -> Pipeline:
    return Pipeline(db, settings, RulesHolder(RULES).classify, clock)


def item(subject: str, msgid: str | None, **kw: Any) -> tuple[Intake, RawInput]:
    intake = Intake(
        source=Source.SMTP,
        sender=kw.pop("sender", "alice@example.com"),
        subject=subject,
        body=kw.pop("body", "please help"),
        message_id=msgid,
        **kw,
    )
    raw = RawInput(f"Message-ID: <{msgid}>\r\nSubject: x\r\n\r\n{subject}\r\n".encode())
    return intake, raw


def stored(db: Database) -> dict[str, Any]:
    """Everything the pipeline wrote, without ids and keys that depend on order."""
    with db.unit(readonly=True) as s:
        tickets = s.scalars(select(Ticket).order_by(Ticket.id)).all()
        return {
            # Within one batch, slow-path items get their keys before bulk ones: compare sets.
            "tickets": sorted(
                (t.subject, t.type, t.priority, t.status, t.group, t.requester, t.tags)
                for t in tickets
            ),
            "events": sorted(
                (e.ticket.subject, e.kind, e.actor, e.channel, e.public, e.note, e.raw_id is None)
                for e in s.scalars(select(TicketEvent))
            ),
            "raw": sorted(
                (r.message_id or "", r.status, r.ticket_id is None, r.size)
                for r in s.scalars(select(RawMessage))
            ),
            "ledger": sorted(
                (k.key.removeprefix("msgid:"), k.deliveries) for k in s.scalars(select(IntakeKey))
            ),
        }


def test_batch_stores_what_one_by_one_stores(db: Database, settings: Settings, clock) -> None:
    # One database, two halves of the alphabet: the same intakes one by one, then as a batch,
    # under different Message-IDs; the rows must match field for field.
    classify = RulesHolder(RULES).classify

    def intakes(tag: str) -> list[tuple[Intake, RawInput]]:
        return [
            item(f"{tag} 服务器宕机 db-bj-03", f"{tag}1@x"),
            item(f"{tag} VPN 连不上", f"{tag}2@x", cc=("bob@example.com",)),
            item(f"{tag} printer jam", None),
            item(
                f"{tag} with a file", f"{tag}3@x", files=(IntakeFile("a.txt", "text/plain", b"x"),)
            ),
            item(f"{tag} out of office", f"{tag}4@x", auto="autoreply"),
        ]

    one = Pipeline(db, settings, classify, clock)
    singles = [one.process(i, r) for i, r in intakes("A")]
    before = stored(db)
    batch = one.process_batch(intakes("B"))
    after = stored(db)
    assert [type(o) for o in batch] == [type(o) for o in singles]

    def half(rows: dict[str, Any], tag: str) -> dict[str, Any]:
        def mine(row: tuple) -> bool:
            return any(isinstance(v, str) and v.startswith(tag) for v in row)

        return {k: [tuple(_untag(v) for v in r) for r in rows[k] if mine(r)] for k in rows}

    assert half(after, "B") == half(before, "A")
    assert half(after, "B")["tickets"], "the batch made no tickets"


def _untag(value: Any) -> Any:
    return value[1:] if isinstance(value, str) and value[:1] in "AB" else value


def test_batch_outcomes_in_order(pipeline: Pipeline, db: Database) -> None:
    first = pipeline.process(*item("磁盘满了", "old@x"))
    assert isinstance(first, Created)
    results = pipeline.process_batch(
        [
            item("new one", "n1@x"),
            item("磁盘满了", "old@x"),  # redelivery of an earlier message
            item("new two", "n2@x"),
            item("new two", "n2@x"),  # the same message twice in one batch
            item(f"Re: [{first.key}] 还是满", "r1@x"),  # a reply from the requester
            (
                Intake(source=Source.SMTP, sender="x@y", subject=""),
                RawInput(b"\xff", quarantine_reason="unparseable"),
            ),
        ]
    )
    kinds = [type(r) for r in results]
    assert kinds == [Created, Duplicate, Created, Duplicate, Updated, Quarantined]
    assert results[1] == Duplicate(first.key)
    assert results[3] == Duplicate(results[2].key)
    assert results[4] == Updated(first.key)
    with db.unit(readonly=True) as s:
        ledger = {k.key: k.deliveries for k in s.scalars(select(IntakeKey))}
        assert ledger["msgid:old@x"] == 2 and ledger["msgid:n2@x"] == 2
        keys = s.scalars(select(Ticket.key).order_by(Ticket.id)).all()
    assert len(keys) == len(set(keys)) == 3


def test_batch_on_a_dead_store_answers_every_item_retry_later(settings: Settings, clock) -> None:
    settings.database.url = "sqlite:////nonexistent/dir/gateway.db"
    pipeline = Pipeline(Database(settings.database), settings, RulesHolder(RULES).classify, clock)
    results = pipeline.process_batch([item("a", "a@x"), item("b", "b@x")])
    assert all(isinstance(r, StoreUnavailable) for r in results) and len(results) == 2


def test_committer_answers_each_waiter(pipeline: Pipeline, db: Database) -> None:
    committer = GroupCommitter(pipeline, max_batch=4)
    futures = [committer.submit_intake(*item(f"request {n}", f"m{n}@x")) for n in range(10)]

    def broken() -> tuple[Intake, RawInput]:
        raise ValueError("cannot parse")

    bad = committer.submit(broken)
    futures.append(committer.submit_intake(*item("request 0", "m0@x")))
    committer.start()
    committer.stop(timeout=30)
    outcomes = [f.result(timeout=0) for f in futures]
    assert [type(o) for o in outcomes] == [Created] * 10 + [Duplicate]
    assert outcomes[-1] == Duplicate(outcomes[0].key)
    with pytest.raises(ValueError, match="cannot parse"):
        bad.result(timeout=0)
    with db.unit(readonly=True) as s:
        assert len(s.scalars(select(Ticket)).all()) == 10


def test_a_waiter_that_hung_up_is_skipped_and_the_writer_goes_on(
    pipeline: Pipeline, db: Database
) -> None:
    """aiosmtpd cancels the DATA handler when the client drops the connection, which cancels
    the waiter's future. The writer once died on setting its result, and every later mail
    then waited for ever."""
    committer = GroupCommitter(pipeline, max_batch=4)
    gone = committer.submit_intake(*item("hung up", "gone@x"))
    assert gone.cancel()
    later = [committer.submit_intake(*item(f"after {n}", f"after{n}@x")) for n in range(6)]
    committer.start()
    committer.stop(timeout=30)
    assert all(isinstance(f.result(timeout=0), Created) for f in later)
    with db.unit(readonly=True) as s:
        subjects = {t.subject for t in s.scalars(select(Ticket))}
    assert subjects == {f"after {n}" for n in range(6)}  # the sender of "hung up" retries


def test_bulk_tickets_are_acknowledged_like_single_ones(
    db: Database, settings: Settings, clock
) -> None:
    settings.outbound.enabled = True
    settings.replies.secret = "s" * 32
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify, clock)
    single = pipeline.process(*item("VPN 连不上", "s1@x", sender="carol@example.com"))
    batch = pipeline.process_batch(
        [item(f"打印机 {n}", f"b{n}@x", sender=f"u{n}@example.com") for n in range(3)]
    )
    assert isinstance(single, Created) and all(isinstance(b, Created) for b in batch)
    with db.unit(readonly=True) as s:
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        acks = {(r.payload["key"], r.recipient) for r in rows if r.event == "received"}
    expected = {(single.key, "carol@example.com")} | {
        (b.key, f"u{n}@example.com") for n, b in enumerate(batch)
    }
    assert acks == expected
