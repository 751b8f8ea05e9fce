"""Apply an alert batch inside the caller's transaction, with batched SQL for the storm case.

Cost model: one SELECT finds every identity of the batch; repeats (the bulk of an alert
storm) become two executemany UPDATEs at the end, with no ORM objects and no journal rows.
Only new identities, recoveries, reopens and comments go through the ticket service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from gateway.alerts.lifecycle import Decision, Known, Policy, after, decide
from gateway.alerts.model import AlertBatch, AlertEvent, Kind, priority_for
from gateway.config import WebhookSource
from gateway.intake import Intake
from gateway.storage.models import Alert, Ticket
from gateway.tickets import service
from gateway.tickets.states import DONE_STATUSES, Command

# SQLite allows 32,766 bound parameters per statement; stay far below for any backend.
LOOKUP_CHUNK = 500

# Creates a ticket for an intake (the pipeline's classify + route + create), optionally
# linked to a parent ticket.
Create = Callable[[Session, Intake, Ticket | None], Ticket]


@dataclass(frozen=True)
class AlertOutcome:
    """What one alert of the batch did: the JSON the webhook answers with, per alert."""

    identity: str
    status: str
    outcome: str
    ticket: str | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = {
            "fingerprint": self.identity,
            "status": self.status,
            "outcome": self.outcome,
            "ticket": self.ticket,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


_TICKETS = Ticket.__table__
_ALERTS = Alert.__table__
# Built once: constructing a 100-value IN list per batch cost more than running it.
_LOOKUP = (
    select(
        _ALERTS.c.id,
        _ALERTS.c.fingerprint,
        _ALERTS.c.status,
        _ALERTS.c.ticket_id,
        _TICKETS.c.key,
        _TICKETS.c.status,
        _TICKETS.c.resolved_at,
    )
    .join(_TICKETS, _TICKETS.c.id == _ALERTS.c.ticket_id)
    .where(
        _ALERTS.c.source == bindparam("source"),
        _ALERTS.c.fingerprint.in_(bindparam("ids", expanding=True)),
    )
)
# One statement per distinct repeat count (usually one or two per batch) rather than an
# executemany with a row per ticket: SQLAlchemy's per-row parameter processing cost more
# than SQLite's work.
_BUMP = (
    update(_TICKETS)
    .where(_TICKETS.c.id.in_(bindparam("ids", expanding=True)))
    .values(occurrences=_TICKETS.c.occurrences + bindparam("n"), last_seen=bindparam("seen"))
)
_LEDGER = (
    update(_ALERTS)
    .where(_ALERTS.c.source == bindparam("src"), _ALERTS.c.fingerprint == bindparam("fp"))
    .values(status=bindparam("state"), last_seen=bindparam("seen"), resolved_at=bindparam("ended"))
)


def lookup(session: Session, source: str, identities: Iterable[str]) -> dict[str, Known]:
    """What the ledger knows about each identity: one query per chunk of the batch."""
    wanted = list(dict.fromkeys(identities))
    found: dict[str, Known] = {}
    conn = session.connection()
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = conn.execute(
            _LOOKUP, {"source": source, "ids": wanted[start : start + LOOKUP_CHUNK]}
        )
        for alert_id, identity, alert_status, ticket_id, key, status, resolved_at in rows:
            found[identity] = Known(
                alert_id=alert_id,
                ticket_id=ticket_id,
                ticket_key=key,
                open=status not in DONE_STATUSES,
                resolved_at=resolved_at,
                firing=alert_status == "firing",
            )
    return found


def to_intake(event: AlertEvent, batch: AlertBatch, settings: WebhookSource) -> Intake:
    """The intake that opens a ticket for a new alert identity."""
    return Intake(
        source=batch.source,
        sender="",
        subject=event.subject,
        body=event.details(),
        labels=dict(event.labels),
        annotations=dict(event.annotations),
        fingerprint=event.identity,
        received_at=event.starts_at,
        base_type="incident",
        base_priority=priority_for(event.severity, settings),
    )


class _Batch:
    """Mutable bookkeeping of one batch: state per identity and the pending bulk updates."""

    def __init__(self, session: Session, batch: AlertBatch, settings: WebhookSource) -> None:
        self.session = session
        self.batch = batch
        self.settings = settings
        self.source = str(batch.source)
        self.actor = service.system_actor(self.source)
        self.known: dict[str, Known | None] = dict(
            lookup(session, self.source, (e.identity for e in batch.events))
        )
        self.ticket_bumps: Counter[int] = Counter()
        # identity -> firing? for ledger rows whose state changed (repeats leave them alone:
        # the ticket carries occurrences and last_seen, one UPDATE instead of two)
        self.ledger: dict[str, bool] = {}
        self.retarget: dict[str, int] = {}  # identity -> new ticket id (reopen window passed)

    def ticket(self, known: Known) -> Ticket:
        ticket = self.session.get(Ticket, known.ticket_id)
        assert ticket is not None  # the ledger's foreign key guarantees it
        return ticket

    def count(self, identity: str, known: Known) -> None:
        self.ticket_bumps[known.ticket_id] += 1
        if not known.firing:
            self.ledger[identity] = True

    def mark(self, identity: str, firing: bool) -> None:
        self.ledger[identity] = firing


def apply_batch(
    session: Session,
    batch: AlertBatch,
    settings: WebhookSource,
    now: datetime,
    create: Create,
) -> list[AlertOutcome]:
    """Apply every event of `batch` in order; the caller commits."""
    policy = Policy(settings.resolve_action, settings.reopen_window)
    work = _Batch(session, batch, settings)
    outcomes = []
    for event in batch.events:
        known = work.known.get(event.identity)
        decision = decide(known, event.kind, now, policy)
        key = _apply(work, event, known, decision, now, create)
        outcomes.append(
            AlertOutcome(event.identity, str(event.kind), decision.step, key, decision.reason)
        )
    _flush(work, now)
    return outcomes


def _apply(
    work: _Batch,
    event: AlertEvent,
    known: Known | None,
    decision: Decision,
    now: datetime,
    create: Create,
) -> str | None:
    step = decision.step
    if step == "created":
        parent = work.session.get(Ticket, decision.parent_ticket_id) if known else None
        ticket = create(work.session, to_intake(event, work.batch, work.settings), parent)
        ticket.last_seen = now
        if known is None:
            work.session.add(
                Alert(
                    source=work.source,
                    fingerprint=event.identity,
                    status="firing",
                    ticket_id=ticket.id,
                    occurrences=1,
                    labels=dict(event.labels),
                    annotations=dict(event.annotations),
                    first_seen=now,
                    last_seen=now,
                )
            )
        else:
            work.retarget[event.identity] = ticket.id
            work.mark(event.identity, True)
            service.journal(
                work.session,
                parent,  # type: ignore[arg-type]
                work.actor,
                "linked",
                now,
                after={"ticket": ticket.key},
                note=f"fired again after the reopen window: {ticket.key}",
                public=False,
            )
        work.known[event.identity] = Known(None, ticket.id, ticket.key, open=True)
        return ticket.key
    if known is None:
        return None
    if step == "occurrence":
        work.count(event.identity, known)
    elif step == "reopened":
        ticket = work.ticket(known)
        service.apply_command(
            work.session,
            ticket,
            Command("reopen", service.SYSTEM, "system", reason="alert firing again"),
            work.source,
            now,
        )
        work.count(event.identity, known)
    elif step == "resolved":
        _resolve(work, event, known, now)
    elif step == "commented":
        _comment(work, event, known, now)
    work.known[event.identity] = after(known, decision, event.kind, now)
    return known.ticket_key


def _resolve(work: _Batch, event: AlertEvent, known: Known, now: datetime) -> None:
    ticket = work.ticket(known)
    recovered = event.ends_at or now
    result = service.apply_command(
        work.session,
        ticket,
        Command(
            "resolve",
            service.SYSTEM,
            "system",
            reason=f"alert recovered at {recovered:%Y-%m-%d %H:%M:%S %Z}",
        ),
        work.source,
        now,
    )
    if isinstance(result, service.Refused):  # pragma: no cover - the machine allows it
        raise RuntimeError(result.reason)
    # The recovery time is when the problem ended, not when the webhook arrived.
    ticket.resolved_at = recovered
    work.mark(event.identity, False)


def _comment(work: _Batch, event: AlertEvent, known: Known, now: datetime) -> None:
    ticket = work.ticket(known)
    if event.kind == Kind.RESOLVED:
        recovered = event.ends_at or now
        text = f"alert recovered at {recovered:%Y-%m-%d %H:%M:%S %Z} (resolve_action = comment)"
        work.mark(event.identity, False)
    else:
        text = event.message or event.subject
    service.add_comment(work.session, ticket, work.actor, text, now, public=False)


def _flush(work: _Batch, now: datetime) -> None:
    session = work.session
    session.flush()  # ORM changes (new tickets, ledger rows) first, then the bulk statements
    # Core on the session's connection: the ORM layer adds nothing to these statements.
    conn = session.connection()
    by_count: dict[int, list[int]] = {}
    for ticket_id, n in work.ticket_bumps.items():
        by_count.setdefault(n, []).append(ticket_id)
    for n, ids in sorted(by_count.items()):
        for start in range(0, len(ids), LOOKUP_CHUNK):
            conn.execute(_BUMP, {"ids": ids[start : start + LOOKUP_CHUNK], "n": n, "seen": now})
    if work.ledger:
        conn.execute(
            _LEDGER,
            [
                {
                    "src": work.source,
                    "fp": fp,
                    "state": "firing" if firing else "resolved",
                    "seen": now,
                    "ended": None if firing else now,
                }
                for fp, firing in work.ledger.items()
            ],
        )
    for identity, ticket_id in work.retarget.items():
        conn.execute(
            update(_ALERTS)
            .where(_ALERTS.c.source == work.source, _ALERTS.c.fingerprint == identity)
            .values(ticket_id=ticket_id, first_seen=now, resolved_at=None)
        )
