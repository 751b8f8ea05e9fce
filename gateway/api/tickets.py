"""/api/v1/tickets: thin routes that authorise, call the core and serialise."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.api.auth import Principal, principal, require
from gateway.api.errors import ApiError
from gateway.api.limits import MAX_INT64
from gateway.intake import Intake, Source
from gateway.kb import suggest as kb_suggest
from gateway.kb.resolve import Resolution, record_resolution, resolution_problem
from gateway.outbound.notify import queue_notifications
from gateway.pipeline import Created, Duplicate, Pipeline, Updated
from gateway.storage.db import Database
from gateway.storage.models import Ticket, TicketEvent
from gateway.tickets import service
from gateway.tickets.serialize import event_to_dict, ticket_to_dict
from gateway.tickets.states import Command, Refused

router = APIRouter(prefix="/api/v1")
Caller = Annotated[Principal, Depends(principal)]
TicketType = Literal["incident", "change", "request", "inspection"]
Priority = Literal["P0", "P1", "P2", "P3"]
STAFF = ("agent", "approver", "admin")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketIn(Body):
    subject: str = Field(min_length=1, max_length=998)
    description: str = Field(default="", max_length=1_000_000)
    type: TicketType | None = None
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=100)
    group: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    requester: str | None = Field(default=None, max_length=320)
    cc: list[str] = Field(default_factory=list, max_length=50)


class TicketPatch(Body):
    subject: str | None = Field(default=None, min_length=1, max_length=998)
    description: str | None = Field(default=None, max_length=1_000_000)
    type: TicketType | None = None
    priority: Priority | None = None
    category: str | None = Field(default=None, max_length=100)
    group: str | None = Field(default=None, max_length=100)
    assignee: str | None = Field(default=None, max_length=320)
    tags: list[str] | None = Field(default=None, max_length=50)
    reason: str | None = Field(default=None, max_length=2000)


class CommentIn(Body):
    text: str = Field(min_length=1, max_length=1_000_000)
    public: bool = True


class ResolutionIn(Body):
    """With `resolve`: what was wrong and how it was fixed; a solution makes a KB entry."""

    symptom: str = Field(default="", max_length=100_000)
    steps: str = Field(default="", max_length=100_000)
    solution: str = Field(default="", max_length=100_000)
    prevention: str = Field(default="", max_length=100_000)
    title: str | None = Field(default=None, max_length=998)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)

    def value(self) -> Resolution:
        return Resolution(**self.model_dump(exclude={"tags"}), tags=tuple(self.tags))


class TransitionIn(Body):
    action: Literal["assign", "start", "pend", "resolve", "close", "reopen", "approve", "reject"]
    assignee: str | None = Field(default=None, max_length=320)
    group: str | None = Field(default=None, max_length=100)
    reason: str | None = Field(default=None, max_length=2000)
    resolution: ResolutionIn | None = None


def _db(request: Request) -> Database:
    return request.app.state.db


def _load(session: Session, key: str, who: Principal) -> Ticket:
    ticket = session.scalars(select(Ticket).where(Ticket.key == key)).first()
    if ticket is None:
        raise ApiError(404, "not_found", f"no ticket {key}")
    if who.role == "requester" and (ticket.requester or "").lower() != who.email:
        # Requesters see only their own tickets (the brief's roles).
        raise ApiError(403, "forbidden", f"ticket {key} is not yours")
    return ticket


def _actor(who: Principal) -> service.Actor:
    return service.Actor(who.email, who.role, "api")


def _ticket_dict(request: Request, ticket: Ticket) -> dict[str, Any]:
    """The ticket's JSON, its SLA clocks as of the app's clock."""
    book = request.app.state.settings.sla_book()
    return ticket_to_dict(ticket, book=book, now=request.app.state.clock())


def _notify(request: Request, session: Session, now: Any) -> None:
    """Queue what the change journalled, in the same transaction (the outbox)."""
    settings = request.app.state.settings
    queue_notifications(session, settings, service.journalled(session), now=now)


@router.get("/tickets")
def list_tickets(
    request: Request,
    who: Caller,
    status: str | None = None,
    type: str | None = None,
    priority: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> dict[str, Any]:
    stmt = select(Ticket).order_by(Ticket.id.desc()).limit(limit).offset(offset)
    if who.role == "requester":
        stmt = stmt.where(Ticket.requester == who.email)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if type:
        stmt = stmt.where(Ticket.type == type)
    if priority:
        stmt = stmt.where(Ticket.priority == priority)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Ticket.subject.like(like), Ticket.description.like(like)))
    with _db(request).unit(readonly=True) as session:
        tickets = [_ticket_dict(request, t) for t in session.scalars(stmt)]
    return {"tickets": tickets, "count": len(tickets), "limit": limit, "offset": offset}


_REPLAY = {200: {"description": "The ticket an earlier request with this Idempotency-Key made"}}


@router.post("/tickets", status_code=201, responses=_REPLAY)
def create_ticket(
    request: Request,
    who: Caller,
    body: TicketIn,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    require(who, "requester", "agent", "admin")
    requester = who.email if who.role == "requester" else (body.requester or who.email).lower()
    intake = Intake(
        source=Source.API,
        sender=requester,
        subject=body.subject,
        body=body.description,
        cc=tuple(c.lower() for c in body.cc),
        # Only staff may pre-set the classification; a requester's form is classified by rules.
        type=body.type if who.role != "requester" else None,
        priority=body.priority if who.role != "requester" else None,
        category=body.category,
        group=body.group if who.role != "requester" else None,
        tags=tuple(body.tags),
        dedup_key=f"{who.name}:{idempotency_key}" if idempotency_key else None,
    )
    pipeline: Pipeline = request.app.state.pipeline
    outcome = pipeline.process(intake)
    if not isinstance(outcome, Created | Duplicate | Updated) or outcome.key is None:
        raise ApiError(422, "refused", getattr(outcome, "reason", "intake refused"))
    with _db(request).unit(readonly=True) as session:
        data = _ticket_dict(request, _load(session, outcome.key, who))
    return JSONResponse(data, status_code=201 if isinstance(outcome, Created) else 200)


@router.get("/tickets/{key}")
def get_ticket(request: Request, who: Caller, key: str) -> dict[str, Any]:
    with _db(request).unit(readonly=True) as session:
        ticket = _load(session, key, who)
        data = _ticket_dict(request, ticket)
        if who.role in STAFF:
            # The knowledge base's similar solved entries, as journalled (internal).
            data["suggestions"] = kb_suggest.latest(ticket)
        return data


@router.patch("/tickets/{key}")
def patch_ticket(request: Request, who: Caller, key: str, body: TicketPatch) -> dict[str, Any]:
    require(who, "agent", "admin")
    changes = body.model_dump(exclude_unset=True)
    reason = changes.pop("reason", None)
    if not changes:
        raise ApiError(400, "invalid", "nothing to change")
    now = request.app.state.clock()
    with _db(request).unit() as session:
        ticket = _load(session, key, who)
        refused = service.update_fields(session, ticket, changes, _actor(who), now, reason=reason)
        if refused is not None:
            raise ApiError(409, "refused", refused.reason)
        _notify(request, session, now)
        return _ticket_dict(request, ticket)


@router.post("/tickets/{key}/comments", status_code=201)
def add_comment(request: Request, who: Caller, key: str, body: CommentIn) -> dict[str, Any]:
    if who.role == "requester" and not body.public:
        raise ApiError(403, "forbidden", "requesters cannot write internal notes")
    now = request.app.state.clock()
    with _db(request).unit() as session:
        ticket = _load(session, key, who)
        event = service.add_comment(
            session, ticket, _actor(who), body.text, now, public=body.public
        )
        _notify(request, session, now)
        session.flush()
        return event_to_dict(event)


@router.post("/tickets/{key}/transitions")
def transition(request: Request, who: Caller, key: str, body: TransitionIn) -> dict[str, Any]:
    now = request.app.state.clock()
    cmd = Command(
        action=body.action,
        actor=who.email,
        role=who.role,
        assignee=body.assignee,
        group=body.group,
        reason=body.reason,
    )
    resolution = body.resolution.value() if body.resolution is not None else None
    problem = resolution_problem(request.app.state.settings.kb, body.action, who.role, resolution)
    if problem:
        raise ApiError(422, "invalid", problem)
    with _db(request).unit() as session:
        ticket = _load(session, key, who)
        result = service.apply_command(session, ticket, cmd, "api", now)
        if isinstance(result, Refused):
            # A role that may never do this is 403; a legal role at the wrong moment is 409.
            raise ApiError(403 if result.forbidden else 409, "refused", result.reason)
        if resolution is not None:
            record_resolution(session, ticket, resolution, _actor(who), now)
        _notify(request, session, now)
        return _ticket_dict(request, ticket)


@router.get("/tickets/{key}/events")
def list_events(request: Request, who: Caller, key: str) -> dict[str, Any]:
    with _db(request).unit(readonly=True) as session:
        ticket = _load(session, key, who)
        stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        if who.role not in STAFF and who.role != "admin":
            stmt = stmt.where(TicketEvent.public.is_(True))
        events = [event_to_dict(e) for e in session.scalars(stmt.order_by(TicketEvent.id))]
    return {"key": key, "events": events}
