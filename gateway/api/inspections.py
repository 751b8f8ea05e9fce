"""/api/v1/inspections (schedules) and ticket checklists: thin routes over the core."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from gateway.api.auth import require
from gateway.api.errors import ApiError
from gateway.api.tickets import STAFF, Body, Caller, _actor, _db, _load, _notify, _ticket_dict
from gateway.ingest.inspections import describe, record
from gateway.inspections.settings import InspectionSettings
from gateway.storage.models import InspectionSchedule
from gateway.tickets import checklist

router = APIRouter(prefix="/api/v1")


class TickIn(Body):
    done: bool = True
    note: str = Field(default="", max_length=500)


@router.get("/inspections")
def list_inspections(request: Request, who: Caller) -> dict[str, Any]:
    require(who, *STAFF)
    settings = request.app.state.settings
    with _db(request).unit(readonly=True) as session:
        found = describe(session, settings, request.app.state.clock())
    return {"inspections": found, "count": len(found)}


@router.post("/inspections", status_code=201)
def put_inspection(request: Request, who: Caller, body: InspectionSettings) -> JSONResponse:
    require(who, "admin")
    settings = request.app.state.settings
    if any(spec.name == body.name for spec in settings.inspections):
        # Two definitions of one name would leave people guessing which one runs.
        raise ApiError(409, "conflict", f"inspection {body.name!r} is defined in the config file")
    if body.working_days_only and body.calendar not in settings.sla.calendars:
        known = ", ".join(sorted(settings.sla.calendars))
        raise ApiError(
            400, "invalid", f"calendar {body.calendar!r} is not configured (known: {known})"
        )
    now = request.app.state.clock()
    spec = body.model_dump(mode="json")
    with _db(request).unit() as session:
        row = session.scalars(
            select(InspectionSchedule).where(InspectionSchedule.name == body.name)
        ).first()
        created = row is None
        if row is None:
            row = InspectionSchedule(
                name=body.name, spec=spec, created_by=who.email, created_at=now, updated_at=now
            )
            session.add(row)
            # It starts now: no ticket for fire times before it existed.
            record(session, body.name, [now], "armed", now)
        row.spec, row.updated_at = spec, now
    with _db(request).unit(readonly=True) as session:
        listed = describe(session, settings, now)
    data = next(d for d in listed if d["name"] == body.name)
    return JSONResponse(data, status_code=201 if created else 200)


@router.delete("/inspections/{name}")
def delete_inspection(request: Request, who: Caller, name: str) -> dict[str, Any]:
    require(who, "admin")
    if any(spec.name == name for spec in request.app.state.settings.inspections):
        raise ApiError(409, "conflict", f"inspection {name!r} is defined in the config file")
    with _db(request).unit() as session:
        row = session.scalars(
            select(InspectionSchedule).where(InspectionSchedule.name == name)
        ).first()
        if row is None:
            raise ApiError(404, "not_found", f"no inspection {name!r}")
        # Its runs stay: the tickets it made still point at them.
        session.delete(row)
    return {"deleted": name}


@router.post("/tickets/{key}/checklist/{n}")
def tick_item(request: Request, who: Caller, key: str, n: int, body: TickIn) -> dict[str, Any]:
    require(who, "agent", "admin")
    now = request.app.state.clock()
    with _db(request).unit() as session:
        ticket = _load(session, key, who)
        if not any(item.position == n for item in ticket.checklist):
            have = f"items 1 to {len(ticket.checklist)}" if ticket.checklist else "no checklist"
            raise ApiError(404, "not_found", f"{key} has no checklist item {n} ({have})")
        refused = checklist.tick(
            session, ticket, str(n), body.done, _actor(who), now, note=body.note
        )
        if refused is not None:
            raise ApiError(409, "refused", refused.reason)
        _notify(request, session, now)
        return _ticket_dict(request, ticket)
