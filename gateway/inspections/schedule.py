"""Fire times and what to do about them: pure functions over values (STYLE.md habit 2).

The scheduler's memory is the `inspection_runs` table, not apscheduler's job store: given the
last recorded fire time of a schedule and "now", `plan` says which fire times get a ticket,
which one is a catch-up after downtime and which are recorded as skipped. Every daemon
computes the same fire times from the same schedule, so the unique key on (schedule,
fire_at) is all it takes to make each one happen once.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from gateway.inspections.cron import cron_trigger
from gateway.inspections.settings import InspectionSettings
from gateway.sla.calendar import Calendar, is_working_day

_TICK = timedelta(microseconds=1)
# A calendar without a working day in this many fire times is broken; stop, do not spin.
_MAX_SKIPS = 100_000
# Skipped fire times recorded per pass: enough for an audit trail of a long outage without
# a row per minute of a year-long one (the count is logged either way).
MAX_SKIPPED_ROWS = 100
# How far back a pass looks for missed fire times (a schedule last seen years ago).
LOOKBACK = timedelta(days=366)


class Trigger(Protocol):
    def next_after(self, t: datetime) -> datetime | None:
        """The first fire time strictly after `t` (aware), or None when there is none."""
        ...


@dataclass(frozen=True)
class Cron:
    expression: str
    tz: ZoneInfo

    @cached_property
    def _trigger(self) -> CronTrigger:
        return cron_trigger(self.expression, self.tz)

    def next_after(self, t: datetime) -> datetime | None:
        # apscheduler does the cron arithmetic (month lengths, DST); we only ask it for one
        # value at a time and keep none of its scheduler state.
        found = self._trigger.get_next_fire_time(None, t.astimezone(self.tz) + _TICK)
        return found.astimezone(UTC) if found is not None else None


@dataclass(frozen=True)
class Every:
    """Fixed steps of elapsed time from an anchor (wall-clock `start` in the zone)."""

    step: timedelta
    anchor: datetime  # aware

    def next_after(self, t: datetime) -> datetime:
        steps = max(0, math.floor((t - self.anchor) / self.step) + 1)
        return (self.anchor + steps * self.step).astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    name: str
    tz: ZoneInfo
    trigger: Trigger
    calendar: Calendar | None  # working days only
    catch_up: str  # one | none
    grace: timedelta
    spec: InspectionSettings


def compile_schedule(
    spec: InspectionSettings, default_tz: str, calendars: dict[str, Calendar]
) -> Schedule:
    """A schedule from its settings; `calendars` are the compiled [sla.calendars]."""
    tz = ZoneInfo(spec.timezone or default_tz)
    trigger: Trigger
    if spec.cron:
        trigger = Cron(spec.cron, tz)
    else:
        assert spec.interval_seconds is not None  # the settings model checks one is set
        trigger = Every(timedelta(seconds=spec.interval_seconds), spec.start.replace(tzinfo=tz))
    calendar = None
    if spec.working_days_only:
        if spec.calendar not in calendars:
            raise ValueError(f"inspection {spec.name!r}: unknown calendar {spec.calendar!r}")
        calendar = calendars[spec.calendar]
    return Schedule(
        name=spec.name,
        tz=tz,
        trigger=trigger,
        calendar=calendar,
        catch_up=spec.catch_up,
        grace=timedelta(seconds=spec.grace_seconds),
        spec=spec,
    )


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, on a working day when that is asked for."""
    t: datetime | None = after
    for _ in range(_MAX_SKIPS):
        assert t is not None
        t = schedule.trigger.next_after(t)
        if t is None:
            return None
        if schedule.calendar is None or is_working_day(
            schedule.calendar, t.astimezone(schedule.tz).date()
        ):
            return t
    raise ValueError(f"inspection {schedule.name!r}: no working day in {_MAX_SKIPS} fire times")


def fire_times(schedule: Schedule, after: datetime, until: datetime) -> Iterator[datetime]:
    """Fire times t with after < t <= until, in order."""
    t = next_fire(schedule, after)
    while t is not None and t <= until:
        yield t
        t = next_fire(schedule, t)


@dataclass(frozen=True)
class Plan:
    """What one pass does for one schedule."""

    on_time: datetime | None = None  # a ticket, as scheduled
    catch_up: datetime | None = None  # a ticket standing for fire times missed while down
    skipped: tuple[datetime, ...] = ()  # recorded, no ticket (at most MAX_SKIPPED_ROWS)
    missed: int = 0  # fire times that got no ticket of their own
    first_missed: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.on_time or self.catch_up or self.skipped)


def plan(schedule: Schedule, last: datetime, now: datetime) -> Plan:
    """Decide about the fire times in (last, now].

    Only the latest can get a ticket: on time when it is at most `grace` old, else as the
    catch-up ticket when catch_up = "one". Every earlier one was missed (nobody ran, or the
    schedule fires faster than the scheduler polls) and is recorded as skipped, so that a
    restart after a long outage never makes a burst of tickets.
    """
    last = max(last, now - LOOKBACK)
    due: deque[datetime] = deque(maxlen=MAX_SKIPPED_ROWS + 1)
    count = 0
    first = None
    for t in fire_times(schedule, last, now):
        count += 1
        first = first or t
        due.append(t)
    if not due:
        return Plan()
    latest = due.pop()
    skipped = tuple(due)
    if now - latest <= schedule.grace:
        return Plan(latest, None, skipped, count - 1, first if count > 1 else None)
    if schedule.catch_up == "one":
        return Plan(None, latest, skipped, count, first)
    return Plan(None, None, (*skipped, latest)[-MAX_SKIPPED_ROWS:], count, first)


def fields(schedule: Schedule, fire_at: datetime) -> dict[str, str]:
    """The placeholder values for the template at this fire time (local to the schedule)."""
    local = fire_at.astimezone(schedule.tz)
    year, week, _ = local.isocalendar()
    return {
        "date": local.strftime("%Y-%m-%d"),
        "time": local.strftime("%H:%M"),
        "month": local.strftime("%Y-%m"),
        "week": f"{year}-W{week:02d}",
        "name": schedule.name,
    }
