"""The inspection scheduler on real databases with a frozen clock: on time, across a holiday,
after a restart, and with two schedulers racing for the same fire time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.ingest.inspections import Fired, InspectionJob, Inspector
from gateway.inspections.settings import InspectionSettings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import InspectionRun, InspectionSchedule, Ticket
from gateway.tickets import checklist, service
from gateway.tickets.states import Command, Refused
from tests.conftest import FrozenClock

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

DAILY = {
    "name": "daily-backup-check",
    "cron": "0 9 * * *",
    "working_days_only": True,
    "template": {
        "subject": "每日备份检查 {date}",
        "description": "核对昨晚的备份任务",
        "priority": "P2",
        "group": "ops",
        "category": "backup",
        "tags": ["backup"],
        "checklist": [
            "确认备份任务均成功",
            {"text": "抽查恢复", "mandatory": False},
            "检查存储空间",
        ],
    },
}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def with_schedules(settings: Settings, *specs: dict) -> Settings:
    return settings.model_copy(
        update={"inspections": [InspectionSettings.model_validate(s) for s in specs]}
    )


class Daemon:
    """What one gateway process brings to the scheduler: its own engine, pipeline and job."""

    def __init__(self, settings: Settings, clock: FrozenClock) -> None:
        self.db = Database(settings.database)
        rules = RulesHolder(RULES)
        self.pipeline = Pipeline(self.db, settings, rules.classify, clock)
        self.job = InspectionJob(Inspector(self.pipeline))

    def tick(self) -> list[Fired]:
        return self.job.run_once()

    def stop(self) -> None:
        self.db.dispose()


@pytest.fixture
def start(db: Database) -> Iterator[Callable[[Settings, FrozenClock], Daemon]]:
    started: list[Daemon] = []

    def _start(settings: Settings, clock: FrozenClock) -> Daemon:
        daemon = Daemon(settings, clock)
        started.append(daemon)
        return daemon

    yield _start
    for d in started:
        d.stop()


def tickets(db: Database) -> list[Ticket]:
    with db.unit(readonly=True) as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.id)))


def runs(db: Database) -> list[tuple[str, str]]:
    with db.unit(readonly=True) as s:
        rows = s.scalars(select(InspectionRun).order_by(InspectionRun.fire_at))
        return [(r.fire_at.astimezone(SHANGHAI).strftime("%m-%d %H:%M"), r.status) for r in rows]


@pytest.mark.parametrize("catch_up", ["one", "none"])
def test_fires_on_time_across_a_holiday_then_catches_up_after_a_restart(
    settings: Settings, db: Database, start, catch_up: str
) -> None:
    settings = with_schedules(settings, DAILY | {"catch_up": catch_up})
    clock = FrozenClock(local("2026-09-23 08:00"))
    first = start(settings, clock)
    assert first.tick() == []  # first sight: armed, nothing owed for the past
    made = []
    for day in ("09-23", "09-24", "09-25"):  # Wed, Thu, Fri = 中秋节 (holiday)
        clock.now = local(f"2026-{day} 09:00:20")
        made += first.tick()
        clock.now = local(f"2026-{day} 09:00:50")
        assert first.tick() == []  # the next pass finds it done
    assert [(f.key, f.status) for f in made] == [
        ("INS-000001", "created"),
        ("INS-000002", "created"),
    ]
    t = tickets(db)[0]
    assert (t.type, t.source, t.priority, t.group, t.category) == (
        "inspection", "inspection", "P2", "ops", "backup",
    )  # fmt: skip
    assert t.subject == "每日备份检查 2026-09-23"
    assert t.labels["inspection.fire_at"] == "2026-09-23T09:00:00+08:00"
    assert [(i.position, i.text, i.mandatory, i.done) for i in t.checklist] == [
        (1, "确认备份任务均成功", True, False),
        (2, "抽查恢复", False, False),
        (3, "检查存储空间", True, False),
    ]
    first.stop()

    # Down over the weekend until Tuesday 14:00: Monday 09-28 and Tuesday 09-29 were missed.
    clock.now = local("2026-09-29 14:00")
    second = start(settings, clock)
    fired = second.tick()
    if catch_up == "one":
        assert [(f.key, f.status, f.fire_at) for f in fired] == [
            ("INS-000003", "catch_up", local("2026-09-29 09:00")),
        ]
        late = tickets(db)[-1]
        assert late.subject == "每日备份检查 2026-09-29"
        note = next(e.note for e in late.events if e.kind == "inspection")
        assert note.startswith("catch-up: no scheduler ran at 2 fire time(s)")
    else:
        assert fired == []
        assert len(tickets(db)) == 2
    assert second.tick() == []
    clock.now = local("2026-09-30 09:00:10")
    assert [f.status for f in second.tick()] == ["created"]
    expected_missed = [("09-28 09:00", "skipped")]
    expected_missed.append(("09-29 09:00", "catch_up" if catch_up == "one" else "skipped"))
    assert runs(db) == [
        ("09-23 08:00", "armed"),
        ("09-23 09:00", "created"),
        ("09-24 09:00", "created"),
        *expected_missed,
        ("09-30 09:00", "created"),
    ]


def test_make_up_working_day_fires_and_interval_schedules_work(
    settings: Settings, db: Database, start
) -> None:
    hourly = {"name": "hourly", "interval_seconds": 3600, "template": {"subject": "每小时 {time}"}}
    settings = with_schedules(settings, DAILY, hourly)
    clock = FrozenClock(local("2026-09-19 12:00"))  # Saturday
    daemon = start(settings, clock)
    daemon.tick()
    clock.now = local("2026-09-20 09:00:05")  # Sunday, a make-up working day (调休)
    fired = daemon.tick()
    # Nothing ran overnight: the hourly one's latest fire time is on time, the earlier ones
    # are recorded as skipped rather than made into a burst of tickets.
    assert {(f.schedule, f.status) for f in fired} == {
        ("daily-backup-check", "created"),
        ("hourly", "created"),
    }
    subjects = sorted(t.subject for t in tickets(db))
    assert subjects == ["每小时 09:00", "每日备份检查 2026-09-20"]


@pytest.mark.parametrize("rounds", [8])
def test_two_schedulers_racing_make_each_ticket_once(
    settings: Settings, db: Database, start, rounds: int
) -> None:
    """Two daemons on one database run the job for the same due time at the same moment."""
    spec = {"name": "every-minute", "interval_seconds": 60, "template": {"subject": "巡检 {time}"}}
    settings = with_schedules(settings, spec)
    clock = FrozenClock(local("2026-11-30 08:59:30"))
    a, b = start(settings, clock), start(settings, clock)
    a.tick()
    results: list[Fired] = []
    errors: list[BaseException] = []
    for n in range(rounds):
        clock.now = local("2026-11-30 09:00:01").replace(minute=n)
        barrier = threading.Barrier(2)

        def run(daemon: Daemon, barrier: threading.Barrier) -> None:
            try:
                barrier.wait()
                results.extend(daemon.tick())
            except BaseException as exc:  # surfaced below; a thread cannot fail the test
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(d, barrier)) for d in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    made = tickets(db)
    assert len(made) == rounds
    assert sorted(t.subject for t in made) == [f"巡检 09:{n:02d}" for n in range(rounds)]
    # Every fire time has one run row pointing at its one ticket.
    with db.unit(readonly=True) as s:
        linked = [r.ticket_id for r in s.scalars(select(InspectionRun)) if r.status == "created"]
    assert sorted(linked) == sorted(t.id for t in made)
    # What each scheduler reported agrees: one of them made it, the other (if it got that
    # far) learnt that it was taken.
    assert sorted(f.key for f in results if f.key) == sorted(t.key for t in made)


def test_a_stored_schedule_that_no_longer_validates_is_ignored_not_fatal(
    settings: Settings, db: Database, start, caplog
) -> None:
    settings = with_schedules(settings, DAILY)
    clock = FrozenClock(local("2026-11-30 08:00"))
    with db.unit() as s:
        s.add(
            InspectionSchedule(
                name="broken",
                spec={"name": "broken", "cron": "0 25 * * *", "template": {"subject": "x"}},
                created_by="root@example.com",
                created_at=clock(),
                updated_at=clock(),
            )
        )
    daemon = start(settings, clock)
    daemon.tick()
    clock.now = local("2026-11-30 09:00:20")
    assert [f.schedule for f in daemon.tick()] == ["daily-backup-check"]
    assert "inspection 'broken' (API) is not valid any more" in caplog.text
    assert "bad cron '0 25 * * *'" in caplog.text


def test_an_untick_racing_a_resolve_never_leaves_a_resolved_ticket_unticked(
    settings: Settings, db: Database, start
) -> None:
    """Agent A unticks item 1 while agent B resolves: B must see A's untick and be refused."""
    settings = with_schedules(settings, DAILY)
    clock = FrozenClock(local("2026-11-30 08:00"))
    a, b = start(settings, clock), start(settings, clock)
    a.tick()
    clock.now = local("2026-11-30 09:00:10")
    (fired,) = a.tick()
    olga = service.Actor("olga@example.com", "agent", "api")
    with a.db.unit() as s:
        t = s.scalars(select(Ticket).where(Ticket.key == fired.key)).one()
        service.apply_command(s, t, Command("start", olga.id, "agent"), "api", clock())
        for n in ("1", "3"):
            assert checklist.tick(s, t, n, True, olga, clock()) is None

    unticked, go = threading.Event(), threading.Event()
    outcome: list[object] = []

    def untick() -> None:
        with a.db.unit() as s:
            t = s.scalars(select(Ticket).where(Ticket.key == fired.key)).one()
            assert checklist.tick(s, t, "1", False, olga, clock()) is None
            s.flush()
            unticked.set()
            go.wait(30)  # hold the transaction open while the resolve starts

    def resolve() -> None:
        with b.db.unit() as s:
            t = s.scalars(select(Ticket).where(Ticket.key == fired.key)).one()
            cmd = Command("resolve", "li@example.com", "agent")
            outcome.append(service.apply_command(s, t, cmd, "api", clock()))

    first = threading.Thread(target=untick)
    first.start()
    assert unticked.wait(30)
    second = threading.Thread(target=resolve)
    second.start()
    second.join(0.5)  # give the resolve time to read (or block) before the untick commits
    go.set()
    first.join(30)
    second.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], Refused), outcome
    assert "1. 确认备份任务均成功" in outcome[0].reason
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == fired.key)).one()
        assert t.status == "in_progress" and not t.checklist[0].done
