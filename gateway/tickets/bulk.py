"""Many new tickets in a few statements: the group-commit fast path of the pipeline.

`service.create_ticket` builds ORM objects one by one, which costs about a millisecond per
ticket in SQLAlchemy's unit of work. A batch of brand-new tickets (no threading, no files, no
routing query) instead becomes one key allocation per prefix and one multi-row INSERT per
table, with the same column values (`service.ticket_fields`) and the same journal rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.config import TicketSettings
from gateway.storage.models import Ticket, TicketEvent
from gateway.tickets.keys import allocate_keys
from gateway.tickets.service import (
    SNAPSHOT_FIELDS,
    Actor,
    NewTicket,
    created_note,
    ticket_fields,
    ticket_prefix,
)

# Built once: constructing a statement per batch cost about as much as running it.
_INSERT_TICKETS = insert(Ticket.__table__).returning(
    Ticket.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_EVENTS = insert(TicketEvent.__table__)


@dataclass(frozen=True)
class Note:
    """A journal row to write beside the "created" one (e.g. the classification)."""

    actor: Actor
    kind: str
    after: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    public: bool = True


@dataclass(frozen=True)
class TicketSpec:
    new: NewTicket
    actor: Actor
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class NewRow:
    id: int
    key: str
    type: str
    priority: str
    snapshot: dict[str, Any]


def insert_tickets(
    session: Session, settings: TicketSettings, specs: Sequence[TicketSpec], now: datetime
) -> list[NewRow]:
    """Insert the tickets (keys allocated per prefix in one statement each), in spec order."""
    if not specs:
        return []
    by_prefix: dict[str, list[int]] = defaultdict(list)
    for i, spec in enumerate(specs):
        by_prefix[ticket_prefix(settings, spec.new)].append(i)
    keys: list[str] = [""] * len(specs)
    for prefix, indexes in by_prefix.items():
        for i, key in zip(
            indexes, allocate_keys(session, prefix, settings.key_digits, len(indexes)), strict=True
        ):
            keys[i] = key
    rows = [ticket_fields(settings, s.new, k, now) for s, k in zip(specs, keys, strict=True)]
    # The ORM attribute `group` maps to the column `group_name`; Core wants column names.
    columns = [{("group_name" if k == "group" else k): v for k, v in r.items()} for r in rows]
    # Core on the session's connection: the ORM's execute layer is pure overhead for these.
    ids = session.connection().execute(_INSERT_TICKETS, columns).scalars()
    return [
        NewRow(id, row["key"], row["type"], row["priority"], {n: row[n] for n in SNAPSHOT_FIELDS})
        for id, row in zip(ids, rows, strict=True)
    ]


def insert_journal(
    session: Session,
    specs: Sequence[TicketSpec],
    tickets: Sequence[NewRow],
    raw_ids: Sequence[int | None],
    now: datetime,
) -> None:
    """The "created" event of each ticket and its notes, as `service.journal` would write them."""
    rows: list[dict[str, Any]] = []
    for spec, ticket, raw_id in zip(specs, tickets, raw_ids, strict=True):
        rows.append(
            _event(
                ticket.id,
                spec.actor,
                "created",
                now,
                after=ticket.snapshot,
                note=created_note(spec.new),
                raw_id=raw_id,
            )
        )
        rows.extend(
            _event(ticket.id, n.actor, n.kind, now, after=n.after, note=n.note, public=n.public)
            for n in spec.notes
        )
    if rows:
        session.connection().execute(_INSERT_EVENTS, rows)


def _event(
    ticket_id: int,
    actor: Actor,
    kind: str,
    now: datetime,
    *,
    after: dict[str, Any],
    note: str,
    public: bool = True,
    raw_id: int | None = None,
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": actor.id,
        "channel": actor.channel,
        "kind": kind,
        "before": {},
        "after": after,
        "note": note,
        "public": public,
        "raw_id": raw_id,
    }
