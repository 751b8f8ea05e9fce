"""Queue notifications as outbox rows, in the caller's transaction (the ticket change's own).

The decision is `plan.plan` (pure); this module adds what needs the database: the rate limits
counted from earlier rows, the thread of earlier Message-IDs, and the rows themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.approvals.queue import queue_connector_calls
from gateway.config import Settings
from gateway.ingest.followup import reply_address
from gateway.kb import suggest as kb_suggest
from gateway.outbound import metrics
from gateway.outbound.message import new_message_id
from gateway.outbound.plan import EventFacts, Planned, TicketFacts, plan
from gateway.outbound.render import renderer_for
from gateway.storage.models import OutboxMessage, RawMessage, Ticket, TicketEvent

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Rows that count against a recipient's hourly limit: all but those folded into a digest.
_COUNTED = ("pending", "sent", "dead", "held")
# Rows whose Message-ID the recipient may have seen, and so may thread under.
_THREADED = ("pending", "sent")
STATUS_ZH = {
    "new": "新建",
    "assigned": "已分派",
    "in_progress": "处理中",
    "pending": "待反馈",
    "resolved": "已解决",
    "closed": "已关闭",
    "reopened": "重新打开",
    "pending_approval": "待审批",
    "approved": "已批准",
    "rejected": "已驳回",
}
# The English mails name the status in words, not as the API's identifiers.
STATUS_EN = {
    "new": "new",
    "assigned": "assigned",
    "in_progress": "in progress",
    "pending": "waiting for your reply",
    "resolved": "resolved",
    "closed": "closed",
    "reopened": "reopened",
    "pending_approval": "waiting for approval",
    "approved": "approved",
    "rejected": "rejected",
}


def own_addresses(settings: Settings) -> frozenset[str]:
    """Addresses that are the gateway itself: mailing them would loop back into the intake."""
    cfg = settings.outbound
    own = {*settings.smtp.addresses, cfg.from_address, reply_base(settings)}
    return frozenset(a.strip().lower() for a in own if a)


def reply_base(settings: Settings) -> str:
    if settings.outbound.reply_to:
        return settings.outbound.reply_to
    return settings.smtp.addresses[0] if settings.smtp.addresses else settings.outbound.from_address


def ticket_facts(ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        key=ticket.key,
        priority=ticket.priority,
        status=ticket.status,
        requester=ticket.requester,
        assignee=ticket.assignee,
        group=ticket.group,
        participants=tuple(ticket.participants or ()),
        approvers=tuple(ticket.approvers or ()),
        approvals=tuple(ticket.approvals or ()),
    )


def event_facts(event: TicketEvent) -> EventFacts:
    return EventFacts(event.kind, event.actor, bool(event.public), dict(event.after or {}))


def queue_notifications(
    session: Session,
    settings: Settings,
    events: Iterable[TicketEvent],
    *,
    trigger_auto: str = "",
    now: datetime,
) -> list[OutboxMessage]:
    """Write the outbox rows the journal `events` of this unit of work call for."""
    events = list(events)
    # Connector calls (OA instances, status pushes) are not mail: no switch, no loop guard.
    queue_connector_calls(session, settings, events, now=now)
    if not settings.outbound.enabled or not events:
        return []
    if trigger_auto:
        # Never answer a machine (RFC 3834 §2): that is how two systems mail each other forever.
        metrics.SUPPRESSED.labels("automatic").inc()
        log.info("no notifications: the change came from automatic mail (%s)", trigger_auto)
        return []
    own = own_addresses(settings)
    rows: list[OutboxMessage] = []
    session.flush()  # events and tickets need their ids
    for event in events:
        ticket = event.ticket
        for planned in plan(event_facts(event), ticket_facts(ticket), settings.outbound, own):
            row = _row(session, settings, ticket, event, planned, now)
            if row is not None:
                session.add(row)
                session.flush()  # the next row's limits and thread see this one
                rows.append(row)
    return rows


def _row(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    event: TicketEvent,
    planned: Planned,
    now: datetime,
) -> OutboxMessage | None:
    cfg = settings.outbound
    if planned.event == "received" and _recent(session, planned, now, "received") >= (
        cfg.ack_limit_per_hour
    ):
        metrics.SUPPRESSED.labels("ack_limit").inc()
        log.warning("acknowledgement to %s suppressed: over the hourly limit", planned.recipient)
        return None
    held = _recent(session, planned, now) >= cfg.rate_limit_per_hour
    context = mail_context(settings, ticket, event, planned.recipient, planned.language)
    renderer = renderer_for(settings)
    payload: dict[str, Any] = {"key": ticket.key, "event": planned.event}
    message_id = None
    if planned.channel == "mail":
        mail = renderer.mail(planned.event, planned.language, context)
        payload |= {
            "subject": mail.subject,
            "text": mail.text,
            "html": mail.html,
            "reply_to": context["reply_address"],
            "references": [] if held else _thread(session, ticket, planned.recipient),
        }
        # Assigned now, so a reply can find the ticket even before the row is marked sent.
        message_id = None if held else new_message_id(cfg.from_address, ticket.key)
    else:
        chat = renderer.chat(planned.event, planned.language, context)
        payload |= {"subject": chat.title, "title": chat.title, "text": chat.text}
    if held:
        metrics.SUPPRESSED.labels("held_for_digest").inc()
    return OutboxMessage.queued(
        ticket_id=ticket.id,
        channel=planned.channel,
        event=planned.event,
        recipient=planned.recipient,
        payload=payload | {"language": planned.language},
        message_id=message_id,
        state="held" if held else "pending",
        now=now,
    )


def _recent(session: Session, planned: Planned, now: datetime, event: str | None = None) -> int:
    stmt = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.recipient == planned.recipient,
        OutboxMessage.channel == planned.channel,
        OutboxMessage.created_at > now - HOUR,
        OutboxMessage.state.in_(_COUNTED),
    )
    if event is not None:
        stmt = stmt.where(OutboxMessage.event == event)
    return session.scalar(stmt) or 0


def _thread(session: Session, ticket: Ticket, recipient: str) -> list[str]:
    """The Message-IDs this mail follows: the requester's first mail, then ours to `recipient`."""
    root = session.scalar(
        select(RawMessage.message_id)
        .where(RawMessage.ticket_id == ticket.id, RawMessage.message_id.is_not(None))
        .order_by(RawMessage.id)
        .limit(1)
    )
    ours = session.scalars(
        select(OutboxMessage.message_id)
        .where(
            OutboxMessage.ticket_id == ticket.id,
            OutboxMessage.recipient == recipient,
            OutboxMessage.channel == "mail",
            OutboxMessage.message_id.is_not(None),
            OutboxMessage.state.in_(_THREADED),
        )
        .order_by(OutboxMessage.id)
    ).all()
    return [i for i in (root, *ours) if i]


