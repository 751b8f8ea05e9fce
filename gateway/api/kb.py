"""/api/v1/kb: search, read and edit knowledge-base entries (thin routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.auth import Principal, principal, require
from gateway.api.errors import ApiError
from gateway.api.limits import MAX_INT64
from gateway.kb import store
from gateway.storage.models import KbEntry, Ticket
from gateway.tickets import service

router = APIRouter(prefix="/api/v1")
Caller = Annotated[Principal, Depends(principal)]


class KbPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=998)
    symptom: str | None = Field(default=None, max_length=100_000)
    steps: str | None = Field(default=None, max_length=100_000)
    solution: str | None = Field(default=None, min_length=1, max_length=100_000)
    prevention: str | None = Field(default=None, max_length=100_000)
    tags: list[Annotated[str, Field(max_length=100)]] | None = Field(default=None, max_length=50)
    category: str | None = Field(default=None, max_length=100)


def _may_read(request: Request, who: Principal) -> None:
    if who.role == "requester" and not request.app.state.settings.kb.requesters_may_read:
        raise ApiError(
            403, "forbidden", "the knowledge base is for staff ([kb] requesters_may_read)"
        )


# Ids beyond what the databases store are a 422, not a driver error (a 500).
EntryId = Annotated[int, Path(ge=1, le=MAX_INT64)]


def _load(session: Session, entry_id: int) -> KbEntry:
    entry = session.get(KbEntry, entry_id)
    if entry is None:
        raise ApiError(404, "not_found", f"no knowledge base entry {entry_id}")
    return entry


def _dicts(session: Session, entries: list[KbEntry]) -> list[dict[str, Any]]:
    keys = store.ticket_keys(session, entries)
    return [store.entry_to_dict(e, keys.get(e.ticket_id or 0)) for e in entries]


@router.get("/kb")
def search_kb(
    request: Request,
    who: Caller,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    _may_read(request, who)
    with request.app.state.db.unit(readonly=True) as session:
        entries = _dicts(session, store.search(session, q, limit))
    return {"q": q, "entries": entries, "count": len(entries)}


@router.get("/kb/{entry_id}")
def get_entry(request: Request, who: Caller, entry_id: EntryId) -> dict[str, Any]:
    _may_read(request, who)
    with request.app.state.db.unit(readonly=True) as session:
        return _dicts(session, [_load(session, entry_id)])[0]


@router.patch("/kb/{entry_id}")
def patch_entry(request: Request, who: Caller, entry_id: EntryId, body: KbPatch) -> dict[str, Any]:
    require(who, "agent", "admin")
    changes = body.model_dump(exclude_unset=True)
    if not changes or any(v is None for k, v in changes.items() if k != "category"):
        raise ApiError(400, "invalid", "nothing to change, or a field set to null")
    now = request.app.state.clock()
    with request.app.state.db.unit() as session:
        entry = _load(session, entry_id)
        changed = store.update_entry(entry, changes, who.email, now)
        ticket = session.get(Ticket, entry.ticket_id) if entry.ticket_id else None
        if changed and ticket is not None:
            # The ticket's journal tells who changed its fix, and how.
            service.journal(
                session,
                ticket,
                service.Actor(who.email, who.role, "api"),
                "kb_edited",
                now,
                before={k: b for k, (b, _) in changed.items()},
                after={"kb_entry": entry.id} | {k: a for k, (_, a) in changed.items()},
                note=f"knowledge base entry {entry.id} edited: {', '.join(changed)}",
                public=False,
            )
            service.journalled(session)  # internal: nobody is notified
        session.flush()
        return _dicts(session, [entry])[0]
