"""Business calendars: weekends, 2026 public holidays, 调休 Saturdays, overnight spans, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sla.calendar import (
    TWENTY_FOUR_SEVEN,
    add_business,
    business_between,
    make_calendar,
    parse_span,
)
from gateway.sla.holidays import HolidayError, load_set, uncovered_years

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = ["09:00-12:00", "13:00-18:00"]
WEEK = {d: OFFICE for d in ("mon", "tue", "wed", "thu", "fri")}
CN = load_set("cn")
BUSINESS = make_calendar("Asia/Shanghai", WEEK, holidays=CN.holidays, workdays=CN.workdays)
NIGHT = make_calendar(
    "Asia/Shanghai", {d: ["22:00-06:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
)
BERLIN_OFFICE = make_calendar("Europe/Berlin", WEEK)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def test_the_2026_notice_is_shipped() -> None:
    assert 2026 in CN.years
    assert date(2026, 10, 1) in CN.holidays and date(2026, 10, 7) in CN.holidays
    assert date(2026, 2, 15) in CN.holidays and date(2026, 2, 23) in CN.holidays
    assert CN.workdays == {
        date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28),
        date(2026, 5, 9), date(2026, 9, 20), date(2026, 10, 10),
    }  # fmt: skip
    assert len(CN.holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7


def test_a_year_without_a_holiday_file_is_reported_before_it_starts() -> None:
    shipped = load_set("cn").years
    assert uncovered_years(shipped, date(2026, 6, 1)) == []
    # Mid-November on, next year's missing notice is worth a warning at start-up.
    assert uncovered_years(shipped, date(2026, 11, 29)) == [2027]
    assert uncovered_years(shipped, date(2027, 3, 1)) == [2027]
    assert uncovered_years({2026, 2027}, date(2026, 12, 20)) == []


def test_friday_evening_runs_on_monday_morning() -> None:
    # Fri 2026-11-27 17:00 + 2 h: one hour on Friday, one on Monday.
    assert add_business(BUSINESS, sh(2026, 11, 27, 17), 120) == sh(2026, 11, 30, 10)
    assert business_between(BUSINESS, sh(2026, 11, 27, 17), sh(2026, 11, 30, 10)) == timedelta(
        hours=2
    )


def test_lunch_break_does_not_count() -> None:
    assert add_business(BUSINESS, sh(2026, 11, 25, 11), 120) == sh(2026, 11, 25, 14)


def test_national_day_holiday_is_skipped() -> None:
    # Wed 2026-09-30 17:00 + 2 h: 1 h that evening, then Oct 1-7 off, Thu Oct 8 10:00.
    assert add_business(BUSINESS, sh(2026, 9, 30, 17), 120) == sh(2026, 10, 8, 10)


def test_make_up_saturday_is_a_working_day() -> None:
    # Fri 2026-10-09 17:00 + 2 h: Saturday Oct 10 is a 调休 working day.
    assert add_business(BUSINESS, sh(2026, 10, 9, 17), 120) == sh(2026, 10, 10, 10)
    # An ordinary Saturday is not.
    assert add_business(BUSINESS, sh(2026, 10, 16, 17), 120) == sh(2026, 10, 19, 10)


def test_make_up_sunday_before_national_day() -> None:
    assert business_between(BUSINESS, sh(2026, 9, 20, 0), sh(2026, 9, 21, 0)) == timedelta(hours=8)


def test_overnight_span_runs_past_midnight() -> None:
    # Mon 23:00 + 4 h ends Tue 03:00, inside Monday's 22:00-06:00 shift.
    assert add_business(NIGHT, sh(2026, 11, 23, 23), 240) == sh(2026, 11, 24, 3)
    # Sat 01:00 is still Friday's shift; + 6 h runs 5 h to 06:00, then Monday 22:00 + 1 h.
    assert add_business(NIGHT, sh(2026, 11, 28, 1), 360) == sh(2026, 11, 30, 23)


def test_24x7_is_wall_time() -> None:
    start = datetime(2026, 10, 1, 3, tzinfo=UTC)
    assert add_business(TWENTY_FOUR_SEVEN, start, 61) == start + timedelta(minutes=61)


def test_dst_spring_forward_office_hours() -> None:
    # Berlin skips 02:00-03:00 on Sun 2026-03-29; office hours are local hours either side.
    fri = datetime(2026, 3, 27, 17, tzinfo=BERLIN)
    assert add_business(BERLIN_OFFICE, fri, 120) == datetime(2026, 3, 30, 10, tzinfo=BERLIN)


def test_dst_overnight_shift_is_an_hour_shorter_in_spring() -> None:
    night = make_calendar("Europe/Berlin", {"sat": ["22:00-06:00"]})
    start = datetime(2026, 3, 28, 22, tzinfo=BERLIN)
    end = datetime(2026, 3, 29, 6, tzinfo=BERLIN)
    assert business_between(night, start, end) == timedelta(hours=7)


@pytest.mark.parametrize("bad", ["9-18", "09:00", "25:00-26:00", "09:60-10:00"])
def test_bad_spans_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bad span"):
        parse_span(bad)


def test_calendar_without_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="working hours"):
        make_calendar("Asia/Shanghai", {})


def test_bad_holiday_file_names_the_entry(tmp_path) -> None:
    (tmp_path / "xx-2026.yaml").write_text("holidays:\n  - {from: 2026-01-03, to: 2026-01-01}\n")
    with pytest.raises(HolidayError, match=r"xx-2026\.yaml: entry 1"):
        load_set("xx", [tmp_path])
    with pytest.raises(HolidayError, match="no holiday files"):
        load_set("nowhere", [tmp_path])


# Property tests: the arithmetic in both a DST-free and a DST zone, and 24x7.
CALENDARS = st.sampled_from([BUSINESS, BERLIN_OFFICE, NIGHT, TWENTY_FOUR_SEVEN])
INSTANTS = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(UTC)
)
MINUTES = st.integers(min_value=0, max_value=5 * 24 * 60)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, MINUTES, MINUTES)
def test_add_is_additive(cal, t, a, b) -> None:
    assert add_business(cal, add_business(cal, t, a), b) == add_business(cal, t, a + b)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, MINUTES)
def test_between_inverts_add(cal, t, m) -> None:
    assert business_between(cal, t, add_business(cal, t, m)) == timedelta(minutes=m)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, MINUTES, MINUTES)
def test_add_is_monotonic(cal, t, a, b) -> None:
    lo, hi = sorted((a, b))
    assert t <= add_business(cal, t, lo) <= add_business(cal, t, hi)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS, INSTANTS)
def test_between_is_additive_over_a_split(cal, a, b, c) -> None:
    a, b, c = sorted((a, b, c))
    assert business_between(cal, a, c) == business_between(cal, a, b) + business_between(cal, b, c)
    assert business_between(cal, a, c) <= c - a