def mail_context(
    settings: Settings,
    ticket: Ticket,
    event: TicketEvent | None,
    recipient: str,
    language: str = "zh",
) -> dict[str, Any]:
    """The values templates see (documented in the README's template section)."""
    replies = settings.replies
    secret = replies.secret
    step = len(ticket.approvals or ())
    return {
        "key": ticket.key,
        "summary": ticket.subject,
        "description": ticket.description[:4000],
        "priority": ticket.priority,
        "status": ticket.status,
        "status_zh": STATUS_ZH.get(ticket.status, ticket.status),
        "status_en": STATUS_EN.get(ticket.status, ticket.status),
        "type": ticket.type,
        "requester": ticket.requester or "",
        "requester_name": ticket.requester_name or "",
        "assignee": ticket.assignee or "",
        "group": ticket.group or "",
        "category": ticket.category or "",
        "created_at": ticket.created_at,
        "response_due": ticket.response_due,
        "resolution_due": ticket.resolution_due,
        "responded_at": ticket.responded_at,
        "approval_step": min(step + 1, len(ticket.approvers or ()) or 1),
        "approval_steps": len(ticket.approvers or ()),
        "actor": event.actor if event else "",
        "note": event.note if event else "",
        "public": bool(event.public) if event else True,
        "at": event.at if event else ticket.updated_at,
        "reply_address": reply_address(reply_base(settings), secret, ticket.key) if secret else "",
        "accept_word": _word(replies.accept_words, language, "confirmed"),
        "reject_word": _word(replies.reject_words, language, "not fixed"),
        "recipient": recipient,
        "items": [],
        # Similar solved KB entries journalled on the ticket (shown to the assignee).
        "suggestions": kb_suggest.latest(ticket),
        # How it was fixed, for the requester's accept-or-reject mail (a public event).
        "resolution": kb_suggest.resolution(ticket),
        "from_name": settings.outbound.from_name,
    }


def _word(words: list[str], language: str, fallback: str) -> str:
    """The first configured verdict word in the mail's language (English: ASCII words)."""
    for word in words:
        if word.isascii() == (language == "en"):
            return word
    return words[0] if words else fallback
