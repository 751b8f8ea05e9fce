"""Connector calls as outbox rows, in the transaction of the ticket change that causes them.

A change entering `pending_approval` with `[approvals] oa` set queues the OA instance; a status
change of a ticket queues a push to each connector that wants them. The OA is never called in
the request path: the outbox worker does it, with retries and dead letters (worker.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.oa import ApprovalRequest, StatusUpdate
from gateway.approvals import CREATE, OUTBOX_CHANNEL, STATUS, oa_channel
from gateway.config import Settings
from gateway.storage.models import ApprovalInstance, OutboxMessage, Ticket, TicketEvent
from gateway.tickets.states import Status


def status_pushers(settings: Settings) -> list[str]:
    """The connectors that want ticket status changes."""
    return [n for n, c in settings.connectors.items() if c.kind == "oa_rest" and c.status_url]


def calls_enabled(settings: Settings) -> bool:
    """Whether any connector call may be queued (the outbox worker must then run)."""
    return bool(settings.approvals.oa or status_pushers(settings))


def queue_connector_calls(
    session: Session, settings: Settings, events: Iterable[TicketEvent], *, now: datetime
) -> list[OutboxMessage]:
    """The outbox rows the journal `events` of this unit of work call for."""
    oa = settings.approvals.oa
    pushers = status_pushers(settings)
    if not (oa or pushers):
        return []  # the usual case: not a look at the events
    events = [e for e in events if _status_moved(e)]
    if not events:
        return []
    session.flush()  # events and tickets need their ids
    rows: list[OutboxMessage] = []
    for event in events:
        ticket = event.ticket
        if oa and _enters_approval(event, ticket):
            # The journal event that entered the chain is its revision: a retry of the row
            # reuses the key, a later round of approval would get a new one.
            key = f"oa:{oa}:{ticket.key}:{event.id}"
            request = ApprovalRequest(
                key=ticket.key,
                subject=ticket.subject,
                description=ticket.description[:4000],
                type=ticket.type,
                priority=ticket.priority,
                requester=ticket.requester or "",
                approvers=tuple(ticket.approvers or ()),
            )
            payload = {"request": request.to_json(), "subject": f"approval instance in {oa}"}
            rows += _queue(session, ticket, oa, CREATE, key, payload, now)
        for name in pushers:
            if not _wanted(settings, name, event, ticket):
                continue
            update = StatusUpdate(
                event_id=f"{ticket.key}:{event.id}",
                key=ticket.key,
                type=ticket.type,
                status=str(event.after["status"]),
                previous=event.before.get("status"),
                actor=event.actor,
                channel=event.channel,
                at=event.at.isoformat(),
                instance_ids=tuple(_instances(session, ticket, name)),
            )
            payload = {"update": update.to_json(), "subject": f"{update.status} to {name}"}
            rows += _queue(
                session, ticket, name, STATUS, f"status:{name}:{update.event_id}", payload, now
            )
    return rows


def _status_moved(event: TicketEvent) -> bool:
    after = event.after or {}
    return "status" in after and after["status"] != (event.before or {}).get("status")


def _enters_approval(event: TicketEvent, ticket: Ticket) -> bool:
    return (
        event.after["status"] == Status.PENDING_APPROVAL
        and ticket.type == "change"
        and bool(ticket.approvers)
    )


def _wanted(settings: Settings, name: str, event: TicketEvent, ticket: Ticket) -> bool:
    if event.kind == "created" or ticket.type not in settings.connectors[name].status_types:
        return False
    # The OA's own decisions: it knows them already.
    return event.channel != oa_channel(name)


def _instances(session: Session, ticket: Ticket, connector: str) -> list[str]:
    return list(
        session.scalars(
            select(ApprovalInstance.instance_id)
            .where(ApprovalInstance.ticket_id == ticket.id, ApprovalInstance.connector == connector)
            .order_by(ApprovalInstance.id)
        )
    )


def _queue(
    session: Session,
    ticket: Ticket,
    connector: str,
    call: str,
    key: str,
    payload: dict[str, Any],
    now: datetime,
) -> list[OutboxMessage]:
    # The key is the row's unique message_id: a unit of work that journals the same event
    # twice (it does not today) queues one call.
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == key)):
        return []
    row = OutboxMessage.queued(
        ticket_id=ticket.id,
        channel=OUTBOX_CHANNEL,
        event=call,
        recipient=connector,
        payload={**payload, "key": ticket.key, "ticket_id": ticket.id, "connector": connector},
        message_id=key,
        now=now,
    )
    session.add(row)
    return [row]
