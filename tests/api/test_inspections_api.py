"""Inspection schedules over the API, checklists ticked by API and by mail, resolve gating,
and the `gateway inspections` CLI, on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway import cli
from gateway.api.app import create_app
from gateway.config import ApiSettings, Settings
from gateway.ingest.inspections import Inspector
from gateway.ingest.mail import mail_to_intake
from gateway.inspections.settings import InspectionSettings
from gateway.intake import Source
from gateway.pipeline import Pipeline, Updated
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.api.test_api import TOKENS, act, auth
from tests.conftest import FrozenClock

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PATROL = {
    "name": "weekly-server-patrol",
    "cron": "0 10 * * 1",
    "template": {
        "subject": "每周服务器巡检 {week}",
        "group": "ops",
        "checklist": ["检查磁盘使用率", {"text": "检查异常登录", "mandatory": False}, "核对 NTP"],
    },
}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture
def setup(settings: Settings, db: Database) -> Iterator[tuple[TestClient, Inspector, FrozenClock]]:
    settings = settings.model_copy(
        update={
            "api": ApiSettings(tokens=TOKENS),
            "inspections": [InspectionSettings.model_validate(PATROL)],
        }
    )
    clock = FrozenClock(local("2026-11-30 09:00"))  # a Monday
    rules = RulesHolder(RULES)
    pipeline = Pipeline(db, settings, rules.classify, clock)
    app = create_app(settings, db, pipeline, clock=clock)
    with TestClient(app) as client:
        yield client, Inspector(pipeline), clock


def patrol_ticket(inspector: Inspector, clock: FrozenClock) -> str:
    inspector.run_once()  # armed at 09:00
    clock.now = local("2026-11-30 10:00:15")
    (fired,) = inspector.run_once()
    assert fired.key is not None
    return fired.key


def tick(client: TestClient, who: str, key: str, n: int, **body):
    return client.post(f"/api/v1/tickets/{key}/checklist/{n}", json=body, headers=auth(who))


def test_resolve_waits_for_the_mandatory_items_ticked_through_the_api(setup) -> None:
    client, inspector, clock = setup
    key = patrol_ticket(inspector, clock)
    t = client.get(f"/api/v1/tickets/{key}", headers=auth("olga")).json()
    assert t["type"] == "inspection" and t["source"] == "inspection"
    assert [(i["n"], i["text"], i["mandatory"], i["done"]) for i in t["checklist"]] == [
        (1, "检查磁盘使用率", True, False),
        (2, "检查异常登录", False, False),
        (3, "核对 NTP", True, False),
    ]
    assert act(client, "olga", key, action="start").status_code == 200

    r = act(client, "olga", key, action="resolve")
    assert r.status_code == 409
    assert r.json()["error"] == "refused"
    assert "1. 检查磁盘使用率" in r.json()["message"] and "3. 核对 NTP" in r.json()["message"]
    assert "2. 检查异常登录" not in r.json()["message"]

    r = tick(client, "olga", key, 1, note="最高 71%")
    assert r.status_code == 200
    item = r.json()["checklist"][0]
    assert (item["done"], item["done_by"], item["note"]) == (True, "olga@example.com", "最高 71%")
    # An admin cannot skip the checklist either.
    r = act(client, "root", key, action="resolve")
    assert r.status_code == 409 and "3. 核对 NTP" in r.json()["message"]

    assert tick(client, "olga", key, 3).status_code == 200
    assert tick(client, "olga", key, 3).status_code == 200  # again: no change, no new event
    assert tick(client, "olga", key, 1, done=False).status_code == 200
    assert act(client, "olga", key, action="resolve").status_code == 409
    assert tick(client, "olga", key, 1).status_code == 200
    r = act(client, "olga", key, action="resolve")
    assert r.status_code == 200 and r.json()["status"] == "resolved"

    # Once resolved the record stands; reopening allows changes again.
    r = tick(client, "olga", key, 2)
    assert r.status_code == 409 and "reopen" in r.json()["message"]
    events = client.get(f"/api/v1/tickets/{key}/events", headers=auth("olga")).json()["events"]
    notes = [e["note"] for e in events if e["kind"] == "checklist"]
    assert notes == [
        "ticked 1. 检查磁盘使用率: 最高 71%",
        "ticked 3. 核对 NTP",
        "unticked 1. 检查磁盘使用率",
        "ticked 1. 检查磁盘使用率",
    ]


def test_checklist_route_errors(setup) -> None:
    client, inspector, clock = setup
    key = patrol_ticket(inspector, clock)
    r = tick(client, "olga", key, 9)
    assert r.status_code == 404 and "items 1 to 3" in r.json()["message"]
    assert tick(client, "alice", key, 1).status_code == 403
    assert tick(client, "mgr", key, 1).status_code == 403
    assert tick(client, "olga", "INS-999999", 1).status_code == 404
    assert tick(client, "olga", key, 1, done="maybe").status_code == 400
    plain = client.post("/api/v1/tickets", json={"subject": "VPN"}, headers=auth("alice")).json()
    r = tick(client, "olga", plain["key"], 1)
    assert r.status_code == 404 and "no checklist" in r.json()["message"]
    assert plain["checklist"] == []


def reply(settings: Settings, pipeline: Pipeline, key: str, text: str, n: int):
    msg = EmailMessage()
    msg["From"], msg["To"] = "olga@example.com", "support@example.com"
    msg["Subject"] = f"Re: [{key}] 每周服务器巡检"
    msg["Message-ID"] = f"<check-{n}@example.com>"
    msg.set_content(text)
    mail = mail_to_intake(msg.as_bytes(), Source.SMTP, settings, envelope_from="olga@example.com")
    return pipeline.process(mail.intake, mail.raw)


def test_checklist_by_mail_commands(setup, db: Database) -> None:
    _, inspector, clock = setup
    key = patrol_ticket(inspector, clock)
    pipeline = inspector.pipeline
    settings = pipeline.settings
    out = reply(settings, pipeline, key, "#start\n#check 1 磁盘均低于 80%\n#check ntp\n#resolve", 1)
    assert out == Updated(key)
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        assert [(i.done, i.note) for i in t.checklist] == [
            (True, "磁盘均低于 80%"),
            (False, ""),
            (True, ""),  # found by its text: "核对 NTP"
        ]
        assert t.status == "resolved"

    # Refusals are journalled with the command's line and reason.
    clock.now = local("2026-12-07 10:00:05")
    (fired,) = inspector.run_once()
    reply(settings, pipeline, fired.key, "#start\n#check 7\n#check 检\n#resolve", 2)
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == fired.key)).one()
        assert t.status == "in_progress"
        refused = [e.note for e in t.events if e.kind == "refused"]
    assert refused[0] == "#check (line 2) refused: no checklist item 7 (items are 1 to 3)"
    assert refused[1] == "#check (line 3) refused: '检' matches items 1, 2; use the number"
    assert refused[2].startswith("#resolve (line 4) refused: mandatory checklist items")


def test_schedules_through_the_api(setup) -> None:
    client, inspector, clock = setup
    body = {
        "name": "monthly-vulnerability-scan",
        "cron": "0 10 1 * *",
        "template": {"subject": "每月漏洞扫描 {month}", "priority": "P2", "checklist": ["扫描"]},
    }
    assert client.post("/api/v1/inspections", json=body, headers=auth("olga")).status_code == 403
    r = client.post("/api/v1/inspections", json=body, headers=auth("root"))
    assert r.status_code == 201, r.text
    assert (r.json()["origin"], r.json()["created_by"]) == ("api", "root@example.com")
    assert r.json()["next_fire"] == "2026-12-01T10:00:00+08:00"
    assert r.json()["last_fire"] == "2026-11-30T09:00:00+08:00"  # armed when created
    r = client.post("/api/v1/inspections", json=body, headers=auth("root"))
    assert r.status_code == 200  # the same name again replaces it

    listed = client.get("/api/v1/inspections", headers=auth("olga")).json()["inspections"]
    assert [(i["name"], i["origin"]) for i in listed] == [
        ("weekly-server-patrol", "config"),
        ("monthly-vulnerability-scan", "api"),
    ]
    assert client.get("/api/v1/inspections", headers=auth("alice")).status_code == 403

    clock.now = local("2026-12-01 10:00:30")
    fired = inspector.run_once()
    assert [(f.schedule, f.status) for f in fired] == [("monthly-vulnerability-scan", "created")]
    t = client.get(f"/api/v1/tickets/{fired[0].key}", headers=auth("olga")).json()
    assert (t["subject"], t["priority"]) == ("每月漏洞扫描 2026-12", "P2")

    clash = body | {"name": "weekly-server-patrol"}
    r = client.post("/api/v1/inspections", json=clash, headers=auth("root"))
    assert r.status_code == 409 and "config file" in r.json()["message"]
    r = client.post("/api/v1/inspections", json=body | {"cron": "0 25 * * *"}, headers=auth("root"))
    assert r.status_code == 400
    assert "bad cron '0 25 * * *'" in str(r.json()["problems"])
    r = client.post(
        "/api/v1/inspections",
        json=body | {"working_days_only": True, "calendar": "nope"},
        headers=auth("root"),
    )
    assert r.status_code == 400 and "nope" in r.json()["message"]

    r = client.delete("/api/v1/inspections/weekly-server-patrol", headers=auth("root"))
    assert r.status_code == 409
    assert client.delete("/api/v1/inspections/x", headers=auth("root")).status_code == 404
    path = "/api/v1/inspections/monthly-vulnerability-scan"
    assert client.delete(path, headers=auth("olga")).status_code == 403
    assert client.delete(path, headers=auth("root")).json() == {
        "deleted": "monthly-vulnerability-scan"
    }
    clock.now = local("2027-01-01 10:00:30")
    # The deleted schedule is gone; the config one catches up on the Mondays it missed.
    assert [(f.schedule, f.status) for f in inspector.run_once()] == [
        ("weekly-server-patrol", "catch_up")
    ]


def test_cli_lists_schedules_and_runs_one_by_hand(
    settings: Settings, db: Database, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[database]
url = "{settings.database.url}"
[rules]
path = "{RULES}"
[[inspections]]
name = "daily-backup-check"
cron = "0 9 * * 1-5"
working_days_only = true
[inspections.template]
subject = "每日备份检查 {{date}}"
checklist = ["确认备份成功"]
""",
        encoding="utf-8",
    )
    assert cli.main(["inspections", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "daily-backup-check  (config)" in out
    assert "0 9 * * 1-5 on working days (business), Asia/Shanghai" in out
    assert cli.main(["inspections", "run", "daily-backup-check", "--config", str(config)]) == 0
    assert "daily-backup-check: INS-000001 created" in capsys.readouterr().out
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket)).one()
        assert t.subject.startswith("每日备份检查 ") and len(t.checklist) == 1
    assert cli.main(["tickets", "show", "INS-000001", "--config", str(config)]) == 0
    assert "  [ ] 1. 确认备份成功" in capsys.readouterr().out
    assert cli.main(["inspections", "run", "nope", "--config", str(config)]) == 1
    assert "no inspection 'nope'" in capsys.readouterr().err
    assert cli.main(["inspections", "list", "--json", "--config", str(config)]) == 0
    assert '"origin": "config"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/inspections"),
        ("post", "/api/v1/inspections"),
        ("delete", "/api/v1/inspections/weekly-server-patrol"),
        ("post", "/api/v1/tickets/INS-000001/checklist/1"),
    ],
)
def test_inspection_routes_need_a_valid_token(setup, method: str, path: str) -> None:
    client = setup[0]
    r = client.request(method, path, headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
