"""Leases: singleton work (one IMAP mailbox) done by one process at a time, taken over
within seconds when that process dies.

A lease is a row `leases(name, holder, expires_at, renewed_at)`. Taking or renewing it is one
conditional UPDATE (`WHERE holder = me OR expires_at <= now`), or an INSERT ... ON CONFLICT DO
NOTHING for a name never used before: atomic on SQLite (BEGIN IMMEDIATE, one writer) and on
PostgreSQL (a concurrent UPDATE re-checks its WHERE on the row the winner committed), so no
advisory locks or session state are needed, and a killed holder leaves nothing behind but a
row that expires.

Expiry is compared with the clocks of the processes (as the outbox lease is): hosts sharing
one database need synchronised clocks (NTP), with a skew well under the lease time.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta

from prometheus_client import Gauge
from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.clock import Clock, utc_now
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import Lease

log = logging.getLogger(__name__)

HELD = Gauge("gateway_lease_held", "1 while this process holds the lease, else 0.", ["name"])


def default_holder() -> str:
    """This process, as other processes see it in the `leases` table (host:pid:random)."""
    # The random part tells a restarted process from its predecessor that had the same pid.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# --- pure rules ------------------------------------------------------------------------------


def can_take(current: str | None, expires_at: datetime | None, me: str, now: datetime) -> bool:
    """May `me` take a lease whose row names `current` until `expires_at` (None: no row)?"""
    if current is None or expires_at is None:
        return True
    return current == me or expires_at <= now


def renewal_due(renewed_at: datetime | None, now: datetime, ttl: timedelta) -> bool:
    """A held lease is renewed every third of its time: two renewals may fail before it ends."""
    return renewed_at is None or now - renewed_at >= ttl / 3


# --- statements --------------------------------------------------------------------------------


def try_acquire(db: Database, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Take (or renew) the lease `name` for `holder` until now + ttl; True if it is ours."""
    expires = now + ttl
    with db.unit() as session:
        # Core statements on the connection, not the ORM's bulk paths.
        conn = session.connection()
        # The WHERE is can_take() in SQL; the row lock makes check and write one step.
        taken = conn.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
            .values(holder=holder, expires_at=expires, renewed_at=now)
        )
        if taken.rowcount == 1:
            return True
        insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
        # RETURNING, not rowcount: drivers report -1 for an INSERT's rowcount.
        created = conn.execute(
            insert(Lease)
            .values(name=name, holder=holder, expires_at=expires, renewed_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(Lease.name)
        )
        return created.first() is not None


def renew(db: Database, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Extend a lease `holder` still has; False once another process has taken it."""
    with db.unit() as session:
        done = session.connection().execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=now + ttl, renewed_at=now)
        )
        return done.rowcount == 1


def release(db: Database, name: str, holder: str, now: datetime) -> bool:
    """End our lease now, so another process takes the work at once (a clean shutdown)."""
    with db.unit() as session:
        done = session.connection().execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder, Lease.expires_at > now)
            .values(expires_at=now)
        )
        return done.rowcount == 1


# --- one worker's view ---------------------------------------------------------------------------


class LeaseKeeper:
    """One worker's lease: `keep()` before each unit of work takes or renews it when due.

    Between renewals `keep()` costs no database round trip. When the store cannot be reached
    the lease counts as held until the expiry last written, never longer: by then another
    process may take it.
    """

    def __init__(
        self, db: Database, name: str, holder: str, ttl_seconds: float, clock: Clock = utc_now
    ) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock
        self._renewed_at: datetime | None = None
        self._expires_at: datetime | None = None
        HELD.labels(name).set(0)

    @property
    def retry_seconds(self) -> float:
        """How often a worker without the lease asks again (and a holder renews)."""
        return self.ttl.total_seconds() / 3

    def held(self) -> bool:
        """True while the lease we last took has not run out (no database call)."""
        return self._expires_at is not None and self.clock() < self._expires_at

    def keep(self) -> bool:
        """Take or renew the lease if due; True while it is ours."""
        now = self.clock()
        if self.held() and not renewal_due(self._renewed_at, now, self.ttl):
            return True
        try:
            ours = try_acquire(self.db, self.name, self.holder, self.ttl, now)
        except StoreUnavailable as exc:
            log.warning("lease %s: store unavailable (%s)", self.name, exc)
            ours = self.held()
        else:
            if ours:
                if self._expires_at is None:
                    log.info("lease %s: taken by %s", self.name, self.holder)
                self._renewed_at, self._expires_at = now, now + self.ttl
        if not ours:
            if self._expires_at is not None:
                log.warning("lease %s: lost; another process holds it", self.name)
            self._renewed_at = self._expires_at = None
        HELD.labels(self.name).set(1 if ours else 0)
        return ours

    def release(self) -> None:
        """Give the lease up (shutdown); a failure only means it expires instead."""
        if self._expires_at is None:
            return
        try:
            release(self.db, self.name, self.holder, self.clock())
        except StoreUnavailable as exc:
            log.warning("lease %s: not released (%s); it expires on its own", self.name, exc)
        self._renewed_at = self._expires_at = None
        HELD.labels(self.name).set(0)
