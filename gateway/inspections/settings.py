"""`[[inspections]]`: a schedule and the ticket it makes, validated at start-up.

The same model checks schedules posted to the API (`POST /api/v1/inspections`), so a bad
cron expression is refused with the same sentence wherever it comes from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.inspections.cron import cron_trigger
from gateway.sla.settings import TimeZoneName

# What a subject or description may say about the fire time, e.g. "每日备份检查 {date}".
PLACEHOLDERS = {
    "date": "2026-11-30",
    "time": "09:00",
    "month": "2026-11",
    "week": "2026-W49",
    "name": "daily-backup",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChecklistEntry(_Section):
    text: str = Field(min_length=1, max_length=500)
    # Resolving the ticket waits for the mandatory items; the others are reminders.
    mandatory: bool = True


class TemplateSettings(_Section):
    """The ticket each fire time makes (type `inspection`, source `inspection`)."""

    subject: str = Field(min_length=1, max_length=900)
    description: str = Field(default="", max_length=100_000)
    priority: Literal["P0", "P1", "P2", "P3"] = "P3"
    group: str | None = Field(default=None, max_length=100)
    category: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    checklist: list[ChecklistEntry] = Field(default_factory=list, max_length=100)

    @field_validator("checklist", mode="before")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        # `checklist = ["检查备份日志", {text = "抽查恢复", mandatory = false}]`: a bare string
        # is a mandatory item.
        if isinstance(value, list):
            return [{"text": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("subject", "description")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format_map(PLACEHOLDERS)
        except KeyError as exc:
            known = ", ".join("{" + k + "}" for k in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{exc.args[0]}}}; use {known}") from exc
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from exc
        return value


class InspectionSettings(_Section):
    """One schedule: `cron` (five fields, in `timezone`) or `interval_seconds`."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    enabled: bool = True
    cron: str = ""
    interval_seconds: float | None = Field(default=None, ge=60)
    # Intervals count from here (wall-clock time in `timezone`); the same on every daemon,
    # so all of them agree on the fire times.
    start: datetime = datetime(2026, 1, 1)
    timezone: TimeZoneName | None = None  # None: [daemon] timezone
    # Skip fire times whose local date is not a working day of `calendar` (an
    # [sla.calendars.NAME]: its holidays are skipped, its make-up days 调休 fire).
    working_days_only: bool = False
    calendar: str = "business"
    # After downtime: "one" ticket for the latest missed fire time, or "none" (recorded as
    # skipped). A fire time seen within `grace_seconds` is on time, not missed.
    catch_up: Literal["one", "none"] = "one"
    grace_seconds: float = Field(default=600.0, ge=0)
    template: TemplateSettings

    @model_validator(mode="after")
    def _when(self) -> InspectionSettings:
        if bool(self.cron) == (self.interval_seconds is not None):
            raise ValueError(f"inspection {self.name!r}: set either cron or interval_seconds")
        if self.cron:
            try:
                trigger = cron_trigger(self.cron)
            except ValueError as exc:
                why = f"inspection {self.name!r}: bad cron {self.cron!r}: {exc}"
                raise ValueError(why) from exc
            if trigger.get_next_fire_time(None, datetime.now().astimezone()) is None:
                raise ValueError(f"inspection {self.name!r}: cron {self.cron!r} never fires")
        if self.start.tzinfo is not None:
            raise ValueError(
                f"inspection {self.name!r}: start is wall-clock time in `timezone`; drop the offset"
            )
        return self


def unique_names(schedules: list[InspectionSettings]) -> list[InspectionSettings]:
    names = [s.name for s in schedules]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"inspection names must be unique; repeated: {', '.join(repeated)}")
    return schedules
