"""Inspections as an intake channel: each due fire time of a schedule becomes one ticket.

A pass reads every schedule (the config's `[[inspections]]` and those posted to the API),
the last fire time recorded for each in `inspection_runs`, and asks the pure planner
(gateway/inspections/schedule.py) what is due. A ticket is made in one transaction with its
`inspection_runs` row; the row goes in first with ON CONFLICT DO NOTHING on the unique
(schedule, fire_at), so when another daemon on the same database got there first this one
learns it at once (on PostgreSQL it waits for the other transaction to commit or roll back)
and moves on. Nothing depends on apscheduler's memory: a restart, a second daemon or a
changed clock all read the same table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.clock import Clock
from gateway.config import Settings
from gateway.inspections.schedule import Schedule, compile_schedule, fields, next_fire, plan
from gateway.inspections.settings import InspectionSettings
from gateway.intake import Intake, Source
from gateway.outbound.notify import queue_notifications
from gateway.pipeline import Pipeline
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import InspectionRun, InspectionSchedule, Ticket
from gateway.tickets import checklist, service

log = logging.getLogger(__name__)
ACTOR = service.system_actor("inspection")

RUNS = Counter(
    "gateway_inspection_runs_total",
    "Inspection fire times by outcome: created, catch_up, skipped, manual, lost_race.",
    ["schedule", "outcome"],
)


@dataclass(frozen=True)
class Entry:
    """A schedule as the gateway sees it: where it is defined and whether it is in force."""

    spec: InspectionSettings
    origin: str  # config | api
    created_by: str = ""


@dataclass(frozen=True)
class Fired:
    schedule: str
    fire_at: datetime
    status: str  # created | catch_up | manual
    key: str | None  # None: another daemon made this fire time's ticket


def stored_specs(session: Session) -> list[tuple[InspectionSchedule, InspectionSettings | str]]:
    """API-defined schedules, each validated (or the reason it no longer validates)."""
    found: list[tuple[InspectionSchedule, InspectionSettings | str]] = []
    for row in session.scalars(select(InspectionSchedule).order_by(InspectionSchedule.name)):
        try:
            found.append((row, InspectionSettings.model_validate(row.spec)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "schedule"
            found.append((row, f"{where}: {first['msg']}"))
    return found


def entries(session: Session, settings: Settings) -> list[Entry]:
    """Config schedules, then the API's; the config wins a name (the API refuses to add one)."""
    result = [Entry(spec, "config") for spec in settings.inspections]
    taken = {spec.name for spec in settings.inspections}
    for row, spec in stored_specs(session):
        if isinstance(spec, str):
            log.warning("inspection %r (API) is not valid any more, ignored: %s", row.name, spec)
        elif row.name in taken:
            log.warning("inspection %r is defined in the config and the API: config wins", row.name)
        else:
            result.append(Entry(spec, "api", row.created_by))
    return result


def last_fires(session: Session, names: Iterable[str]) -> dict[str, datetime]:
    """The latest recorded fire time per schedule (manual runs do not move it)."""
    rows = session.execute(
        select(InspectionRun.schedule, func.max(InspectionRun.fire_at))
        .where(InspectionRun.schedule.in_(list(names)), InspectionRun.status != "manual")
        .group_by(InspectionRun.schedule)
    )
    return {name: at for name, at in rows if at is not None}


def record(
    session: Session, schedule: str, fire_times: Sequence[datetime], status: str, now: datetime
) -> list[datetime]:
    """Insert run rows, skipping fire times already recorded; returns those inserted here."""
    if not fire_times:
        return []
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = InspectionRun.__table__
    rows = [
        {"schedule": schedule, "fire_at": t, "status": status, "recorded_at": now}
        for t in fire_times
    ]
    result = session.execute(
        insert(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["schedule", "fire_at"])
        .returning(table.c.fire_at)
    )
    return [at for (at,) in result]


