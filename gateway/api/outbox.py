"""/api/v1/outbox: admins list notifications by state and send dead letters again."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import select

from gateway.api.auth import Principal, principal, require
from gateway.api.errors import ApiError
from gateway.api.limits import MAX_INT64
from gateway.storage.db import Database
from gateway.storage.models import OutboxMessage, Ticket

router = APIRouter(prefix="/api/v1")
Caller = Annotated[Principal, Depends(principal)]
State = Literal["pending", "sent", "dead", "held", "digested"]


def _db(request: Request) -> Database:
    return request.app.state.db


def outbox_to_dict(row: OutboxMessage, key: str | None) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "ticket": key,
        "channel": row.channel,
        "event": row.event,
        "recipient": row.recipient,
        "subject": (row.payload or {}).get("subject"),
        "message_id": row.message_id,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
    }


@router.get("/outbox")
def list_outbox(
    request: Request,
    who: Caller,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> dict[str, Any]:
    require(who, "admin")
    stmt = (
        select(OutboxMessage, Ticket.key)
        .outerjoin(Ticket, Ticket.id == OutboxMessage.ticket_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if state:
        stmt = stmt.where(OutboxMessage.state == state)
    with _db(request).unit(readonly=True) as session:
        rows = [outbox_to_dict(row, key) for row, key in session.execute(stmt)]
    return {"messages": rows, "count": len(rows), "limit": limit, "offset": offset}


@router.post("/outbox/{message_id}/retry")
def retry(
    request: Request, who: Caller, message_id: Annotated[int, Path(ge=1, le=MAX_INT64)]
) -> dict[str, Any]:
    """A dead row goes back to pending with a fresh attempt budget, due now."""
    require(who, "admin")
    now = request.app.state.clock()
    with _db(request).unit() as session:
        row = session.get(OutboxMessage, message_id)
        if row is None:
            raise ApiError(404, "not_found", f"no outbox message {message_id}")
        if row.state != "dead":
            raise ApiError(409, "refused", f"outbox message {message_id} is {row.state}, not dead")
        row.state, row.attempts, row.next_attempt_at = "pending", 0, now
        row.claimed_by, row.lease_until = None, None
        # Its age counts from the retry, or max_age_hours would kill it again at once.
        row.created_at = now
        key = session.get(Ticket, row.ticket_id).key if row.ticket_id else None
        return outbox_to_dict(row, key)
