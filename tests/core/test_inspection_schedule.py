"""Inspection fire times and catch-up decisions: pure functions, a frozen clock, real calendars.

The 2026 dates come from the shipped cn-2026 holiday file: 中秋节 is Friday 2026-09-25
(a day off), Sunday 2026-09-20 is a make-up working day (调休), 国庆节 runs 10-01 to 10-07
and Saturday 2026-10-10 is worked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import ConfigError, Settings, load_settings
from gateway.inspections.cron import weekdays
from gateway.inspections.schedule import (
    Plan,
    Schedule,
    compile_schedule,
    fields,
    fire_times,
    next_fire,
    plan,
)
from gateway.inspections.settings import InspectionSettings

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULTS = load_settings(None, require_file=False)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def schedule(**kw) -> Schedule:
    kw.setdefault("name", "daily-backup-check")
    kw.setdefault("template", {"subject": "每日备份检查 {date}"})
    if "interval_seconds" not in kw:
        kw.setdefault("cron", "0 9 * * *")
    spec = InspectionSettings(**kw)
    return compile_schedule(spec, "Asia/Shanghai", DEFAULTS.sla_book().calendars)


def days(times) -> list[str]:
    return [t.astimezone(SHANGHAI).strftime("%m-%d %a %H:%M") for t in times]


def test_working_days_skip_the_mid_autumn_holiday_and_fire_on_the_make_up_sunday() -> None:
    s = schedule(working_days_only=True)
    got = days(fire_times(s, local("2026-09-17 12:00"), local("2026-09-30 23:59")))
    assert got == [
        "09-18 Fri 09:00",
        "09-20 Sun 09:00",  # 调休: worked in exchange for the holiday
        "09-21 Mon 09:00",
        "09-22 Tue 09:00",
        "09-23 Wed 09:00",
        "09-24 Thu 09:00",
        # 09-25 Fri 中秋节, then the weekend
        "09-28 Mon 09:00",
        "09-29 Tue 09:00",
        "09-30 Wed 09:00",
    ]


def test_after_the_national_day_week_the_next_fire_is_the_worked_saturday() -> None:
    s = schedule(working_days_only=True)
    assert days([next_fire(s, local("2026-09-30 09:00"))]) == ["10-08 Thu 09:00"]
    got = days(fire_times(s, local("2026-10-08 09:00"), local("2026-10-12 10:00")))
    assert got == ["10-09 Fri 09:00", "10-10 Sat 09:00", "10-12 Mon 09:00"]


def test_without_working_days_only_every_day_fires() -> None:
    got = days(fire_times(schedule(), local("2026-09-24 10:00"), local("2026-09-27 10:00")))
    assert got == ["09-25 Fri 09:00", "09-26 Sat 09:00", "09-27 Sun 09:00"]


def test_cron_weekdays_count_from_sunday_as_in_cron() -> None:
    # apscheduler 3's own numbering would make "1" a Tuesday.
    s = schedule(cron="0 10 * * 1")
    assert days([next_fire(s, local("2026-11-29 12:00"))]) == ["11-30 Mon 10:00"]
    assert weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert weekdays("0,7") == "sun"
    assert weekdays("5-7") == "sun,fri,sat"
    assert weekdays("*/2") == "sun,tue,thu,sat"
    with pytest.raises(ValueError, match="out of range"):
        weekdays("8")


def test_monthly_and_timezone() -> None:
    s = schedule(cron="0 10 1 * *", timezone="Europe/Berlin")
    nxt = next_fire(s, datetime(2026, 11, 29, tzinfo=UTC))
    assert nxt == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert fields(s, nxt)["month"] == "2026-12"


def test_interval_fire_times_do_not_depend_on_when_they_are_computed() -> None:
    # Two daemons started at different moments agree on every fire time.
    s = schedule(interval_seconds=6 * 3600)
    a = list(fire_times(s, local("2026-11-01 01:23"), local("2026-11-02 00:00")))
    b = list(fire_times(s, local("2026-11-01 05:59"), local("2026-11-02 00:00")))
    assert days(a) == [
        "11-01 Sun 06:00",
        "11-01 Sun 12:00",
        "11-01 Sun 18:00",
        "11-02 Mon 00:00",
    ]
    assert b == a


# ---- plan: what a pass does with the fire times since the last recorded one


def test_on_time_fire_makes_a_ticket() -> None:
    s = schedule()
    now = local("2026-11-30 09:00:30")
    assert plan(s, local("2026-11-29 09:00"), now) == Plan(on_time=local("2026-11-30 09:00"))


def test_nothing_due_before_the_fire_time() -> None:
    assert plan(schedule(), local("2026-11-29 09:00"), local("2026-11-30 08:59:59")).empty


def test_downtime_catch_up_one_makes_one_ticket_for_the_latest_missed() -> None:
    s = schedule(working_days_only=True)
    # Down from Wednesday 09-23 evening to Tuesday 09-29 noon.
    p = plan(s, local("2026-09-23 09:00"), local("2026-09-29 12:00"))
    assert p.on_time is None
    assert p.catch_up == local("2026-09-29 09:00")
    assert days(p.skipped) == ["09-24 Thu 09:00", "09-28 Mon 09:00"]
    assert p.missed == 3 and p.first_missed == local("2026-09-24 09:00")


def test_downtime_catch_up_none_skips_them_all() -> None:
    s = schedule(working_days_only=True, catch_up="none")
    p = plan(s, local("2026-09-23 09:00"), local("2026-09-29 12:00"))
    assert p.on_time is None and p.catch_up is None
    assert days(p.skipped) == ["09-24 Thu 09:00", "09-28 Mon 09:00", "09-29 Tue 09:00"]


def test_an_on_time_fire_supersedes_the_catch_up() -> None:
    s = schedule()
    p = plan(s, local("2026-11-27 09:00"), local("2026-11-30 09:04"))
    assert p.on_time == local("2026-11-30 09:00")
    assert p.catch_up is None
    assert days(p.skipped) == ["11-28 Sat 09:00", "11-29 Sun 09:00"]


def test_grace_decides_on_time_versus_missed() -> None:
    s = schedule(grace_seconds=300)
    last = local("2026-11-29 09:00")
    assert plan(s, last, local("2026-11-30 09:05")).on_time == local("2026-11-30 09:00")
    late = plan(s, last, local("2026-11-30 09:05:01"))
    assert late.on_time is None and late.catch_up == local("2026-11-30 09:00")


def test_a_restart_after_a_long_outage_makes_no_burst_of_tickets() -> None:
    # A minutely schedule, down for a week, restarted at a fire time: one ticket, on time;
    # the 10,079 fire times before it are missed, the latest 100 recorded as skipped.
    s = schedule(interval_seconds=60)
    now = local("2026-11-08 00:00")
    p = plan(s, local("2026-11-01 00:00"), now)
    assert p.on_time == now and p.catch_up is None
    assert p.missed == 7 * 24 * 60 - 1
    assert len(p.skipped) == 100
    assert p.skipped[-1] == now - timedelta(minutes=1)
    assert p.skipped[0] == now - timedelta(minutes=100)


# ---- settings: errors a person can act on


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


ENTRY = """
[[inspections]]
name = "{name}"
cron = "{cron}"
{extra}
[inspections.template]
subject = "{subject}"
"""


def entry(name: str = "patrol", cron: str = "0 10 * * 1", subject: str = "巡检", extra="") -> str:
    return ENTRY.format(name=name, cron=cron, subject=subject, extra=extra)


def test_bad_cron_is_a_config_error_naming_the_schedule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, entry(cron="0 25 * * *")))
    message = str(err.value)
    assert "gateway.toml: inspections.0" in message
    assert "inspection 'patrol': bad cron '0 25 * * *'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (entry(cron="0 9 * *"), "expected 5 fields"),
        (entry(cron="0 0 31 2 *"), "never fires"),
        (entry(subject="巡检 {day}"), "unknown placeholder {day}"),
        (entry() + entry(), "inspection names must be unique; repeated: patrol"),
        (entry(extra='working_days_only = true\ncalendar = "nope"'), "calendar 'nope'"),
        (entry(extra="interval_seconds = 3600"), "set either cron or interval_seconds"),
        (entry(extra='catch_up = "all"'), "catch_up"),
    ],
)
def test_other_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway\.toml") as err:
        load_settings(write(tmp_path, text))
    assert expected in str(err.value)


def test_the_shipped_examples_load(tmp_path: Path) -> None:
    from gateway.cli import _default_text

    text = _default_text("gateway.toml").format(
        database_url=f"sqlite:///{tmp_path}/g.db", admin_token="x" * 24, reply_secret="s" * 32
    )
    settings: Settings = load_settings(write(tmp_path, text))
    by_name = {s.name: s for s in settings.inspections}
    assert set(by_name) == {
        "daily-backup-check",
        "weekly-server-patrol",
        "monthly-vulnerability-scan",
    }
    daily = compile_schedule(
        by_name["daily-backup-check"], "Asia/Shanghai", settings.sla_book().calendars
    )
    assert days([next_fire(daily, local("2026-09-24 09:00"))]) == ["09-28 Mon 09:00"]
    assert daily.spec.template.subject.format_map(fields(daily, local("2026-09-28 09:00"))) == (
        "每日备份检查 2026-09-28"
    )
    assert any(not c.mandatory for c in daily.spec.template.checklist)
    weekly = compile_schedule(by_name["weekly-server-patrol"], "Asia/Shanghai", {})
    assert days([next_fire(weekly, local("2026-11-29 12:00"))]) == ["11-30 Mon 10:00"]
