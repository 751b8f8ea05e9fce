"""Policies as values: `[sla]` compiled once into a `Book` the pipeline and scanner consult."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.sla.calendar import Calendar, make_calendar
from gateway.sla.holidays import load_set, uncovered_years
from gateway.sla.settings import CalendarSettings, LevelSettings, SlaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    """One escalation level of a policy; `name` is what fires once per ticket."""

    name: str
    target: str  # response | resolution
    percent: float
    after: timedelta
    notify: tuple[str, ...]
    raise_priority: str | None = None
    reassign_group: str | None = None
    reassign_to: str | None = None

    @property
    def event(self) -> str:
        """The journal kind the outbox plans from: a warning before the deadline, else breach."""
        return "sla_breach" if self.percent >= 100 else "sla_warning"

    def threshold(self, target: timedelta) -> timedelta:
        """Business time into the clock at which this level fires."""
        return target * (self.percent / 100) + self.after


@dataclass(frozen=True)
class Policy:
    name: str
    calendar: Calendar
    response: timedelta
    resolution: timedelta
    levels: tuple[Level, ...] = ()

    def target(self, which: str) -> timedelta:
        return self.response if which == "response" else self.resolution


@dataclass(frozen=True)
class SlaStart:
    """What a new ticket's clocks run on; carried by NewTicket into `ticket_fields`."""

    policy: Policy
    pinned: bool  # chosen by a rule: a priority change keeps it
    pause: frozenset[str] = frozenset({"pending"})


@dataclass(frozen=True)
class Book:
    policies: dict[str, Policy]
    by_priority: dict[str, str]
    by_type: dict[str, str]
    pause_statuses: frozenset[str]
    at_risk: timedelta  # a due time this close counts the ticket as at risk (metric)
    # Every [sla.calendars.NAME], holidays loaded: inspections' "working days only" and the
    # reports' business time run on them.
    calendars: dict[str, Calendar] = field(default_factory=dict)

    def choose(self, type: str, priority: str, rule_policy: str | None) -> tuple[str | None, bool]:
        """(policy name, pinned): a rule's choice wins, then the priority, then the type."""
        if rule_policy:
            if rule_policy in self.policies:
                return rule_policy, True
            log.warning("rule chose unknown SLA policy %r; using the mapping", rule_policy)
        name = self.by_priority.get(priority) or self.by_type.get(type) or None
        return name, False

    def start(self, type: str, priority: str, rule_policy: str | None) -> SlaStart | None:
        name, pinned = self.choose(type, priority, rule_policy)
        return SlaStart(self.policies[name], pinned, self.pause_statuses) if name else None

    def current(self, type: str, priority: str, policy: str | None, pinned: bool) -> Policy | None:
        """The policy a ticket runs on now: its pinned one, else the mapping for its fields."""
        if pinned and policy in self.policies:
            return self.policies[policy]
        name, _ = self.choose(type, priority, None)
        return self.policies[name] if name else None


def build_book(cfg: SlaSettings, config_dir: Path = Path(".")) -> Book:
    """Compile `[sla]`: load the holiday files each calendar names; raise on a bad file."""
    folders = []
    if cfg.holidays_dir:
        folder = Path(cfg.holidays_dir)
        folders.append(folder if folder.is_absolute() else config_dir / folder)
    calendars = {name: _calendar(c, folders) for name, c in cfg.calendars.items()}
    policies = {
        name: Policy(
            name=name,
            calendar=calendars[p.calendar],
            response=timedelta(minutes=p.response_minutes),
            resolution=timedelta(minutes=p.resolution_minutes),
            levels=tuple(_level(lvl) for lvl in p.escalations),
        )
        for name, p in cfg.policies.items()
    }
    return Book(
        policies=policies,
        by_priority={k: v for k, v in cfg.by_priority.items() if v},
        by_type={k: v for k, v in cfg.by_type.items() if v},
        pause_statuses=frozenset(cfg.pause_statuses),
        at_risk=timedelta(minutes=cfg.at_risk_minutes),
        calendars=calendars,
    )


def _calendar(c: CalendarSettings, folders: list[Path]) -> Calendar:
    days = load_set(c.holidays, folders) if c.holidays else None
    if days is not None:
        today = datetime.now(ZoneInfo(c.timezone)).date()
        for year in uncovered_years(days.years, today):
            log.warning(
                "holiday set %r has no file for %d: its days count as plain weekdays until "
                "%s-%d.yaml is added to [sla] holidays_dir (README: SLA, holiday files)",
                c.holidays,
                year,
                c.holidays,
                year,
            )
    return make_calendar(
        c.timezone,
        c.hours,
        holidays=days.holidays if days else frozenset(),
        workdays=days.workdays if days else frozenset(),
        workday_hours=c.workday_hours,
        always=c.always,
    )


def _level(lvl: LevelSettings) -> Level:
    return Level(
        name=lvl.name,
        target=lvl.target,
        percent=lvl.percent,
        after=timedelta(minutes=lvl.after_minutes),
        notify=tuple(lvl.notify),
        raise_priority=lvl.raise_priority,
        reassign_group=lvl.reassign_group,
        reassign_to=lvl.reassign_to,
    )
