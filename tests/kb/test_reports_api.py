"""GET /api/v1/reports/summary and `gateway report` over tickets stored on both databases."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from gateway.api.app import create_app
from gateway.config import ApiSettings, Settings
from gateway.pipeline import Pipeline
from gateway.reports.metrics import ReportGauges
from gateway.reports.settings import ReportSettings
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket, TicketEvent
from tests.api.test_api import DEFAULT_RULES, TOKENS, auth
from tests.conftest import FrozenClock
from tests.kb import report_fixture as fx

PERIOD = {"from": "2026-09-01", "to": "2026-11-30", "group_by": "type", "bucket": "month"}


def store_fixture(db: Database) -> None:
    with db.unit() as session:
        for row in fx.ROWS:
            ticket = Ticket(
                key=row.key, type=row.type, priority=row.priority, status="in_progress",
                subject=row.key, description="", requester="a@example.com", requester_name="",
                category=row.category, group=row.group, source=row.source, tags=[],
                participants=[], labels={"cmdb.name": row.ci} if row.ci else {},
                occurrences=1, approvers=[], approvals=[], sla_policy=row.sla_policy,
                response_due=row.response_due, resolution_due=row.resolution_due,
                responded_at=row.responded_at, resolved_at=row.resolved_at, breached=False,
                sla_pinned=False, created_at=row.created_at, updated_at=row.created_at,
            )  # fmt: skip
            session.add(ticket)
            for _ in range(row.reopened):
                session.add(
                    TicketEvent(
                        ticket=ticket, at=row.created_at, actor="x", channel="api",
                        kind="action.reopen", before={}, after={"status": "reopened"},
                        note="", public=True,
                    )
                )  # fmt: skip


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"api": ApiSettings(tokens=TOKENS)})
    clock = FrozenClock(fx.AS_OF)
    pipeline = Pipeline(db, settings, RulesHolder(DEFAULT_RULES).classify, clock)
    store_fixture(db)
    with TestClient(create_app(settings, db, pipeline, clock=clock)) as c:
        yield c


def test_summary_matches_the_hand_computed_fixture(client: TestClient) -> None:
    r = client.get("/api/v1/reports/summary", params=PERIOD, headers=auth("olga"))
    assert r.status_code == 200, r.text
    fx.check(r.json())


def test_csv(client: TestClient) -> None:
    r = client.get(
        "/api/v1/reports/summary", params=PERIOD | {"format": "csv"}, headers=auth("root")
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    cell = {(x["section"], x["bucket"], x["key"], x["metric"]): x["value"] for x in rows}
    assert cell[("totals", "", "", "reopen_rate")] == "0.3333"
    assert cell[("sla_policy", "", "incident", "resolution_compliance")] == "0.75"


def test_roles_and_bad_parameters(client: TestClient) -> None:
    url = "/api/v1/reports/summary"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=auth("alice")).status_code == 403
    assert client.get(url, headers=auth("mgr")).status_code == 200
    r = client.get(url, params={"group_by": "colour"}, headers=auth("olga"))
    assert r.status_code == 422 and "group_by must be one of" in r.json()["message"]
    r = client.get(url, params={"from": "2026-12-01", "to": "2026-11-01"}, headers=auth("olga"))
    assert r.status_code == 422 and "before" in r.json()["message"]
    r = client.get(url, params={"format": "xml"}, headers=auth("olga"))
    assert r.status_code == 400


def test_cli_report(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n', encoding="utf-8")
    base = [sys.executable, "-m", "gateway.cli", "report", "--config", str(config)]
    period = ["--from", "2026-09-01", "--to", "2026-11-30", "--bucket", "month"]
    out = subprocess.run([*base, *period], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # Run now, not at the fixture's as_of: only the open clocks may differ.
    assert report["volume"] == fx.EXPECTED["volume"]
    assert report["totals"]["respond"] == fx.EXPECTED["totals"]["respond"]
    assert report["top_cis"] == fx.EXPECTED["top_cis"]
    out = subprocess.run([*base, *period, "--format", "csv"], capture_output=True, text=True)
    assert out.stdout.startswith("section,bucket,key,metric,value\n")
    bad = subprocess.run([*base, "--from", "someday"], capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a date" in bad.stderr


def test_gauges_carry_the_key_figures(client: TestClient, settings: Settings, db: Database) -> None:
    settings = settings.model_copy(
        update={"reports": ReportSettings(metrics_days=120)}  # back to 2026-07-28
    )
    ReportGauges(db, settings, FrozenClock(fx.AS_OF)).run()

    def value(metric: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(metric, labels)

    assert value("gateway_report_tickets", dimension="type", value="incident") == 5
    assert value("gateway_report_tickets", dimension="group", value="(none)") == 1
    assert value("gateway_report_tickets", dimension="source", value="zabbix") == 1
    assert value("gateway_report_response_seconds", stat="p90") == 180.0 * 60
    assert value("gateway_report_resolution_seconds", stat="mean") == 330.0 * 60
    compliance = "gateway_report_sla_compliance_ratio"
    assert value(compliance, scope="policy", name="incident", target="resolution") == 0.75
    assert value(compliance, scope="group", name="dba", target="response") == 0.6667
    assert value("gateway_report_ci_tickets", ci="db-bj-03") == 3
    assert value("gateway_report_window_seconds") == 120 * 86400
