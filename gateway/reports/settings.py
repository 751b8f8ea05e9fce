"""`[reports]`: the summary report and the Prometheus gauges refreshed from it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Business time of tickets without an SLA policy is measured on this [sla.calendars.*];
    # "" = `business` when defined, else the first calendar (a config that replaced the
    # built-in calendars keeps starting).
    calendar: str = ""

    def calendar_name(self, defined: list[str]) -> str:
        if self.calendar:
            return self.calendar
        return "business" if "business" in defined or not defined else defined[0]

    top: int = Field(default=10, ge=1, le=100)  # rows in top categories / top CIs
    # The gateway_report_* gauges cover the last `metrics_days`, refreshed this often.
    metrics_days: int = Field(default=30, ge=1, le=366)
    metrics_refresh_seconds: float = Field(default=300.0, ge=0)  # 0 = no gauges
