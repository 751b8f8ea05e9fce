"""Ticket changes inside a caller's transaction; every change writes a journal event.

The decisions come from the pure state machine (`states.decide`); this module only applies them
to rows. Callers own the transaction (`with db.unit() as session:`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.config import PRIORITIES, TICKET_TYPES, TicketSettings
from gateway.intake import IntakeFile
from gateway.sla.clock import new_ticket_columns
from gateway.sla.policy import SlaStart
from gateway.storage.models import Attachment, Blob, ChecklistItem, Ticket, TicketEvent
from gateway.tickets.keys import next_key
from gateway.tickets.states import Applied, Command, Refused, Status, TicketView, decide
from gateway.tickets.states import initial_status as _initial_status


@dataclass(frozen=True)
class Actor:
    """Who makes a change and through which channel (smtp, api, cli, alertmanager, ...)."""

    id: str
    role: str
    channel: str


SYSTEM = "system"


def system_actor(channel: str) -> Actor:
    """The gateway itself (rules, routing, automation) acting through `channel`."""
    return Actor(SYSTEM, SYSTEM, channel)


@dataclass
class NewTicket:
    type: str
    priority: str
    subject: str
    source: str
    description: str = ""
    requester: str | None = None
    requester_name: str = ""
    assignee: str | None = None
    group: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    approvers: list[str] = field(default_factory=list)
    sla_policy: str | None = None
    parent_id: int | None = None
    # The policy the clocks run on, resolved by the pipeline (gateway.sla.policy.Book.start);
    # None = no SLA. `ticket_fields` turns it into the due-time columns.
    sla: SlaStart | None = None


# Fields an API/CLI user may change directly; status moves only through actions.
EDITABLE = ("subject", "description", "priority", "category", "tags", "type", "group", "assignee")


def view(ticket: Ticket) -> TicketView:
    return TicketView(
        status=ticket.status,
        type=ticket.type,
        requester=ticket.requester,
        assignee=ticket.assignee,
        group=ticket.group,
        approvers=tuple(ticket.approvers or ()),
        approvals=tuple(ticket.approvals or ()),
        unchecked=unchecked(ticket.checklist),
    )


def unchecked(items: Iterable[ChecklistItem]) -> tuple[str, ...]:
    """Mandatory checklist items not ticked yet, as agents name them ("2. 检查备份日志")."""
    return tuple(f"{i.position}. {i.text}" for i in items if i.mandatory and not i.done)


def journal(
    session: Session,
    ticket: Ticket,
    actor: Actor,
    kind: str,
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
    public: bool = True,
    raw_id: int | None = None,
) -> TicketEvent:
    event = TicketEvent(
        ticket=ticket,
        at=now,
        actor=actor.id,
        channel=actor.channel,
        kind=kind,
        before=before or {},
        after=after or {},
        note=note,
        public=public,
        raw_id=raw_id,
    )
    session.add(event)
    # Remembered for this unit of work: notifications are decided from the events it added.
    session.info.setdefault(_JOURNALLED, []).append(event)
    ticket.updated_at = now
    return event


_JOURNALLED = "gateway.journalled"


def journalled(session: Session) -> list[TicketEvent]:
    """The journal events added in this session since the last call (and forgets them)."""
    return session.info.pop(_JOURNALLED, [])


def ticket_fields(
    settings: TicketSettings, new: NewTicket, key: str, now: datetime
) -> dict[str, Any]:
    """The column values of a new ticket (pure): checks the type and priority, sets the status."""
    if new.type not in TICKET_TYPES:
        raise ValueError(f"unknown ticket type {new.type!r}")
    if new.priority not in PRIORITIES:
        raise ValueError(f"unknown priority {new.priority!r}")
    status = _initial_status(new.type, new.approvers)
    # A group alone is a queue; the ticket is "assigned" once a person owns it.
    if status == Status.NEW and new.assignee:
        status = Status.ASSIGNED
    return {
        "key": key,
        "type": new.type,
        "priority": new.priority,
        "status": str(status),
        "subject": new.subject[:998],
        "description": new.description,
        "requester": new.requester,
        "requester_name": new.requester_name[:200],
        "assignee": new.assignee,
        "group": new.group,
        "category": new.category,
        "source": new.source,
        "tags": list(new.tags),
        "participants": list(new.participants),
        "labels": dict(new.labels),
        "fingerprint": new.fingerprint,
        "occurrences": 1,
        "approvers": list(new.approvers),
        "approvals": [],
        "parent_id": new.parent_id,
        "breached": False,
        "created_at": now,
        "updated_at": now,
        **new_ticket_columns(new.sla, str(status), now),
    }


def ticket_prefix(settings: TicketSettings, new: NewTicket) -> str:
    if new.type not in TICKET_TYPES:
        raise ValueError(f"unknown ticket type {new.type!r}")
    return settings.key_prefixes[new.type]


def created_note(new: NewTicket) -> str:
    return f"created from {new.source}"


def create_ticket(
    session: Session,
    settings: TicketSettings,
    new: NewTicket,
    actor: Actor,
    now: datetime,
    *,
    raw_id: int | None = None,
) -> Ticket:
    key = next_key(session, ticket_prefix(settings, new), settings.key_digits)
    ticket = Ticket(**ticket_fields(settings, new, key, now))
    session.add(ticket)
    journal(
        session,
        ticket,
        actor,
        "created",
        now,
        after=snapshot(ticket),
        note=created_note(new),
        raw_id=raw_id,
    )
    return ticket


SNAPSHOT_FIELDS = ("type", "priority", "status", "assignee", "group", "category")


def snapshot(ticket: Ticket) -> dict[str, Any]:
    return {name: getattr(ticket, name) for name in SNAPSHOT_FIELDS}


def apply_command(
    session: Session, ticket: Ticket, cmd: Command, channel: str, now: datetime
) -> Applied | Refused:
    """Run a lifecycle action through the state machine and journal the outcome."""
    if cmd.action == "resolve" and ticket.checklist:
        lock_checklist(session, ticket)
    result = decide(view(ticket), cmd)
    if isinstance(result, Refused):
        return result
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, (old, new) in result.changes.items():
        setattr(ticket, name, list(new) if isinstance(new, tuple) else new)  # type: ignore[arg-type]
        before[name] = list(old) if isinstance(old, tuple) else old
        after[name] = list(new) if isinstance(new, tuple) else new
    ticket.status = str(result.status)
    _stamp(ticket, cmd, now)
    if "status" in after:
        sla_changed(ticket, now)
    note = result.note
    if cmd.reason:
        note = f"{note}: {cmd.reason}" if note else cmd.reason
    journal(
        session,
        ticket,
        Actor(cmd.actor, cmd.role, channel),
        f"action.{cmd.action}",
        now,
        before=before,
        after=after,
        note=note,
    )
    return result


def lock_checklist(session: Session, ticket: Ticket) -> None:
    """Serialise checklist changes with resolving the ticket, and re-read both.

    On PostgreSQL an untick racing a resolve could otherwise leave a resolved ticket with an
    unticked mandatory item: each would decide on what it read before the other committed.
    Both take the ticket's row lock first, so the later one sees the earlier one's result.
    SQLite runs one writer at a time already.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.flush()  # refresh() reloads from the row: our own pending changes go there first
    session.refresh(ticket, with_for_update=True)


