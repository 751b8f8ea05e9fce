"""The SLA scanner: a worker job that fires escalation levels, each once per ticket.

Each pass claims a bounded batch of tickets whose `next_escalation_at` has come (an indexed
range read: cost grows with the tickets that are due, not with all open tickets), evaluates
their clocks from the journal (gateway/sla/clock.py, pure), and in one transaction per batch
writes the due times, the fired levels, their journal events and the outbox rows those events
plan. Once-only firing has two guards: on PostgreSQL the batch is claimed with FOR UPDATE
SKIP LOCKED, so two daemons never evaluate the same ticket at once; and every fired level is a
row under UNIQUE (ticket_id, level), inserted with ON CONFLICT DO NOTHING in the same
transaction as its journal event, so a level that is already recorded (a restart, a race on
SQLite) never journals, mails or chats again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.clock import Clock
from gateway.config import Settings
from gateway.outbound.notify import queue_notifications
from gateway.sla import metrics
from gateway.sla.clock import Evaluation, evaluate, status_history
from gateway.sla.policy import Book, Level, Policy
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import SlaEscalation, Ticket
from gateway.tickets import service
from gateway.tickets.states import DONE_STATUSES

log = logging.getLogger(__name__)
ACTOR = service.system_actor("sla")


@dataclass(frozen=True)
class Fired:
    key: str
    level: str  # "<policy>/<level>"
    event: str


def fired_levels(session: Session, ticket_ids: Sequence[int]) -> dict[int, set[str]]:
    """The levels already fired, per ticket, in one query."""
    found: dict[int, set[str]] = {i: set() for i in ticket_ids}
    rows = session.execute(
        select(SlaEscalation.ticket_id, SlaEscalation.level).where(
            SlaEscalation.ticket_id.in_(ticket_ids)
        )
    )
    for ticket_id, level in rows:
        found[ticket_id].add(level)
    return found


def scan(db: Database, settings: Settings, now: datetime) -> list[Fired]:
    """One pass: claim due tickets, fire their levels, reschedule them. Returns what fired."""
    book = settings.sla_book()
    with db.unit() as session, session.no_autoflush:
        query = (
            select(Ticket)
            .where(Ticket.next_escalation_at <= now)
            .order_by(Ticket.next_escalation_at)
            .limit(settings.sla.batch)
        )
        if db.dialect == "postgresql":
            # Another daemon's claimed rows are skipped, not waited for: it fires them.
            query = query.with_for_update(skip_locked=True, of=Ticket)
        tickets = session.scalars(query).all()
        if not tickets:
            return []
        # Evaluate everything first, then one INSERT for the whole batch's levels: a
        # statement per level (and the autoflush before each) cost more than the clocks.
        done = fired_levels(session, [t.id for t in tickets])
        due: list[tuple[Ticket, Policy, Level, Evaluation]] = []
        for ticket in tickets:
            policy = book.current(
                ticket.type, ticket.priority, ticket.sla_policy, ticket.sla_pinned
            )
            if policy is None:
                ticket.next_escalation_at = None
                continue
            history = status_history(ticket.events)
            ev = evaluate(
                policy, history, ticket.responded_at, _names(done[ticket.id], policy), now,
                book.pause_statuses,
            )  # fmt: skip
            apply_evaluation(ticket, policy, ev)
            due += [(ticket, policy, level, ev) for level in ev.fire]
        claimed = _claim(session, due, now)
        fired: list[Fired] = []
        for ticket, policy, level, ev in due:
            if (ticket.id, f"{policy.name}/{level.name}") not in claimed:
                continue  # fired already: another scanner or an earlier pass
            _escalate(session, ticket, policy, level, ev, now)
            fired.append(Fired(ticket.key, f"{policy.name}/{level.name}", level.event))
            if level.raise_priority:
                # A raised priority may map to another policy: evaluate again next pass.
                ticket.next_escalation_at = now
        queue_notifications(session, settings, service.journalled(session), now=now)
    if fired:
        log.info("sla: fired %s", ", ".join(f"{f.key} {f.level}" for f in fired))
    return fired


def _names(levels: set[str], policy: Policy) -> set[str]:
    """The level names of `policy` among the fired "<policy>/<level>" keys."""
    prefix = f"{policy.name}/"
    return {key.removeprefix(prefix) for key in levels if key.startswith(prefix)}


def apply_evaluation(ticket: Ticket, policy: Policy, ev: Evaluation) -> None:
    """Write what the clocks say onto the ticket's columns (due times, breach, next look)."""
    if ticket.sla_policy != policy.name:
        ticket.sla_policy = policy.name
    ticket.response_due = ev.response.due
    ticket.resolution_due = ev.resolution.due
    if ev.breached and not ticket.breached:
        ticket.breached = True
        target = "response" if ev.response.breached else "resolution"
        metrics.BREACHES.labels(policy.name, target).inc()
    ticket.next_escalation_at = ev.next_at


