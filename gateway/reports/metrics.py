"""The report's key figures as Prometheus gauges over the last `[reports] metrics_days`.

A daemon job refreshes them every `metrics_refresh_seconds` (one report query), so a scrape
costs nothing; trends come from Prometheus keeping the history.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta

from prometheus_client import Gauge

from gateway.clock import Clock
from gateway.config import Settings
from gateway.reports.query import calendar_lookup, load_rows
from gateway.reports.summary import GROUP_BY, NONE, summarize
from gateway.storage.db import Database, StoreUnavailable

log = logging.getLogger(__name__)

TICKETS = Gauge(
    "gateway_report_tickets",
    "Tickets created in the report window, by dimension (type, priority, category, group, "
    "source) and its value.",
    ["dimension", "value"],
)
RESPOND = Gauge(
    "gateway_report_response_seconds",
    "Business time from creation to first response in the window: stat = mean | p90.",
    ["stat"],
)
RESOLVE = Gauge(
    "gateway_report_resolution_seconds",
    "Business time from creation to resolution in the window: stat = mean | p90.",
    ["stat"],
)
SLA = Gauge(
    "gateway_report_sla_compliance_ratio",
    "Met / decided SLA clocks in the window, by scope (policy | group), name and target.",
    ["scope", "name", "target"],
)
REOPEN = Gauge("gateway_report_reopen_ratio", "Reopened / resolved tickets in the window.")
TOP_CI = Gauge(
    "gateway_report_ci_tickets", "Tickets in the window per CMDB CI (the top ones).", ["ci"]
)
# Seconds, Prometheus's base unit (`promtool check metrics` refuses _minutes and _days).
WINDOW = Gauge("gateway_report_window_seconds", "How far back the gateway_report_* gauges look.")
REFRESHED = Gauge(
    "gateway_report_refreshed_timestamp_seconds", "When the report gauges were last refreshed."
)
REFRESH_SECONDS = Gauge("gateway_report_refresh_seconds", "Duration of the last refresh.")
_LABELLED = (TICKETS, RESPOND, RESOLVE, SLA, TOP_CI)


class ReportGauges:
    """The refresh job: one read of the window's tickets feeds every gauge."""

    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db, self.settings, self.clock = db, settings, clock

    def run(self) -> None:
        started = time.perf_counter()
        now = self.clock()
        days = self.settings.reports.metrics_days
        start, end = now - timedelta(days=days), now + timedelta(seconds=1)
        try:
            with self.db.unit(readonly=True) as session:
                rows = load_rows(session, start, end)
        except StoreUnavailable as exc:
            log.warning("report gauges not refreshed: %s", exc)
            return
        report = summarize(
            rows,
            start=start,
            end=end,
            as_of=now,
            calendar_for=calendar_lookup(self.settings),
            zone=self.settings.zone,
            top=self.settings.reports.top,
        )
        by_dimension = {d: Counter(getattr(r, d) or NONE for r in rows) for d in GROUP_BY}
        for gauge in _LABELLED:
            gauge.clear()
        for dimension, counts in by_dimension.items():
            for value, n in counts.items():
                TICKETS.labels(dimension, value).set(n)
        totals = report["totals"]
        for gauge, clock in ((RESPOND, "respond"), (RESOLVE, "resolve")):
            for stat, key in (("mean", "mean_minutes"), ("p90", "p90")):
                if totals[clock][key] is not None:
                    gauge.labels(stat).set(totals[clock][key] * 60)
        for scope, entries in report["sla"].items():
            for entry in entries:
                for target in ("response", "resolution"):
                    if entry[target]["compliance"] is not None:
                        SLA.labels(scope, entry[scope], target).set(entry[target]["compliance"])
        REOPEN.set(totals["reopen_rate"] or 0)
        for ci in report["top_cis"]:
            TOP_CI.labels(ci["ci"]).set(ci["tickets"])
        WINDOW.set(days * 86400)
        REFRESHED.set(now.timestamp())
        REFRESH_SECONDS.set(time.perf_counter() - started)
