"""An OA's verified decisions applied to the approval chain, in one transaction.

Each decision approves or rejects the current step through the state machine, as the
approver, on channel `oa:NAME`; the OA's event id goes into the dedup ledger (`intake_keys`,
source "oa") with it, so a redelivered callback changes nothing. A decision that is not for
the current step changes and journals nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.oa import Decision
from gateway.approvals import oa_channel
from gateway.config import Settings
from gateway.outbound.notify import queue_notifications
from gateway.storage.db import Database
from gateway.storage.models import ApprovalInstance, IntakeKey, Ticket
from gateway.tickets import service
from gateway.tickets.states import Command, Refused, Status

LEDGER_SOURCE = "oa"


@dataclass(frozen=True)
class Recorded:
    event_id: str
    key: str
    status: str
    duplicate: bool = False  # seen before: nothing changed this time

    def to_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "ticket": self.key,
            "status": self.status,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class NotCurrent:
    """The decision is not for the step waiting now (or not by its approver): HTTP 409."""

    event_id: str
    reason: str


@dataclass(frozen=True)
class UnknownInstance:
    """No ticket has this instance (yet): HTTP 404, the OA retries."""

    event_id: str
    instance_id: str


Outcome = Recorded | NotCurrent | UnknownInstance


class _Undo(Exception):
    """Leaves the unit of work, rolling back what earlier decisions of the callback did."""

    def __init__(self, outcome: NotCurrent | UnknownInstance) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def apply_callback(
    db: Database,
    settings: Settings,
    connector: str,
    decisions: Sequence[Decision],
    now: datetime,
) -> list[Recorded] | NotCurrent | UnknownInstance:
    """All decisions of one callback, or none of them (the first refusal says why)."""
    try:
        with db.unit() as session:
            done: list[Recorded] = []
            for decision in decisions:
                outcome = apply_decision(session, connector, decision, now)
                if not isinstance(outcome, Recorded):
                    raise _Undo(outcome)
                done.append(outcome)
            # Who is told what (the next approver, the requester) commits with the decision.
            queue_notifications(session, settings, service.journalled(session), now=now)
            return done
    except _Undo as undo:
        return undo.outcome


def apply_decision(session: Session, connector: str, d: Decision, now: datetime) -> Outcome:
    instance = session.scalar(
        select(ApprovalInstance).where(
            ApprovalInstance.connector == connector, ApprovalInstance.instance_id == d.instance_id
        )
    )
    if instance is None:
        return UnknownInstance(d.event_id, d.instance_id)
    # Decisions on one ticket take turns: the second one sees the first's step and ledger row.
    postgres = session.get_bind().dialect.name == "postgresql"
    ticket = session.get(Ticket, instance.ticket_id, with_for_update=postgres)
    assert ticket is not None  # a foreign key
    ledger_key = f"{connector}:{d.event_id}"[:512]
    seen = session.scalar(
        select(IntakeKey).where(IntakeKey.source == LEDGER_SOURCE, IntakeKey.key == ledger_key)
    )
    if seen is not None:
        seen.last_seen, seen.deliveries = now, seen.deliveries + 1
        return Recorded(d.event_id, ticket.key, ticket.status, duplicate=True)
    refusal = _not_current(ticket, d)
    if refusal:
        return NotCurrent(d.event_id, refusal)
    reason = d.comment or (f"rejected in {connector}" if d.verdict == "reject" else None)
    result = service.apply_command(
        session,
        ticket,
        Command(d.verdict, d.approver, "approver", reason=reason),
        oa_channel(connector),
        now,
    )
    if isinstance(result, Refused):
        return NotCurrent(d.event_id, result.reason)
    session.add(
        IntakeKey(
            source=LEDGER_SOURCE,
            key=ledger_key,
            ticket_id=ticket.id,
            first_seen=now,
            last_seen=now,
            deliveries=1,
        )
    )
    if ticket.status in (Status.APPROVED, Status.REJECTED):
        instance.status, instance.updated_at = ticket.status, now
    return Recorded(d.event_id, ticket.key, ticket.status)


def _not_current(ticket: Ticket, d: Decision) -> str:
    """Why `d` is not for the step waiting now; "" when it is (the state machine still checks
    that its approver is the one whose turn it is)."""
    if ticket.status != Status.PENDING_APPROVAL:
        return f"{ticket.key} is {ticket.status}, not waiting for approval"
    approvers = list(ticket.approvers or ())
    step = len(ticket.approvals or ()) + 1
    if d.step is not None and d.step != step:
        waiting = approvers[step - 1] if step <= len(approvers) else "nobody"
        return (
            f"step {d.step} is not current: {ticket.key} waits for step "
            f"{step}/{len(approvers)} ({waiting})"
        )
    return ""
