"""The delivery worker: claim a bounded batch under a lease, send, record; loop until stopped.

Guarantees (README "Delivery guarantees"):
- a row is claimed by one worker at a time: PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite's
  single writer; the claim is committed before anything is sent;
- a row is marked sent in its own transaction right after the relay accepted it. A crash in
  between leaves the row claimed; once its lease expires another worker sends it again: at
  most one duplicate, only in that window;
- the lease is short (`lease_seconds`, 30) and renewed every third of it by a heartbeat while
  the worker lives: a dead process's rows are taken over within seconds, a slow relay never
  lets a live worker's rows go;
- a failure is retried with backoff or dead-lettered by `policy.after_failure`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, or_, select, update

from gateway.approvals import OUTBOX_CHANNEL
from gateway.approvals.calls import ConnectorCalls, record_sent
from gateway.clock import Clock, utc_now
from gateway.config import Settings
from gateway.outbound import metrics
from gateway.outbound.chat import post_chat
from gateway.outbound.digest import write_digests
from gateway.outbound.message import HeaderInjection, build_message
from gateway.outbound.policy import Dead, Failed, Outcome, RetryAt, Sent, after_failure
from gateway.outbound.relay import Relay
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import OutboxMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A row this worker holds the lease on, detached from its session."""

    id: int
    channel: str
    event: str
    recipient: str
    message_id: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        name: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.cfg = settings.outbound
        self.clock = clock
        self.name = name or worker_name()
        self.http = http or httpx.Client()
        self.connectors = ConnectorCalls(settings)

    # -- one unit of work each ---------------------------------------------------------------

    def claim_batch(self) -> list[Claimed]:
        """Up to `batch` due rows, leased to this worker; committed before any is sent."""
        now = self.clock()
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.state == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(self.cfg.batch)
        )
        if self.db.dialect == "postgresql":
            # Rows another worker is claiming right now are skipped, not waited for; once it
            # commits, their lease keeps them out of this query.
            stmt = stmt.with_for_update(skip_locked=True)
        lease = now + timedelta(seconds=self.cfg.lease_seconds)
        with self.db.unit() as session:  # SQLite: under the single writer lock
            rows = session.scalars(stmt).all()
            for row in rows:
                row.claimed_by, row.lease_until = self.name, lease
            return [_detach(r) for r in rows]

    def record(self, item: Claimed, outcome: Outcome) -> None:
        """Mark the row sent, or schedule its retry, or dead-letter it; releases the lease."""
        now = self.clock()
        with self.db.unit() as session:
            row = session.get(OutboxMessage, item.id, with_for_update=self._lock())
            if row is None or row.claimed_by != self.name or row.state != "pending":
                # The lease ran out and another worker took the row: it owns the outcome now.
                log.warning("outbox %s: lease lost before recording %s", item.id, outcome)
                return
            row.attempts += 1
            row.claimed_by, row.lease_until = None, None
            if isinstance(outcome, Sent):
                row.state, row.sent_at, row.last_error = "sent", now, ""
                if item.channel == OUTBOX_CHANNEL:
                    record_sent(session, item.event, item.payload, outcome, now)
                metrics.SENT.labels(item.channel).inc()
                return
            row.last_error = outcome.error[:2000]
            step = after_failure(outcome, row.attempts, row.created_at, now, self.cfg)
            if isinstance(step, RetryAt):
                row.next_attempt_at = step.at
                metrics.FAILED.labels(item.channel, "retry").inc()
                log.info("outbox %s: %s; retry at %s", item.id, outcome.error, step.at)
            else:
                assert isinstance(step, Dead)
                row.state, row.last_error = "dead", step.reason[:2000]
                metrics.FAILED.labels(item.channel, "dead").inc()
                metrics.DEAD.labels(item.channel).inc()
                log.error("outbox %s dead: %s", item.id, step.reason)

    def renew(self) -> int:
        """Extend the lease of every row this worker holds; how many it holds."""
        lease = self.clock() + timedelta(seconds=self.cfg.lease_seconds)
        with self.db.unit() as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.claimed_by == self.name,
                    OutboxMessage.state == "pending",
                    OutboxMessage.lease_until.is_not(None),
                )
                .values(lease_until=lease)
            )
        return int(result.rowcount or 0)

    def keep_leases(self, stop: threading.Event) -> None:
        """Renew this worker's leases every third of `lease_seconds` until `stop`.

        The lease is short so that rows a dead process claimed go to another worker within
        seconds; a live worker held up by a slow relay keeps its rows through this heartbeat,
        so they are never sent twice.
        """
        while not stop.wait(self.cfg.lease_seconds / 3):
            try:
                self.renew()
            except Exception as exc:  # a store outage: the claims lapse, nothing else breaks
                log.warning("outbox worker %s: leases not renewed: %s", self.name, exc)

    def release(self, items: list[Claimed]) -> None:
        """Give back rows claimed but not tried (shutdown), so another worker takes them now."""
        if not items:
            return
        with self.db.unit() as session:
            session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_([i.id for i in items]),
                    OutboxMessage.claimed_by == self.name,
                )
                .values(claimed_by=None, lease_until=None)
            )

    def digest(self) -> int:
        with self.db.unit() as session:
            return len(write_digests(session, self.settings, self.clock()))

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, item: Claimed, relay: Relay) -> Outcome:
        if item.channel == OUTBOX_CHANNEL:
            key = item.message_id or f"outbox:{item.id}"
            return self.connectors.call(item.event, item.recipient, key, item.payload)
        if item.channel == "chat":
            robot = self.cfg.chat.get(item.recipient)
            if robot is None:
                return Failed(f"no chat robot {item.recipient!r} in [outbound.chat]", True)
            title, text = item.payload["title"], item.payload["text"]
            return post_chat(self.http, robot, title, text, self.clock())
        try:
            msg = build_message(
                message_id=item.message_id or "",
                recipient=item.recipient,
                payload=item.payload,
                cfg=self.cfg,
                now=self.clock(),
            )
        except (HeaderInjection, KeyError) as exc:
            return Failed(f"cannot build the message: {exc}", permanent=True)
        return relay.send(msg, self.cfg.from_address, item.recipient)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """One pass: digests due, then one batch. Returns how many rows were tried."""
        self.digest()
        batch = self.claim_batch()
        tried = 0
        with Relay(self.cfg.smtp, self.settings.smtp.hostname) as relay:
            for index, item in enumerate(batch):
                if stop is not None and stop.is_set():
                    self.release(batch[index:])
                    break
                self.record(item, self.deliver(item, relay))
                tried += 1
        self.update_gauge()
        return tried

    def update_gauge(self) -> None:
        with self.db.unit(readonly=True) as session:
            counts = dict(
                session.execute(
                    select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
                ).all()
            )
        for state in ("pending", "held", "dead"):
            metrics.QUEUE.labels(state).set(counts.get(state, 0))

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; the item in hand is finished, the rest released."""
        log.info("outbox worker %s started", self.name)
        heartbeat = threading.Thread(
            target=self.keep_leases, args=(stop,), name="outbox-leases", daemon=True
        )
        heartbeat.start()
        while not stop.is_set():
            try:
                tried = self.run_once(stop)
            except StoreUnavailable as exc:
                log.warning("outbox worker: store unavailable (%s); retrying", exc)
                tried = 0
            except Exception:  # a bug must not kill delivery for good: log, wait, go on
                log.exception("outbox worker pass failed")
                tried = 0
            if tried < self.cfg.batch:
                stop.wait(self.cfg.poll_seconds)
        heartbeat.join()
        self.http.close()
        self.connectors.close()
        log.info("outbox worker %s stopped", self.name)

    def _lock(self) -> bool:
        return self.db.dialect == "postgresql"


def _detach(row: OutboxMessage) -> Claimed:
    return Claimed(
        id=row.id,
        channel=row.channel,
        event=row.event,
        recipient=row.recipient or "",
        message_id=row.message_id,
        payload=dict(row.payload),
        attempts=row.attempts,
        created_at=row.created_at,
    )
