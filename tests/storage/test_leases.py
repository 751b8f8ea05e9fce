"""Leases for singleton work: the expiry rule alone, then the statements on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select

from gateway.config import DatabaseSettings
from gateway.leases import LeaseKeeper, can_take, release, renew, renewal_due, try_acquire
from gateway.storage.db import Database
from gateway.storage.models import Lease
from tests.conftest import FrozenClock

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=15)
DOWN = "postgresql+psycopg://gateway@127.0.0.1:1/gateway"


# --- the pure rules ----------------------------------------------------------------------------


def test_a_lease_nobody_holds_can_be_taken() -> None:
    assert can_take(None, None, "a", T0)


def test_a_live_lease_belongs_to_its_holder_only() -> None:
    until = T0 + TTL
    assert can_take("a", until, "a", T0)
    assert not can_take("a", until, "b", T0)
    assert not can_take("a", until, "b", until - timedelta(microseconds=1))
    assert can_take("a", until, "b", until)  # it runs up to, not including, its expiry


def test_an_expired_lease_can_be_taken_by_anyone() -> None:
    assert can_take("a", T0, "b", T0 + timedelta(microseconds=1))


def test_renewal_is_due_every_third_of_the_lease() -> None:
    assert renewal_due(None, T0, TTL)
    assert not renewal_due(T0, T0 + timedelta(seconds=4.9), TTL)
    assert renewal_due(T0, T0 + timedelta(seconds=5), TTL)


# --- the statements ------------------------------------------------------------------------------


def holder_of(db: Database, name: str) -> tuple[str, datetime] | None:
    with db.unit(readonly=True) as s:
        row = s.scalars(select(Lease).where(Lease.name == name)).one_or_none()
        return (row.holder, row.expires_at) if row else None


def test_acquire_renew_expire_and_take_over(db: Database) -> None:
    assert try_acquire(db, "imap:support", "a", TTL, T0)
    assert holder_of(db, "imap:support") == ("a", T0 + TTL)
    # Another process is refused while the lease runs, and a renewal extends it.
    assert not try_acquire(db, "imap:support", "b", TTL, T0 + timedelta(seconds=5))
    assert renew(db, "imap:support", "a", TTL, T0 + timedelta(seconds=5))
    assert not try_acquire(db, "imap:support", "b", TTL, T0 + timedelta(seconds=16))
    # "a" died: once past its expiry, "b" takes the lease and "a" can no longer renew it.
    later = T0 + timedelta(seconds=21)
    assert try_acquire(db, "imap:support", "b", TTL, later)
    assert holder_of(db, "imap:support") == ("b", later + TTL)
    assert not renew(db, "imap:support", "a", TTL, later)
    # Names are independent.
    assert try_acquire(db, "imap:sales", "a", TTL, later)


def test_release_hands_the_lease_over_at_once(db: Database) -> None:
    assert try_acquire(db, "imap:support", "a", TTL, T0)
    assert not release(db, "imap:support", "b", T0)  # not b's to release
    assert release(db, "imap:support", "a", T0 + timedelta(seconds=1))
    assert try_acquire(db, "imap:support", "b", TTL, T0 + timedelta(seconds=2))


def test_concurrent_takers_get_one_winner(db: Database) -> None:
    """Many threads (own connections) race for a free lease, then for an expired one."""
    for now in (T0, T0 + timedelta(minutes=5)):
        winners: list[str] = []
        barrier = threading.Barrier(8)

        def take(
            me: str,
            now: datetime = now,
            barrier: threading.Barrier = barrier,
            winners: list[str] = winners,
        ) -> None:
            barrier.wait()
            if try_acquire(db, "imap:race", me, TTL, now):
                winners.append(me)

        threads = [threading.Thread(target=take, args=(f"p{n}-{now:%M}",)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1, winners
        assert holder_of(db, "imap:race")[0] == winners[0]


def held_metric(name: str) -> float | None:
    return REGISTRY.get_sample_value("gateway_lease_held", {"name": name})


def test_keeper_renews_only_when_due_and_reports_the_metric(
    db: Database, clock: FrozenClock
) -> None:
    start = clock.now
    a = LeaseKeeper(db, "imap:keeper", "a", 15, clock)
    b = LeaseKeeper(db, "imap:keeper", "b", 15, clock)
    assert a.keep() and held_metric("imap:keeper") == 1
    assert not b.keep()
    clock.now += timedelta(seconds=4)
    assert a.keep()  # not yet due: no renewal written
    assert holder_of(db, "imap:keeper")[1] == start + timedelta(seconds=15)
    clock.now += timedelta(seconds=2)
    assert a.keep()  # due: expiry moves to now + 15 s
    assert holder_of(db, "imap:keeper")[1] == clock.now + timedelta(seconds=15)
    # a stops renewing (its process died); b takes over once the lease has run out.
    clock.now += timedelta(seconds=15, microseconds=1)
    assert b.keep()
    assert not a.keep() and not a.held()
    b.release()
    assert a.keep()


def test_keeper_without_a_store_holds_only_until_its_last_expiry(
    db: Database, clock: FrozenClock
) -> None:
    keeper = LeaseKeeper(db, "imap:outage", "a", 15, clock)
    assert keeper.keep()
    down = Database(DatabaseSettings(url=DOWN))
    keeper.db = down  # the database goes away
    try:
        clock.now += timedelta(seconds=10)
        assert keeper.keep()  # renewal fails, but the lease written earlier still runs
        clock.now += timedelta(seconds=5, microseconds=1)
        assert not keeper.keep()  # past it: someone else may hold it now
    finally:
        down.dispose()