def sla_changed(ticket: Ticket, now: datetime) -> None:
    """A change that moves SLA clocks (status, response, priority): have the scanner
    re-evaluate the ticket from its history at its next pass (gateway/sla/scanner.py)."""
    # The scanner owns the SLA columns: it recomputes due times and levels from the journal,
    # so every writer (API, mail replies, alerts, CLI) needs only this one mark. A ticket
    # without a policy may gain one through a priority change, so it is marked as well.
    if ticket.next_escalation_at is None or ticket.next_escalation_at > now:
        ticket.next_escalation_at = now


def _stamp(ticket: Ticket, cmd: Command, now: datetime) -> None:
    # Response counts from the first agent action the requester can see, not from an
    # automatic acknowledgement (issue: SLA rules).
    if cmd.action in ("start", "resolve") and cmd.role != SYSTEM and ticket.responded_at is None:
        ticket.responded_at = now
    if ticket.status == Status.RESOLVED:
        ticket.resolved_at = now
    elif ticket.status == Status.CLOSED:
        ticket.closed_at = now
    elif ticket.status == Status.REOPENED:
        ticket.resolved_at = None
        ticket.closed_at = None


def add_comment(
    session: Session,
    ticket: Ticket,
    actor: Actor,
    text: str,
    now: datetime,
    *,
    public: bool = True,
    raw_id: int | None = None,
) -> TicketEvent:
    if public and actor.role in ("agent", "admin") and ticket.responded_at is None:
        ticket.responded_at = now
        sla_changed(ticket, now)
    return journal(session, ticket, actor, "comment", now, note=text, public=public, raw_id=raw_id)


def update_fields(
    session: Session,
    ticket: Ticket,
    changes: dict[str, Any],
    actor: Actor,
    now: datetime,
    *,
    reason: str | None = None,
) -> Refused | None:
    """Change editable fields; a new assignee or group is a reassignment and needs a reason."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        return Refused(
            f"cannot change {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}"
        )
    if "priority" in changes and changes["priority"] not in PRIORITIES:
        return Refused(f"priority must be one of {', '.join(PRIORITIES)}")
    if "type" in changes and changes["type"] not in TICKET_TYPES:
        return Refused(f"type must be one of {', '.join(TICKET_TYPES)}")
    reassign = {k: v for k, v in changes.items() if k in ("assignee", "group")}
    if reassign:
        outcome = apply_command(
            session,
            ticket,
            Command(
                action="assign",
                actor=actor.id,
                role=actor.role,
                assignee=reassign.get("assignee", ticket.assignee),
                group=reassign.get("group", ticket.group),
                reason=reason,
            ),
            actor.channel,
            now,
        )
        if isinstance(outcome, Refused):
            return outcome
    plain = {k: v for k, v in changes.items() if k not in reassign and getattr(ticket, k) != v}
    if plain:
        before = {k: getattr(ticket, k) for k in plain}
        for name, value in plain.items():
            setattr(ticket, name, value)
        if "priority" in plain or "type" in plain:
            sla_changed(ticket, now)
        journal(
            session, ticket, actor, "updated", now, before=before, after=plain, note=reason or ""
        )
    return None


def attach_files(
    session: Session,
    ticket: Ticket,
    files: tuple[IntakeFile, ...],
    *,
    event: TicketEvent | None = None,
) -> None:
    """Keep each file once by content (the same logo in every signature is one blob)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for f in files:
        digest = hashlib.sha256(f.data).hexdigest()
        session.execute(
            insert(Blob)
            .values(sha256=digest, size=len(f.data), data=f.data)
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        session.add(
            Attachment(
                ticket_id=ticket.id,
                event_id=event.id if event is not None else None,
                filename=f.filename[:255],
                content_type=f.content_type[:255],
                size=len(f.data),
                sha256=digest,
            )
        )