class Inspector:
    """Creates the tickets of due fire times; `run_once` is one pass over every schedule."""

    def __init__(self, pipeline: Pipeline, clock: Clock | None = None) -> None:
        self.pipeline = pipeline
        self.db: Database = pipeline.db
        self.settings: Settings = pipeline.settings
        self.clock = clock or pipeline.clock

    def schedules(self, session: Session) -> list[tuple[Entry, Schedule]]:
        calendars = self.settings.sla_book().calendars
        found = []
        for entry in entries(session, self.settings):
            try:
                schedule = compile_schedule(entry.spec, self.settings.daemon.timezone, calendars)
            except ValueError as exc:  # an API schedule naming a calendar since removed
                log.warning("inspection %r ignored: %s", entry.spec.name, exc)
                continue
            found.append((entry, schedule))
        return found

    def run_once(self) -> list[Fired]:
        now = self.clock()
        with self.db.unit(readonly=True) as session:
            active = [s for e, s in self.schedules(session) if e.spec.enabled]
            last = last_fires(session, [s.name for s in active])
        fired: list[Fired] = []
        for schedule in active:
            try:
                fired += self._pass(schedule, last.get(schedule.name), now)
            except StoreUnavailable:
                raise
            except Exception:
                # One broken schedule (a calendar without working days ...) must not stop
                # the others; it is retried, and logged, every pass.
                log.exception("inspection %s failed; the others carry on", schedule.name)
        return fired

    def _pass(self, schedule: Schedule, last: datetime | None, now: datetime) -> list[Fired]:
        """One schedule's share of a pass: arm it, or record and make what is due."""
        if last is None:
            # First sight of this schedule: it starts now, nothing before is owed.
            with self.db.unit() as session:
                record(session, schedule.name, [now], "armed", now)
            log.info(
                "inspection %s armed; next %s",
                schedule.name,
                _local(schedule, next_fire(schedule, now)),
            )
            return []
        fired: list[Fired] = []
        p = plan(schedule, last, now)
        if p.skipped:
            with self.db.unit() as session:
                recorded = record(session, schedule.name, p.skipped, "skipped", now)
            RUNS.labels(schedule.name, "skipped").inc(len(recorded))
        if p.missed:
            log.warning(
                "inspection %s: %d fire time(s) missed since %s (catch_up = %s)",
                schedule.name, p.missed, _local(schedule, p.first_missed), schedule.catch_up,
            )  # fmt: skip
        if p.on_time is not None:
            fired.append(self.fire(schedule, p.on_time, "created", now))
        if p.catch_up is not None:
            note = (
                f"catch-up: no scheduler ran at {p.missed} fire time(s) from "
                f"{_local(schedule, p.first_missed)} to {_local(schedule, p.catch_up)}; "
                "this one ticket stands for them"
            )
            fired.append(self.fire(schedule, p.catch_up, "catch_up", now, note=note))
        return fired

    def fire(
        self, schedule: Schedule, fire_at: datetime, status: str, now: datetime, note: str = ""
    ) -> Fired:
        """Make the ticket of one fire time, unless it is already recorded."""
        with self.db.unit() as session:
            if not record(session, schedule.name, [fire_at], status, now):
                RUNS.labels(schedule.name, "lost_race").inc()
                return Fired(schedule.name, fire_at, status, None)
            ticket = self._ticket(session, schedule, fire_at, status, now, note)
            session.flush()
            session.execute(
                update(InspectionRun)
                .where(InspectionRun.schedule == schedule.name, InspectionRun.fire_at == fire_at)
                .values(ticket_id=ticket.id)
            )
            queue_notifications(session, self.settings, service.journalled(session), now=now)
            key = ticket.key
        RUNS.labels(schedule.name, status).inc()
        metrics.TICKETS_CREATED.labels(ticket.type, ticket.priority).inc()
        log.info("inspection %s: %s for %s (%s)", schedule.name, key, fire_at.isoformat(), status)
        return Fired(schedule.name, fire_at, status, key)

    def _ticket(
        self,
        session: Session,
        schedule: Schedule,
        fire_at: datetime,
        status: str,
        now: datetime,
        note: str,
    ) -> Ticket:
        template = schedule.spec.template
        values = fields(schedule, fire_at)
        local = fire_at.astimezone(schedule.tz).isoformat()
        intake = Intake(
            source=Source.INSPECTION,
            sender="",
            subject=template.subject.format_map(values),
            body=template.description.format_map(values),
            type="inspection",
            priority=template.priority,
            category=template.category,
            group=template.group,
            tags=tuple(template.tags),
            labels={"inspection.schedule": schedule.name, "inspection.fire_at": local},
        )
        ticket = self.pipeline.create_ticket(session, intake, None, now)
        checklist.add_items(session, ticket, ((c.text, c.mandatory) for c in template.checklist))
        service.journal(
            session,
            ticket,
            ACTOR,
            "inspection",
            now,
            after={"schedule": schedule.name, "fire_at": local, "run": status},
            note=note or f"{schedule.name}: fire time {local} ({status})",
            public=False,
        )
        return ticket

    def run_now(self, name: str) -> Fired:
        """`gateway inspections run NAME`: a ticket now, outside the schedule's fire times."""
        now = self.clock()
        with self.db.unit(readonly=True) as session:
            found = {s.name: s for _, s in self.schedules(session)}
        if name not in found:
            raise KeyError(name)
        return self.fire(found[name], now, "manual", now, note=f"{name}: run by hand")


def _local(schedule: Schedule, t: datetime | None) -> str:
    return t.astimezone(schedule.tz).isoformat() if t is not None else "?"


class InspectionJob:
    """The apscheduler job: one pass per interval, the blocking work off the event loop."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector

    def run_once(self) -> list[Fired]:
        try:
            return self.inspector.run_once()
        except StoreUnavailable as exc:
            # Nothing is lost by waiting: the fire times stay due and the next pass (within
            # grace) still makes them on time.
            log.warning("inspection pass skipped: store unavailable: %s", exc)
            return []

    async def run(self) -> None:
        await asyncio.to_thread(self.run_once)


def describe(session: Session, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Every schedule with its origin, last recorded and next fire time (API and CLI)."""
    calendars = settings.sla_book().calendars
    listed = entries(session, settings)
    last = last_fires(session, [e.spec.name for e in listed])
    result = []
    for entry in listed:
        data: dict[str, Any] = {"origin": entry.origin, **entry.spec.model_dump(mode="json")}
        if entry.origin == "api":
            data["created_by"] = entry.created_by
        data["timezone"] = entry.spec.timezone or settings.daemon.timezone
        try:
            schedule = compile_schedule(entry.spec, settings.daemon.timezone, calendars)
        except ValueError as exc:
            data |= {"next_fire": None, "last_fire": None, "problem": str(exc)}
            result.append(data)
            continue
        upcoming = next_fire(schedule, now) if entry.spec.enabled else None
        data["next_fire"] = _local(schedule, upcoming) if upcoming else None
        seen = last.get(entry.spec.name)
        data["last_fire"] = _local(schedule, seen) if seen else None
        result.append(data)
    return result