def _claim(
    session: Session, due: Sequence[tuple[Ticket, Policy, Level, Evaluation]], now: datetime
) -> set[tuple[int, str]]:
    """Record the levels as fired; returns those this pass recorded (not already there)."""
    if not due:
        return set()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = []
    for ticket, policy, level, ev in due:
        clock = ev.response if level.target == "response" else ev.resolution
        rows.append(
            {
                "ticket_id": ticket.id,
                "level": f"{policy.name}/{level.name}",
                "event": level.event,
                "due_at": clock.due or now,
                "fired_at": now,
            }
        )
    table = SlaEscalation.__table__
    # ON CONFLICT DO NOTHING ... RETURNING yields only the rows inserted here: a level another
    # transaction recorded first is simply not ours to fire.
    result = session.connection().execute(
        insert(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["ticket_id", "level"])
        .returning(table.c.ticket_id, table.c.level)
    )
    return {(ticket_id, level) for ticket_id, level in result}


def _escalate(
    session: Session, ticket: Ticket, policy: Policy, level: Level, ev: Evaluation, now: datetime
) -> None:
    """Journal the level (the outbox plans its mail and chat from it), then its actions."""
    clock = ev.response if level.target == "response" else ev.resolution
    due = clock.due.isoformat() if clock.due else None
    after: dict[str, Any] = {
        "policy": policy.name,
        "level": level.name,
        "target": level.target,
        "due": due,
        "notify": list(level.notify),
    }
    when = f"{level.percent:g}% of the {level.target} target"
    if level.after:
        when += f" + {level.after.total_seconds() / 60:g} business minutes"
    note = f"SLA {policy.name}: {level.name} ({when}; {level.target} due {due})"
    # Internal: staff are escalated to; the requester is not mailed about it.
    service.journal(session, ticket, ACTOR, level.event, now, after=after, note=note, public=False)
    metrics.ESCALATIONS.labels(policy.name, level.name, level.event).inc()
    if level.raise_priority and _more_urgent(level.raise_priority, ticket.priority):
        service.update_fields(
            session, ticket, {"priority": level.raise_priority}, ACTOR, now, reason=note
        )
    if level.reassign_group or level.reassign_to:
        changes = {"group": level.reassign_group, "assignee": level.reassign_to}
        changes = {k: v for k, v in changes.items() if v and v != getattr(ticket, k)}
        if changes:
            refused = service.update_fields(session, ticket, changes, ACTOR, now, reason=note)
            if refused is not None:
                log.warning("sla: cannot reassign %s: %s", ticket.key, refused.reason)


def _more_urgent(new: str, old: str) -> bool:
    return new < old  # "P0" < "P1": a lower number is more urgent


def refresh_gauges(db: Database, settings: Settings, now: datetime) -> int:
    """Set the at-risk gauge; separate from `scan` so its count never delays escalations."""
    with db.unit(readonly=True) as session:
        count = at_risk(session, settings.sla_book(), now)
    metrics.AT_RISK.set(count)
    return count


def at_risk(session: Session, book: Book, now: datetime) -> int:
    """Open, unbreached tickets with an unmet due time within `at_risk` (two index ranges)."""
    soon = now + book.at_risk
    open_ = (Ticket.breached.is_(False), Ticket.status.not_in(DONE_STATUSES))
    return (
        session.scalar(
            select(func.count(Ticket.id)).where(
                *open_,
                or_(
                    (Ticket.response_due <= soon) & Ticket.responded_at.is_(None),
                    Ticket.resolution_due <= soon,
                ),
            )
        )
        or 0
    )


class SlaJob:
    """The apscheduler job: one pass per interval, the blocking work off the event loop."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db, self.settings, self.clock = db, settings, clock

    def run_once(self) -> list[Fired]:
        started = time.perf_counter()
        now = self.clock()
        try:
            fired = scan(self.db, self.settings, now)
            refresh_gauges(self.db, self.settings, now)
        except StoreUnavailable as exc:
            # The next interval retries; tickets stay due, so nothing is lost by waiting.
            log.warning("sla scan skipped: store unavailable: %s", exc)
            return []
        metrics.SCAN_SECONDS.set(time.perf_counter() - started)
        return fired

    async def run(self) -> None:
        await asyncio.to_thread(self.run_once)
