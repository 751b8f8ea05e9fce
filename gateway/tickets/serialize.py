"""Tickets and journal events as JSON-ready dicts (CONTRACT.md "Tickets (JSON)")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from gateway.sla.explain import sla_view
from gateway.sla.policy import Book
from gateway.storage.models import ChecklistItem, Ticket, TicketEvent


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_to_dict(
    ticket: Ticket, *, book: Book | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """With `book` and `now`, the `sla` block also shows business minutes used and left."""
    data: dict[str, Any] = {
        "key": ticket.key,
        "type": ticket.type,
        "priority": ticket.priority,
        "status": ticket.status,
        "subject": ticket.subject,
        "description": ticket.description,
        "requester": ticket.requester,
        "requester_name": ticket.requester_name,
        "assignee": ticket.assignee,
        "group": ticket.group,
        "category": ticket.category,
        "source": ticket.source,
        "tags": list(ticket.tags or []),
        "participants": list(ticket.participants or []),
        "approvers": list(ticket.approvers or []),
        "approvals": list(ticket.approvals or []),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in ticket.attachments
        ],
        "checklist": checklist_dicts(ticket.checklist),
        "sla": {
            "policy": ticket.sla_policy,
            "response_due": _iso(ticket.response_due),
            "resolution_due": _iso(ticket.resolution_due),
            "responded_at": _iso(ticket.responded_at),
            "breached": ticket.breached,
        },
    }
    if book is not None and now is not None:
        data["sla"] |= sla_view(book, ticket, now)
    if ticket.source == "inspection":
        data["labels"] = dict(ticket.labels or {})  # the schedule and fire time
    if ticket.fingerprint:
        data["fingerprint"] = ticket.fingerprint
        data["occurrences"] = ticket.occurrences
        data["last_seen"] = _iso(ticket.last_seen)
        data["labels"] = dict(ticket.labels or {})
    return data


def checklist_dicts(items: Iterable[ChecklistItem]) -> list[dict[str, Any]]:
    return [
        {
            "n": i.position,
            "text": i.text,
            "mandatory": i.mandatory,
            "done": i.done,
            "done_by": i.done_by,
            "done_at": _iso(i.done_at),
            "note": i.note,
        }
        for i in items
    ]


def event_to_dict(event: TicketEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": _iso(event.at),
        "actor": event.actor,
        "channel": event.channel,
        "kind": event.kind,
        "before": event.before,
        "after": event.after,
        "note": event.note,
        "public": event.public,
    }
