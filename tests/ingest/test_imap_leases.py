"""Two pollers of one mailbox in one database: only the lease holder connects and fetches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from gateway.clock import utc_now
from gateway.config import ImapMailbox, Settings
from gateway.ingest.imap import ImapPoller
from gateway.leases import LeaseKeeper
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Lease
from tests.ingest.dovecot import Dovecot, running_dovecot
from tests.ingest.test_imap import RULES, append, count, mail, tickets, wait_for

TTL = 3.0  # seconds; short so a takeover happens within the test's patience


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


@pytest.fixture
def pollers(dovecot: Dovecot, db: Database, settings: Settings) -> Iterator[list[ImapPoller]]:
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    box = ImapMailbox(
        name="shared",
        host=dovecot.host,
        port=dovecot.port,
        ssl=False,
        username=dovecot.user,
        password=dovecot.password,
        poll_seconds=600.0,  # anything picked up came through IDLE or a (re)connect sweep
    )
    made = [
        ImapPoller(box, pipeline, settings, LeaseKeeper(db, "imap:shared", holder, TTL))
        for holder in ("process-a", "process-b")
    ]
    made[0].start()
    wait_for(made[0].connected.is_set, "the first poller connected")
    made[1].start()
    yield made
    for poller in made:
        assert poller.stop(timeout=15)


def test_only_the_lease_holder_polls(
    pollers: list[ImapPoller], dovecot: Dovecot, db: Database
) -> None:
    a, b = pollers
    for n in range(5):
        append(dovecot, mail(f"shared mailbox {n}"))
    wait_for(lambda: count(dovecot, "Processed") == 5, "five messages filed")
    assert a.connected.is_set() and not b.connected.is_set()
    assert a.lease is not None and a.lease.held()
    assert b.lease is not None and not b.lease.held()
    assert sorted(t.subject for t in tickets(db)) == [f"shared mailbox {n}" for n in range(5)]


def test_a_stopped_holder_hands_the_mailbox_over(
    pollers: list[ImapPoller], dovecot: Dovecot, db: Database
) -> None:
    a, b = pollers
    assert a.stop(timeout=15)  # a clean stop releases the lease: no waiting for its expiry
    append(dovecot, mail("after the handover"))
    wait_for(lambda: count(dovecot, "Processed") == 1, "the message filed by the other")
    assert b.connected.is_set()
    assert [t.subject for t in tickets(db)] == ["after the handover"]


def test_a_holder_whose_lease_was_taken_stops_fetching(
    pollers: list[ImapPoller], dovecot: Dovecot, db: Database
) -> None:
    a, b = pollers
    # Another process took the lease (as after a pause longer than the lease, e.g. a stopped
    # VM): the holder notices at its next renewal, before its next message, and logs out.
    with db.unit() as session:
        session.execute(
            update(Lease)
            .where(Lease.name == "imap:shared")
            .values(holder="process-c", expires_at=utc_now() + timedelta(hours=1))
        )
    wait_for(lambda: not a.connected.is_set(), "the old holder logged out")
    assert not b.connected.is_set()
    append(dovecot, mail("nobody of ours holds the mailbox"))
    # Process c "dies" (its lease ends): one of ours takes the mailbox and fetches the mail.
    with db.unit() as session:
        session.execute(update(Lease).values(expires_at=utc_now()))
    wait_for(lambda: count(dovecot, "Processed") == 1, "the message filed after the takeover")
    assert len(tickets(db)) == 1
