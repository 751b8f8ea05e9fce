"""The thin query layer of the reports: parameters checked, ticket rows read, summary built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.reports.summary import (
    BUCKETS,
    GROUP_BY,
    Bucket,
    GroupBy,
    TicketRow,
    parse_period,
    summarize,
)
from gateway.sla.calendar import TWENTY_FOUR_SEVEN, Calendar
from gateway.storage.db import Database
from gateway.storage.models import Ticket, TicketEvent

DEFAULT_DAYS = 30
MAX_DAYS = 731


@dataclass(frozen=True)
class ReportQuery:
    start: datetime
    end: datetime
    group_by: GroupBy = "type"
    bucket: Bucket = "day"


def parse_query(
    settings: Settings,
    now: datetime,
    start: str | None = None,
    end: str | None = None,
    group_by: str | None = None,
    bucket: str | None = None,
) -> ReportQuery:
    """The report's parameters from text; ValueError with a sentence for a bad one."""
    group_by = group_by or "type"
    bucket = bucket or "day"
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)} (got {group_by!r})")
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)} (got {bucket!r})")
    zone = settings.zone
    until = parse_period(end, zone, end=True) or now
    since = parse_period(start, zone) or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ValueError(f"from ({since.isoformat()}) must be before to ({until.isoformat()})")
    if until - since > timedelta(days=MAX_DAYS):
        raise ValueError(f"the period may span at most {MAX_DAYS} days")
    return ReportQuery(since, until, cast(GroupBy, group_by), cast(Bucket, bucket))


def load_rows(session: Session, start: datetime, end: datetime) -> list[TicketRow]:
    """Tickets created in [start, end) with their reopen counts: two indexed queries."""
    window = (Ticket.created_at >= start, Ticket.created_at < end)
    reopens = dict(
        session.execute(
            select(TicketEvent.ticket_id, func.count())
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(TicketEvent.kind == "action.reopen", *window)
            .group_by(TicketEvent.ticket_id)
        ).all()
    )
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.key,
            Ticket.type,
            Ticket.priority,
            Ticket.category,
            Ticket.group,
            Ticket.source,
            Ticket.created_at,
            Ticket.responded_at,
            Ticket.resolved_at,
            Ticket.sla_policy,
            Ticket.response_due,
            Ticket.resolution_due,
            Ticket.labels,
        ).where(*window)
    )
    return [
        TicketRow(
            key=r.key,
            type=r.type,
            priority=r.priority,
            category=r.category,
            group=r.group,
            source=r.source,
            created_at=r.created_at,
            responded_at=r.responded_at,
            resolved_at=r.resolved_at,
            sla_policy=r.sla_policy,
            response_due=r.response_due,
            resolution_due=r.resolution_due,
            ci=(r.labels or {}).get("cmdb.name") or None,
            reopened=reopens.get(r.id, 0),
        )
        for r in rows
    ]


def calendar_lookup(settings: Settings) -> Callable[[TicketRow], Calendar]:
    """A ticket's business calendar: its SLA policy's, else `[reports] calendar`."""
    book = settings.sla_book()
    name = settings.reports.calendar_name(list(book.calendars))
    default = book.calendars.get(name, TWENTY_FOUR_SEVEN)

    def calendar_for(row: TicketRow) -> Calendar:
        policy = book.policies.get(row.sla_policy or "")
        return policy.calendar if policy is not None else default

    return calendar_for


def build_report(db: Database, settings: Settings, query: ReportQuery, now: datetime) -> dict:
    with db.unit(readonly=True) as session:
        rows = load_rows(session, query.start, query.end)
    return summarize(
        rows,
        start=query.start,
        end=query.end,
        as_of=now,
        calendar_for=calendar_lookup(settings),
        zone=settings.zone,
        group_by=query.group_by,
        bucket=query.bucket,
        top=settings.reports.top,
    )
