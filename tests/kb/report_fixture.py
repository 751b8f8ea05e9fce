"""A hand-computed report: six tickets over a weekend and the National Day holiday (国庆节).

Calendar `business`: Mon–Fri 09:00–12:00 and 13:00–18:00 Asia/Shanghai (UTC+8), cn-2026
holidays (2026-10-01..07 off). Times below are UTC; local = UTC+8.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.reports.summary import TicketRow


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


ROWS = [
    # Fri 17:00 → Mon 10:00 local: 60 (Fri 17–18) + 60 (Mon 9–10) = 120 business minutes;
    # resolved Mon 15:00: 60 + 180 (9–12) + 120 (13–15) = 360.
    TicketRow("INC-000001", "incident", "P1", "database", "dba", "smtp",
              utc(2026, 11, 20, 9), utc(2026, 11, 23, 2), utc(2026, 11, 23, 7), "incident",
              utc(2026, 11, 23, 2), utc(2026, 11, 23, 9), "db-bj-03"),
    # Wed 2026-09-30 17:30, the holiday week off, Thu 10-08 09:30: 30 + 30 = 60;
    # resolved 10-08 14:00: 30 + 180 + 60 = 270. Reopened once.
    TicketRow("INC-000002", "incident", "P2", "database", "dba", "alertmanager",
              utc(2026, 9, 30, 9, 30), utc(2026, 10, 8, 1, 30), utc(2026, 10, 8, 6), "incident",
              utc(2026, 10, 8, 2, 30), utc(2026, 10, 8, 9, 30), "db-bj-03", reopened=1),
    # Saturday 10:00 → Mon 09:45: the weekend counts nothing, 45. Resolution still open.
    TicketRow("REQ-000003", "request", "P3", "account", "service-desk", "api",
              utc(2026, 11, 21, 2), utc(2026, 11, 23, 1, 45), None, "request",
              utc(2026, 11, 23, 6), utc(2026, 11, 25, 10)),
    # Never answered: both clocks breached by as_of.
    TicketRow("INC-000004", "incident", "P1", "network", "ops", "smtp",
              utc(2026, 11, 23, 1), None, None, "incident",
              utc(2026, 11, 23, 3), utc(2026, 11, 23, 10), "sw-core-01"),
    # Tue 09:00 → 12:30: 180 (the lunch half hour does not count), late; resolved 16:00: 360.
    TicketRow("INC-000005", "incident", "P2", "database", "dba", "zabbix",
              utc(2026, 11, 24, 1), utc(2026, 11, 24, 4, 30), utc(2026, 11, 24, 8), "incident",
              utc(2026, 11, 24, 3), utc(2026, 11, 24, 10), "db-bj-03"),
    # No SLA policy: measured on [reports] calendar; 10:00 → 10:30 = 30.
    TicketRow("REQ-000006", "request", "P3", None, None, "api",
              utc(2026, 11, 24, 2), utc(2026, 11, 24, 2, 30)),
    # Before the window: left out.
    TicketRow("INC-000007", "incident", "P1", "network", "ops", "smtp",
              utc(2026, 8, 15, 2), utc(2026, 8, 15, 3)),
]  # fmt: skip

START = utc(2026, 8, 31, 16)  # 2026-09-01 local
END = utc(2026, 11, 30, 16)  # 2026-12-01 local
AS_OF = utc(2026, 11, 25, 4)  # Wed 12:00 local


def stats(count: int, mean: float | None, p90: float | None) -> dict:
    return {"count": count, "mean_minutes": mean, "p90": p90}


def clocks(met: int, breached: int, compliance: float | None) -> dict:
    return {"met": met, "breached": breached, "compliance": compliance}


EXPECTED = {
    "totals": {
        "tickets": 6,
        "resolved": 3,
        "reopened": 1,
        "reopen_rate": 0.3333,
        # respond: [30, 45, 60, 120, 180]; p90 nearest rank = 5th
        "respond": stats(5, 87.0, 180.0),
        # resolve: [270, 360, 360]
        "resolve": stats(3, 330.0, 360.0),
    },
    "volume": [
        {"bucket": "2026-09", "key": "incident", "tickets": 1},
        {"bucket": "2026-11", "key": "incident", "tickets": 3},
        {"bucket": "2026-11", "key": "request", "tickets": 2},
    ],
    "groups": [
        {"key": "incident", "tickets": 4, "respond": stats(3, 120.0, 180.0),
         "resolve": stats(3, 330.0, 360.0)},
        {"key": "request", "tickets": 2, "respond": stats(2, 37.5, 45.0),
         "resolve": stats(0, None, None)},
    ],
    "sla": {
        "policy": [
            {"policy": "incident", "response": clocks(2, 2, 0.5),
             "resolution": clocks(3, 1, 0.75)},
            {"policy": "request", "response": clocks(1, 0, 1.0),
             "resolution": clocks(0, 0, None)},
        ],
        "group": [
            {"group": "dba", "response": clocks(2, 1, 0.6667),
             "resolution": clocks(3, 0, 1.0)},
            {"group": "ops", "response": clocks(0, 1, 0.0), "resolution": clocks(0, 1, 0.0)},
            {"group": "service-desk", "response": clocks(1, 0, 1.0),
             "resolution": clocks(0, 0, None)},
        ],
    },
    "top_categories": [
        {"category": "database", "tickets": 3},
        {"category": "account", "tickets": 1},
        {"category": "network", "tickets": 1},
    ],
    "top_cis": [{"ci": "db-bj-03", "tickets": 3}, {"ci": "sw-core-01", "tickets": 1}],
}  # fmt: skip


def check(report: dict) -> None:
    for key, value in EXPECTED.items():
        assert report[key] == value, key
