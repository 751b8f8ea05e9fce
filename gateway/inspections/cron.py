"""Five-field cron expressions as people write them, on apscheduler 3's CronTrigger.

apscheduler 3 numbers weekdays from Monday = 0 (`from_crontab("0 9 * * 1")` fires on
Tuesdays), while cron has Sunday = 0 or 7 and Monday = 1. The weekday field is therefore
expanded here into day names, which mean the same to both. As in apscheduler (and unlike
Vixie cron), a restricted day-of-month and day-of-week must both match: "0 9 1-7 * 1" is the
first Monday of the month.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, tz: tzinfo | None = None) -> CronTrigger:
    """A trigger for "minute hour day month weekday"; ValueError naming the problem."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(parts)}")
    minute, hour, day, month, weekday = parts
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekdays(weekday),
        timezone=tz,
    )


def weekdays(field: str) -> str:
    """Cron's weekday field ("1-5", "0,6", "*/2", "mon-fri", "7") as apscheduler day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = _number(step_text, "step") if step_text else 1
        if step < 1:
            raise ValueError(f"weekday step must be at least 1 in {field!r}")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            a, _, b = span.partition("-")
            low, high = _day(a), _day(b)
        else:
            low = _day(span)
            high = 6 if step_text else low  # "1/2" = from Monday on, every other day
        if high < low:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(d % 7 for d in range(low, high + 1, step))
    return ",".join(DAYS[d] for d in sorted(days))


def _day(text: str) -> int:
    name = text.strip().lower()
    if name[:3] in DAYS and len(name) >= 3:
        return DAYS.index(name[:3])
    value = _number(name, "weekday")
    if not 0 <= value <= 7:
        raise ValueError(f"weekday {value} is out of range (0-7, 0 and 7 = Sunday)")
    return value


def _number(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad {what} {text!r}") from None
