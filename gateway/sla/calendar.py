"""Business calendars and their arithmetic: pure functions over values (STYLE.md habit 2).

A calendar is a timezone, working spans per weekday in local wall-clock time (several a day,
and spans that run past midnight), public holidays and make-up working days (调休), or 24x7.
Arithmetic happens on real (UTC) instants: a span that crosses a DST change is as long as the
clock on the wall says it is, so an hour of work is always an hour of elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# No business calendar leaves a year without work; beyond this, a configuration is broken
# (e.g. every day a holiday) and we stop rather than loop.
_HORIZON_DAYS = 3 * 366

Span = tuple[int, int]  # minutes after local midnight of the span's own day; end may be > 1440


@dataclass(frozen=True)
class Calendar:
    """When the clock runs. `hours[weekday]` holds that day's spans (Monday = 0)."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    hours: tuple[tuple[Span, ...], ...] = ((),) * 7
    holidays: frozenset[date] = frozenset()
    # Make-up working days (调休): a Saturday or Sunday worked in exchange for a holiday.
    workdays: frozenset[date] = frozenset()
    # The spans of a make-up day; () = the spans of Monday (a full working day).
    workday_hours: tuple[Span, ...] = ()
    always: bool = False  # 24x7: every instant counts

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours needs one entry per weekday (Monday first)")
        if not self.always and not any(self.hours) and not self.workdays:
            raise ValueError("a calendar needs working hours on at least one weekday, or 24x7")
        for spans in (*self.hours, self.workday_hours):
            for start, end in spans:
                if not 0 <= start < MINUTES_PER_DAY or not start < end <= start + MINUTES_PER_DAY:
                    raise ValueError(f"bad span {_fmt(start)}-{_fmt(end)}")

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The working spans that start on local `day` (holidays and 调休 applied)."""
        if day in self.workdays:
            return self.workday_hours or self.hours[0]
        if day in self.holidays:
            return ()
        return self.hours[day.weekday()]


TWENTY_FOUR_SEVEN = Calendar(always=True)


def is_working_day(cal: Calendar, day: date) -> bool:
    """A day with working time: weekday hours, or a make-up day (调休), and not a holiday."""
    return cal.always or bool(cal.spans_on(day))


def parse_span(text: str) -> Span:
    """ "09:00-18:00" -> (540, 1080); an end at or before the start runs past midnight."""
    try:
        a, b = (part.strip() for part in text.split("-"))
        start, end = _minutes(a), _minutes(b)
    except ValueError as exc:
        raise ValueError(f"bad span {text!r}: expected HH:MM-HH:MM") from exc
    if end <= start:
        end += MINUTES_PER_DAY  # overnight, e.g. 22:00-06:00 is a night shift
    return start, end


def make_calendar(
    timezone: str = "Asia/Shanghai",
    hours: Mapping[str, Sequence[str]] | None = None,
    *,
    holidays: frozenset[date] = frozenset(),
    workdays: frozenset[date] = frozenset(),
    workday_hours: Sequence[str] = (),
    always: bool = False,
) -> Calendar:
    """A calendar from config-shaped values ({"mon": ["09:00-12:00", ...], ...})."""
    hours = hours or {}
    unknown = set(hours) - set(DAY_NAMES)
    if unknown:
        raise ValueError(f"unknown day(s) {sorted(unknown)}; use {', '.join(DAY_NAMES)}")
    per_day = tuple(tuple(sorted(parse_span(s) for s in hours.get(d, ()))) for d in DAY_NAMES)
    return Calendar(
        tz=ZoneInfo(timezone),
        hours=per_day,
        holidays=holidays,
        workdays=workdays,
        workday_hours=tuple(sorted(parse_span(s) for s in workday_hours)),
        always=always,
    )


def intervals(cal: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals as UTC instants, in order, from the one containing `start` on."""
    if cal.always:
        yield start.astimezone(UTC), datetime.max.replace(tzinfo=UTC)
        return
    # Start a day early: yesterday's overnight span may still be running.
    day = start.astimezone(cal.tz).date() - timedelta(days=1)
    last_end = start.astimezone(UTC)
    for _ in range(_HORIZON_DAYS):
        for a, b in cal.spans_on(day):
            s, e = _instant(cal, day, a), _instant(cal, day, b)
            # Overlapping spans (a night shift meeting the next morning's) are merged by never
            # yielding time twice.
            s = max(s, last_end)
            if e > s:
                yield s, e
                last_end = e
        day += timedelta(days=1)
    raise ValueError(f"no working time within {_HORIZON_DAYS} days of {start.isoformat()}")


def add_business(cal: Calendar, start: datetime, minutes: float | timedelta) -> datetime:
    """The instant `minutes` of working time after `start` (`start` itself for 0)."""
    left = minutes if isinstance(minutes, timedelta) else timedelta(minutes=minutes)
    if left < timedelta(0):
        raise ValueError("cannot add negative business time")
    if not left:
        return start.astimezone(UTC)
    for s, e in intervals(cal, start):
        if left <= e - s:
            return s + left
        left -= e - s
    raise AssertionError("intervals() never ends without raising")  # pragma: no cover


def business_between(cal: Calendar, a: datetime, b: datetime) -> timedelta:
    """Working time in [a, b); zero when b is not after a."""
    total = timedelta(0)
    if b <= a:
        return total
    b = b.astimezone(UTC)
    for s, e in intervals(cal, a):
        if s >= b:
            break
        total += min(e, b) - s
    return total


def _instant(cal: Calendar, day: date, minutes: int) -> datetime:
    # Wall-clock arithmetic (naive), then placed in the zone: 22:00 + 8 h is 06:00 the next
    # morning even when a DST change falls in between. A wall time inside a spring-forward gap
    # maps through fold=0 (the offset before the change), as zoneinfo does.
    local = datetime.combine(day, time.min) + timedelta(minutes=minutes)
    return local.replace(tzinfo=cal.tz).astimezone(UTC)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    value = int(h) * 60 + int(m)
    if not (0 <= int(m) < 60 and 0 <= value <= MINUTES_PER_DAY):
        raise ValueError(hhmm)
    return value


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
