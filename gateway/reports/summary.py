"""The summary report as pure functions over ticket rows (tests/core/test_report_summary.py).

Definitions (README "Reports"):
- a ticket is in the report when it was created in [start, end);
- time to respond: business time from creation to the first agent response (`responded_at`);
  time to resolve: business time from creation to the latest resolution (`resolved_at`),
  waiting on the requester included; both on the ticket's SLA policy's calendar, else on
  `[reports] calendar`; p90 is the nearest-rank percentile;
- SLA compliance counts each clock once it is decided: met when the response (resolution)
  came at or before its stored due time, breached when it came later or has not come and the
  due time has passed by `as_of`; open clocks count neither way;
- reopen rate: tickets reopened at least once / tickets resolved at least once.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.sla.calendar import Calendar, business_between

GROUP_BY = ("type", "priority", "category", "group", "source")
BUCKETS = ("day", "week", "month")
GroupBy = Literal["type", "priority", "category", "group", "source"]
Bucket = Literal["day", "week", "month"]
NONE = "(none)"


@dataclass(frozen=True)
class TicketRow:
    """What the report needs of one ticket (gateway/reports/query.py reads them)."""

    key: str
    type: str
    priority: str
    category: str | None
    group: str | None
    source: str
    created_at: datetime
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    sla_policy: str | None = None
    response_due: datetime | None = None
    resolution_due: datetime | None = None
    ci: str | None = None  # the CMDB CI name from enrichment (label cmdb.name)
    reopened: int = 0  # reopen actions in the journal


@dataclass(frozen=True)
class Stats:
    count: int
    mean_minutes: float | None
    p90_minutes: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean_minutes": self.mean_minutes, "p90": self.p90_minutes}


def stats(minutes: Sequence[float]) -> Stats:
    """Count, mean and nearest-rank 90th percentile, rounded to 0.01 minute."""
    if not minutes:
        return Stats(0, None, None)
    ordered = sorted(minutes)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    return Stats(len(ordered), round(sum(ordered) / len(ordered), 2), round(p90, 2))


def bucket_of(at: datetime, bucket: Bucket, zone: ZoneInfo) -> str:
    """The period a time falls in, in the report's zone: 2026-11-25, the week's Monday, 2026-11."""
    day = at.astimezone(zone).date()
    if bucket == "day":
        return day.isoformat()
    if bucket == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


def minutes_between(cal: Calendar, a: datetime, b: datetime | None) -> float | None:
    if b is None:
        return None
    return business_between(cal, a, b).total_seconds() / 60


def sla_outcome(due: datetime | None, done: datetime | None, as_of: datetime) -> str | None:
    """ "met", "breached", or None while the clock is still open (or has no due time)."""
    if due is None:
        return None
    if done is not None:
        return "met" if done <= due else "breached"
    return "breached" if due <= as_of else None


@dataclass
class _Tally:
    met: int = 0
    breached: int = 0

    def add(self, outcome: str | None) -> None:
        if outcome == "met":
            self.met += 1
        elif outcome == "breached":
            self.breached += 1

    def to_dict(self) -> dict[str, Any]:
        decided = self.met + self.breached
        rate = round(self.met / decided, 4) if decided else None
        return {"met": self.met, "breached": self.breached, "compliance": rate}


def summarize(
    rows: Iterable[TicketRow],
    *,
    start: datetime,
    end: datetime,
    as_of: datetime,
    calendar_for: Callable[[TicketRow], Calendar],
    zone: ZoneInfo,
    group_by: GroupBy = "type",
    bucket: Bucket = "day",
    top: int = 10,
) -> dict[str, Any]:
    """The whole report as a JSON-ready dict."""
    rows = [r for r in rows if start <= r.created_at < end]
    volume: Counter[tuple[str, str]] = Counter()
    respond: dict[str, list[float]] = defaultdict(list)
    resolve: dict[str, list[float]] = defaultdict(list)
    tickets: Counter[str] = Counter()
    sla: dict[str, dict[str, dict[str, _Tally]]] = {"policy": {}, "group": {}}
    for row in rows:
        key = getattr(row, group_by) or NONE
        tickets[key] += 1
        volume[(bucket_of(row.created_at, bucket, zone), key)] += 1
        cal = calendar_for(row)
        for into, done in ((respond, row.responded_at), (resolve, row.resolved_at)):
            value = minutes_between(cal, row.created_at, done)
            if value is not None:
                into[key].append(value)
                into[""].append(value)  # "" = every ticket
        if row.sla_policy:
            outcomes = {
                "response": sla_outcome(row.response_due, row.responded_at, as_of),
                "resolution": sla_outcome(row.resolution_due, row.resolved_at, as_of),
            }
            for scope, name in (("policy", row.sla_policy), ("group", row.group or NONE)):
                clocks = sla[scope].setdefault(name, {"response": _Tally(), "resolution": _Tally()})
                for target, outcome in outcomes.items():
                    clocks[target].add(outcome)
    resolved = sum(1 for r in rows if r.resolved_at is not None or r.reopened)
    reopened = sum(1 for r in rows if r.reopened)
    categories = Counter(r.category for r in rows if r.category)
    cis = Counter(r.ci for r in rows if r.ci)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "as_of": as_of.isoformat(),
        "timezone": zone.key,
        "group_by": group_by,
        "bucket": bucket,
        "totals": {
            "tickets": len(rows),
            "resolved": resolved,
            "reopened": reopened,
            "reopen_rate": round(reopened / resolved, 4) if resolved else None,
            "respond": stats(respond[""]).to_dict(),
            "resolve": stats(resolve[""]).to_dict(),
        },
        "volume": [{"bucket": b, "key": k, "tickets": n} for (b, k), n in sorted(volume.items())],
        "groups": [
            {
                "key": key,
                "tickets": n,
                "respond": stats(respond[key]).to_dict(),
                "resolve": stats(resolve[key]).to_dict(),
            }
            for key, n in sorted(tickets.items())
        ],
        "sla": {
            scope: [
                {scope: name} | {t: tally.to_dict() for t, tally in clocks.items()}
                for name, clocks in sorted(by.items())
            ]
            for scope, by in sla.items()
        },
        "top_categories": [{"category": c, "tickets": n} for c, n in _top(categories, top)],
        "top_cis": [{"ci": c, "tickets": n} for c, n in _top(cis, top)],
    }


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    # Ties by name, so the same data always gives the same list.
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


CSV_HEADER = ("section", "bucket", "key", "metric", "value")


def to_csv(report: dict[str, Any]) -> str:
    """The report as one long table: section, bucket, key, metric, value."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_HEADER)
    totals = report["totals"]
    for metric in ("tickets", "resolved", "reopened", "reopen_rate"):
        w.writerow(("totals", "", "", metric, _cell(totals[metric])))
    for clock in ("respond", "resolve"):
        for metric, value in totals[clock].items():
            w.writerow(("totals", "", "", f"{clock}_{metric}", _cell(value)))
    for v in report["volume"]:
        w.writerow(("volume", v["bucket"], v["key"], "tickets", v["tickets"]))
    for g in report["groups"]:
        w.writerow(("group", "", g["key"], "tickets", g["tickets"]))
        for clock in ("respond", "resolve"):
            for metric, value in g[clock].items():
                w.writerow(("group", "", g["key"], f"{clock}_{metric}", _cell(value)))
    for scope, entries in report["sla"].items():
        for entry in entries:
            for target in ("response", "resolution"):
                for metric, value in entry[target].items():
                    w.writerow(
                        (f"sla_{scope}", "", entry[scope], f"{target}_{metric}", _cell(value))
                    )
    for c in report["top_categories"]:
        w.writerow(("top_category", "", c["category"], "tickets", c["tickets"]))
    for c in report["top_cis"]:
        w.writerow(("top_ci", "", c["ci"], "tickets", c["tickets"]))
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def parse_period(text: str | None, zone: ZoneInfo, *, end: bool = False) -> datetime | None:
    """YYYY-MM-DD (local midnight; as `to`, the day is included) or an ISO time with zone.

    Raises ValueError with a sentence for anything else.
    """
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(
                day + timedelta(days=1 if end else 0), datetime.min.time(), zone
            )
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)
