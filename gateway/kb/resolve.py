"""Resolving with a resolution (症状、处理步骤、解决方案、预防措施) writes a KB entry.

Called by the transitions API right after the state machine accepted a resolve, in the same
transaction: the ticket's status, the journal and the KB entry commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.kb import store
from gateway.kb.settings import KbSettings
from gateway.storage.models import KbEntry, Ticket
from gateway.tickets import service

FIELDS = ("symptom", "steps", "solution", "prevention")


@dataclass(frozen=True)
class Resolution:
    symptom: str = ""
    steps: str = ""
    solution: str = ""
    prevention: str = ""
    title: str | None = None  # the KB entry's title; default: the ticket's subject
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f).strip() for f in FIELDS)


def resolution_problem(
    cfg: KbSettings, action: str, role: str, resolution: Resolution | None
) -> str | None:
    """Why this transition's resolution is not acceptable, or None (pure)."""
    if resolution is not None and action != "resolve":
        return f"a resolution goes with the resolve action, not {action}"
    if action != "resolve" or role not in ("agent", "admin"):
        return None
    if cfg.require_solution and (resolution is None or not resolution.solution.strip()):
        return "resolve needs resolution.solution ([kb] require_solution = true)"
    return None


def record_resolution(
    session: Session,
    ticket: Ticket,
    resolution: Resolution,
    actor: service.Actor,
    now: datetime,
) -> KbEntry | None:
    """Journal the resolution; with a solution, write the ticket's KB entry (or update it,
    when the ticket was reopened and resolved again: the newer fix supersedes the old)."""
    if resolution.empty:
        return None
    entry = None
    if resolution.solution.strip():
        entry = session.scalars(select(KbEntry).where(KbEntry.ticket_id == ticket.id)).first()
        fields = {f: getattr(resolution, f).strip() for f in FIELDS}
        fields["title"] = (resolution.title or ticket.subject).strip()
        fields["tags"] = list(resolution.tags) or list(ticket.tags or ())
        fields["category"] = ticket.category
        if entry is None:
            entry = store.new_entry(fields | {"ticket_id": ticket.id}, actor.id, now)
            session.add(entry)
        else:
            store.update_entry(entry, fields, actor.id, now)
        session.flush()  # the entry's id goes into the journal
    after = {f: getattr(resolution, f).strip() for f in FIELDS}
    after["kb_entry"] = entry.id if entry is not None else None
    note = f"resolution recorded; knowledge base entry {entry.id}" if entry else "resolution"
    service.journal(session, ticket, actor, "resolution", now, after=after, note=note)
    return entry
