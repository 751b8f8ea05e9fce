"""Similar solved entries for new tickets, journalled as `kb_suggested` (internal).

Intake speed matters: the whole batch is matched in one indexed statement (store.suggest_many),
and a ticket with no match gets no journal row at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.kb import store
from gateway.kb.settings import KbSettings
from gateway.storage.models import Ticket
from gateway.tickets import bulk, service

log = logging.getLogger(__name__)
KIND = "kb_suggested"
ACTOR = service.system_actor("kb")


def ticket_text(cfg: KbSettings, subject: str, description: str) -> str:
    """What a new ticket is matched on: its subject and the start of its description."""
    return f"{subject}\n{(description or '')[: cfg.suggest_chars]}"


def _event(suggestions: Sequence[store.Suggestion]) -> dict[str, Any]:
    return {
        "after": {"entries": [s.to_dict() for s in suggestions]},
        "note": "similar solved: " + "; ".join(f"KB {s.id} {s.title}" for s in suggestions),
    }


def find(session: Session, cfg: KbSettings, texts: Sequence[str]) -> list[list[store.Suggestion]]:
    """Suggestions per text; a failing lookup costs the tickets their suggestions, never the
    intake (a savepoint keeps PostgreSQL's transaction usable after an error)."""
    if not cfg.suggest or cfg.suggest_limit == 0 or not texts:
        return [[] for _ in texts]
    if not store.has_entries(session):
        return [[] for _ in texts]  # a new installation: one indexed probe, no terms cut
    try:
        with session.begin_nested():
            return store.suggest_many(
                session, texts, limit=cfg.suggest_limit, min_score=cfg.suggest_min_score
            )
    except DBAPIError as exc:
        log.warning("knowledge-base suggestions skipped: %s", exc.orig or exc)
        return [[] for _ in texts]


def attach(session: Session, cfg: KbSettings, tickets: Sequence[Ticket], now: datetime) -> None:
    """Journal suggestions on ORM tickets (the pipeline's one-by-one path)."""
    texts = [ticket_text(cfg, t.subject, t.description) for t in tickets]
    for ticket, found in zip(tickets, find(session, cfg, texts), strict=True):
        if found:
            service.journal(session, ticket, ACTOR, KIND, now, public=False, **_event(found))


def as_note(found: Sequence[store.Suggestion]) -> bulk.Note:
    """The `kb_suggested` journal row of a bulk-inserted ticket (gateway/tickets/bulk.py)."""
    return bulk.Note(actor=ACTOR, kind=KIND, public=False, **_event(found))


def latest(ticket: Ticket) -> list[dict[str, Any]]:
    """The suggestions last journalled on the ticket (for notifications), newest event wins."""
    return list(_last_after(ticket, KIND).get("entries") or [])


def resolution(ticket: Ticket) -> dict[str, Any]:
    """The resolution of the ticket's current resolve (symptom, steps, solution, prevention),
    or {}: one recorded before the last reopen belongs to an earlier fix."""
    return _last_after(ticket, "resolution", unless="action.reopen")


def _last_after(ticket: Ticket, kind: str, unless: str = "") -> dict[str, Any]:
    # The journal is loaded with the ticket (selectin) and holds this unit's new events.
    for event in reversed(ticket.events):
        if event.kind == kind:
            return dict(event.after or {})
        if event.kind == unless:
            break
    return {}
