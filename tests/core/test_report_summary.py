"""The report's arithmetic against a hand-computed fixture (tests/kb/report_fixture.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.config import ConfigError, load_settings
from gateway.reports.query import calendar_lookup, parse_query
from gateway.reports.settings import ReportSettings
from gateway.reports.summary import bucket_of, stats, summarize, to_csv
from tests.kb import report_fixture as fx

ZONE = ZoneInfo("Asia/Shanghai")


def report(**kw) -> dict:
    settings = load_settings(None, require_file=False)
    return summarize(
        fx.ROWS, start=fx.START, end=fx.END, as_of=fx.AS_OF,
        calendar_for=calendar_lookup(settings), zone=ZONE, bucket="month", **kw,
    )  # fmt: skip


def test_figures_match_the_hand_computed_fixture() -> None:
    fx.check(report())


def test_group_by_changes_volume_and_groups_only() -> None:
    by_group = report(group_by="group")
    assert by_group["volume"][0] == {"bucket": "2026-09", "key": "dba", "tickets": 1}
    assert [g["key"] for g in by_group["groups"]] == ["(none)", "dba", "ops", "service-desk"]
    assert by_group["totals"] == fx.EXPECTED["totals"]


def test_nearest_rank_p90() -> None:
    assert stats([]).to_dict() == {"count": 0, "mean_minutes": None, "p90": None}
    assert stats(list(range(1, 11))).p90_minutes == 9
    assert stats(list(range(1, 12))).p90_minutes == 10
    assert stats([5]).p90_minutes == 5


def test_buckets_are_local_days_weeks_months() -> None:
    late = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # Monday 01:00 in Shanghai
    assert bucket_of(late, "day", ZONE) == "2026-11-30"
    assert bucket_of(late, "week", ZONE) == "2026-11-30"
    assert bucket_of(late - (late - late.replace(hour=15)), "week", ZONE) == "2026-11-23"
    assert bucket_of(late, "month", ZONE) == "2026-11"


def test_csv_carries_the_same_figures() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report()))))
    cell = {(r["section"], r["bucket"], r["key"], r["metric"]): r["value"] for r in rows}
    assert cell[("totals", "", "", "respond_p90")] == "180.0"
    assert cell[("volume", "2026-11", "request", "tickets")] == "2"
    assert cell[("sla_group", "", "dba", "response_compliance")] == "0.6667"
    assert cell[("sla_policy", "", "request", "resolution_compliance")] == ""
    assert cell[("top_ci", "", "db-bj-03", "tickets")] == "3"


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"group_by": "colour"}, "group_by must be one of"),
        ({"bucket": "hour"}, "bucket must be one of"),
        ({"start": "yesterday"}, "is not a date"),
        ({"start": "2026-11-20", "end": "2026-11-01"}, "must be before"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "at most"),
    ],
)
def test_bad_parameters_say_why(params: dict, problem: str) -> None:
    settings = load_settings(None, require_file=False)
    with pytest.raises(ValueError, match=problem):
        parse_query(settings, fx.AS_OF, **params)


def test_dates_are_local_days_and_to_is_included() -> None:
    settings = load_settings(None, require_file=False)
    q = parse_query(settings, fx.AS_OF, "2026-11-01", "2026-11-30", "source", "week")
    assert q.start == datetime(2026, 10, 31, 16, tzinfo=UTC)
    assert q.end == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert (q.group_by, q.bucket) == ("source", "week")


def test_the_default_calendar_follows_the_configured_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ReportSettings().calendar_name(["night", "business"]) == "business"
    assert ReportSettings().calendar_name(["night", "day"]) == "night"
    assert ReportSettings(calendar="day").calendar_name(["night", "day"]) == "day"
    monkeypatch.setenv("GATEWAY_REPORTS__CALENDAR", "nowhere")
    with pytest.raises(ConfigError, match=r"reports\.calendar = 'nowhere' is unknown"):
        load_settings(None, require_file=False)
