"""The `[sla]` section: calendars, policies, escalation levels and the priority/type mapping.

Kept apart from `gateway/config.py` (which imports it) so the SLA package owns its config; it
imports nothing from the rest of the gateway.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gateway.sla.calendar import DAY_NAMES, parse_span


def check_timezone(value: str) -> str:
    """An IANA zone name zoneinfo knows (e.g. Asia/Shanghai)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]

Priority = Literal["P0", "P1", "P2", "P3"]
OFFICE = ["09:00-12:00", "13:00-18:00"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalendarSettings(_Section):
    """`[sla.calendars.NAME]`: working hours in `timezone`, or `always = true` (24x7)."""

    timezone: TimeZoneName = "Asia/Shanghai"
    always: bool = False
    hours: dict[str, list[str]] = Field(default_factory=dict)
    # A holiday set: files `<set>-<year>.yaml` shipped in gateway/sla/holidays/ or in
    # [sla] holidays_dir. "" = no holidays.
    holidays: str = ""
    # Hours of a make-up working day (调休); empty = Monday's hours.
    workday_hours: list[str] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(DAY_NAMES))
        if unknown:
            raise ValueError(f"unknown day(s) {unknown}; use {', '.join(DAY_NAMES)}")
        for spans in value.values():
            for span in spans:
                parse_span(span)
        return value


class LevelSettings(_Section):
    """One escalation level: when (a share of a target plus an offset) and what happens."""

    name: str = Field(min_length=1, max_length=60)
    target: Literal["response", "resolution"] = "response"
    # Fires once `percent`% of the target's business time plus `after_minutes` has run:
    # percent = 80 warns before the deadline, 100 is the breach, after_minutes = 240 is
    # four business hours past it.
    percent: float = Field(default=100.0, ge=0, le=1000)
    after_minutes: float = Field(default=0.0, ge=0)
    # Roles (assignee, group), addresses, "group:NAME" ([outbound] group_addresses) and
    # "chat:NAME" ([outbound.chat.NAME] robots).
    notify: list[str] = Field(default_factory=lambda: ["assignee", "group"])
    raise_priority: Priority | None = None
    reassign_group: str | None = None
    reassign_to: str | None = None

    @property
    def is_breach(self) -> bool:
        return self.percent >= 100


class PolicySettings(_Section):
    """`[sla.policies.NAME]`: targets in business minutes on a named calendar."""

    calendar: str = "business"
    response_minutes: float = Field(gt=0)
    resolution_minutes: float = Field(gt=0)
    escalations: list[LevelSettings] = Field(default_factory=list)

    @field_validator("escalations")
    @classmethod
    def _unique(cls, value: list[LevelSettings]) -> list[LevelSettings]:
        names = [lvl.name for lvl in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"escalation names must be unique in a policy: {repeated}")
        return value


def _calendars() -> dict[str, CalendarSettings]:
    workweek = {d: list(OFFICE) for d in DAY_NAMES[:5]}
    return {
        "business": CalendarSettings(hours=workweek, holidays="cn"),
        "24x7": CalendarSettings(always=True),
    }


def _policies() -> dict[str, PolicySettings]:
    # The brief: "故障工单 2 小时内响应,8 小时内解决" and "P0 故障 1 小时内未响应,自动通知运维经理;
    # 4 小时未解决,升级至 IT 负责人". The addresses are placeholders `gateway init` documents.
    team = ["assignee", "group"]
    return {
        "incident-p0": PolicySettings(
            calendar="24x7",
            response_minutes=60,
            resolution_minutes=240,
            escalations=[
                LevelSettings(name="response-warning", percent=80, notify=team),
                LevelSettings(name="response-breach", notify=["ops-manager@example.com"]),
                LevelSettings(
                    name="resolution-breach", target="resolution", notify=["it-head@example.com"]
                ),
            ],
        ),
        "incident": PolicySettings(
            response_minutes=120,
            resolution_minutes=480,
            escalations=[
                LevelSettings(name="response-warning", percent=80, notify=team),
                LevelSettings(name="response-breach", notify=team),
                LevelSettings(name="resolution-breach", target="resolution", notify=team),
            ],
        ),
        "request": PolicySettings(
            response_minutes=240,
            resolution_minutes=1440,
            escalations=[LevelSettings(name="resolution-breach", target="resolution")],
        ),
    }


class SlaSettings(_Section):
    enabled: bool = True
    scan_seconds: float = Field(default=30.0, gt=0)
    batch: int = Field(default=500, ge=1, le=100_000)
    # Extra holiday files (`<set>-<year>.yaml`), relative to the config file; a year here
    # replaces the shipped file of the same name.
    holidays_dir: str = ""
    # Statuses in which the clocks stop: waiting on the requester.
    pause_statuses: list[str] = Field(default_factory=lambda: ["pending"])
    # A ticket counts as "at risk" (metric) when an unmet due time is this close.
    at_risk_minutes: float = Field(default=30.0, gt=0)
    calendars: dict[str, CalendarSettings] = Field(default_factory=_calendars)
    policies: dict[str, PolicySettings] = Field(default_factory=_policies)
    # Which policy a ticket gets (a rule's `sla_policy` wins; then priority, then type).
    by_priority: dict[Priority, str] = Field(default_factory=lambda: {"P0": "incident-p0"})
    by_type: dict[str, str] = Field(
        default_factory=lambda: {"incident": "incident", "request": "request"}
    )

    @model_validator(mode="after")
    def _names(self) -> SlaSettings:
        for name, policy in self.policies.items():
            if policy.calendar not in self.calendars:
                raise ValueError(
                    f"policy {name!r}: unknown calendar {policy.calendar!r}; "
                    f"known: {', '.join(sorted(self.calendars))}"
                )
        for key, name in (*self.by_priority.items(), *self.by_type.items()):
            if name and name not in self.policies:
                raise ValueError(
                    f"{key} maps to unknown policy {name!r}; "
                    f"known: {', '.join(sorted(self.policies))}"
                )
        return self
