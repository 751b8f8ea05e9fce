"""The webhooks through the HTTP app over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import AlertmanagerSource, GenericSource, Settings
from gateway.storage.db import Database
from gateway.storage.models import Alert, RawMessage
from tests.conftest import SHARED, FrozenClock
from tests.core.test_alert_lifecycle import zabbix_event
from tests.ingest.alerting import (
    TOKEN,
    am_alert,
    am_body,
    auth,
    journal,
    make_client,
    post_am,
    tickets,
    webhook_settings,
)

CORPUS = SHARED / "corpus" / "alerts"


def samples(folder: str) -> list[Path]:
    found = sorted(
        p for p in (CORPUS / folder).glob("*.json") if not p.name.endswith(".expected.json")
    )
    # A missing corpus must fail the run, not shrink it to nothing.
    assert found, f"no corpus samples in {CORPUS / folder}"
    return found


def test_lifecycle_create_repeat_resolve_reopen_and_relink(
    settings: Settings, db: Database, clock: FrozenClock
) -> None:
    client = make_client(webhook_settings(settings), db, clock)
    r = post_am(client, am_body(am_alert("f1")))
    assert r.status_code == 200
    (first,) = r.json()["alerts"]
    assert first == {
        "fingerprint": "f1",
        "status": "firing",
        "outcome": "created",
        "ticket": "INC-000001",
    }
    (ticket,) = tickets(db)
    assert (ticket.type, ticket.priority, ticket.source, ticket.status) == (
        "incident",
        "P0",
        "alertmanager",
        "new",
    )
    assert ticket.subject == "HighCPU on db-01" and ticket.labels["host"] == "db-01"
    created_rows = len(journal(db, "INC-000001"))

    clock.now += timedelta(minutes=1)
    for _ in range(3):
        r = post_am(client, am_body(am_alert("f1")))
        assert r.json()["alerts"][0]["outcome"] == "occurrence"
    (ticket,) = tickets(db)
    assert ticket.occurrences == 4 and ticket.last_seen == clock.now
    assert len(journal(db, "INC-000001")) == created_rows  # repeats add no journal rows

    resolved = am_alert("f1", status="resolved", ends="2026-11-25T09:00:30Z")
    assert post_am(client, am_body(resolved)).json()["alerts"][0]["outcome"] == "resolved"
    (ticket,) = tickets(db)
    assert ticket.status == "resolved"
    assert ticket.resolved_at.isoformat() == "2026-11-25T09:00:30+00:00"  # the recovery time
    # A redelivered recovery changes nothing.
    assert post_am(client, am_body(resolved)).json()["alerts"][0]["outcome"] == "ignored"

    clock.now += timedelta(minutes=30)
    assert post_am(client, am_body(am_alert("f1"))).json()["alerts"][0]["outcome"] == "reopened"
    (ticket,) = tickets(db)
    assert ticket.status == "reopened" and ticket.occurrences == 5
    assert [e.kind for e in journal(db, "INC-000001")][-2:] == ["action.resolve", "action.reopen"]

    post_am(client, am_body(am_alert("f1", status="resolved", ends="2026-11-25T09:31:00Z")))
    clock.now += timedelta(hours=2)
    r = post_am(client, am_body(am_alert("f1")))
    assert r.json()["alerts"][0] == {
        "fingerprint": "f1", "status": "firing", "outcome": "created", "ticket": "INC-000002",
    }  # fmt: skip
    old, new = tickets(db)
    assert new.parent_id == old.id and new.status == "new" and old.status == "resolved"
    assert journal(db, "INC-000001")[-1].kind == "linked"
    with db.unit(readonly=True) as s:
        (ledger,) = s.scalars(select(Alert))
        assert (ledger.ticket_id, ledger.status) == (new.id, "firing")


def test_resolve_action_comment_keeps_ticket_open(settings: Settings, db: Database) -> None:
    hooks = webhook_settings(
        settings, alertmanager=AlertmanagerSource(token=TOKEN, resolve_action="comment")
    )
    client = make_client(hooks, db)
    post_am(client, am_body(am_alert("f1")))
    r = post_am(client, am_body(am_alert("f1", status="resolved", ends="2026-11-25T09:00:30Z")))
    assert r.json()["alerts"][0]["outcome"] == "commented"
    (ticket,) = tickets(db)
    assert ticket.status == "new"
    assert "alert recovered at 2026-11-25 09:00:30" in journal(db, ticket.key)[-1].note


def test_grouping_puts_alerts_of_one_group_in_one_ticket(settings: Settings, db: Database) -> None:
    hooks = webhook_settings(
        settings, alertmanager=AlertmanagerSource(token=TOKEN, group_by=["alertname", "cluster"])
    )
    client = make_client(hooks, db)
    body = am_body(
        am_alert("a", cluster="c1"), am_alert("b", cluster="c1"), am_alert("c", cluster="c2")
    )
    outcomes = [a["outcome"] for a in post_am(client, body).json()["alerts"]]
    assert outcomes == ["created", "occurrence", "created"]
    assert [t.occurrences for t in tickets(db)] == [2, 1]
    # One alert of c1 recovered while the other fires: the group stays open.
    post_am(
        client, am_body(am_alert("a", status="resolved", cluster="c1"), am_alert("b", cluster="c1"))
    )
    assert tickets(db)[0].status == "new"
    post_am(
        client,
        am_body(
            am_alert("a", status="resolved", cluster="c1"),
            am_alert("b", status="resolved", cluster="c1"),
        ),
    )
    assert [t.status for t in tickets(db)] == ["resolved", "new"]


def test_rules_refine_the_severity_priority(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.pipeline import Pipeline
    from gateway.rules.holder import RulesHolder

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n"
        "  payments-oncall: {strategy: none, members: []}\n"
        "rules:\n"
        "  - name: payments\n"
        "    when: {fields: [labels.team], equals: [payments]}\n"
        "    then: {priority: P0, group: payments-oncall}\n"
        "  - name: runbook\n"
        "    when: {fields: [annotations.runbook], any: [dba]}\n"
        "    then: {category: database}\n"
    )
    hooks = webhook_settings(settings)
    client = TestClient(create_app(hooks, db, Pipeline(db, hooks, RulesHolder(rules).classify)))
    warning = am_alert("w1", severity="warning")
    paid = am_alert("w2", severity="warning", team="payments")
    runbook = am_alert("w3", severity="warning")
    runbook["annotations"]["runbook"] = "https://wiki/dba/disk"
    post_am(client, am_body(warning, paid, runbook))
    plain, refined, categorised = tickets(db)
    assert (plain.priority, plain.type) == ("P2", "incident")  # severity map, not the default
    assert (refined.priority, refined.group) == ("P0", "payments-oncall")
    assert (categorised.priority, categorised.category) == ("P2", "database")


def zabbix_post(client, body: dict, headers: dict[str, str] | None = None):
    return client.post("/webhooks/zabbix", content=json.dumps(body), headers=headers or auth())


def test_zabbix_problem_update_recovery(settings: Settings, db: Database) -> None:
    client = make_client(webhook_settings(settings), db)
    r = zabbix_post(client, zabbix_event())
    assert r.status_code == 200 and r.json()["alerts"][0]["ticket"] == "INC-000001"
    (ticket,) = tickets(db)
    assert (ticket.priority, ticket.fingerprint, ticket.labels["host"]) == ("P1", "4711", "db-01")
    assert ticket.labels["service"] == "mysql"
    update = zabbix_event(
        event_update_status="1",
        update_message="restarting mysqld",
        update_user="Olga Ops",
        update_action="commented",
    )
    assert zabbix_post(client, update).json()["alerts"][0]["outcome"] == "commented"
    assert journal(db, "INC-000001")[-1].note == "Olga Ops: commented: restarting mysqld"
    recovery = zabbix_event(event_value="0", recovery_event_id="4790")
    assert zabbix_post(client, recovery).json()["alerts"][0]["outcome"] == "resolved"
    assert tickets(db)[0].status == "resolved"
    # A new problem of the same trigger is a new event id: a new ticket.
    assert (
        zabbix_post(client, zabbix_event(event_id="4800")).json()["alerts"][0]["ticket"]
        == "INC-000002"
    )


@pytest.mark.parametrize("sample", samples("zabbix"), ids=lambda p: p.stem)
def test_zabbix_corpus(sample: Path, settings: Settings, db: Database, tmp_path: Path) -> None:
    expected = json.loads(sample.with_name(sample.stem + ".expected.json").read_text())
    no_rules = tmp_path / "rules.yaml"
    no_rules.write_text("rules: []\n")  # the priority below is the severity map's alone
    client = make_client(webhook_settings(settings), db, rules=no_rules)
    r = client.post("/webhooks/zabbix", content=sample.read_bytes(), headers=auth())
    if not expected["valid"]:
        assert r.status_code == 400 and r.json()["field"] == "hostname"
        with db.unit(readonly=True) as s:
            (kept,) = s.scalars(select(RawMessage))
            assert kept.data == sample.read_bytes() and kept.status == "quarantined"
        return
    assert r.status_code == 200
    (outcome,) = r.json()["alerts"]
    if expected["status"] == "OK":
        assert outcome["outcome"] == "ignored"  # a recovery of a problem we never saw
        return
    (ticket,) = tickets(db)
    assert ticket.labels["host"] == expected["host"]
    assert ticket.labels["severity"] == expected["severity"]
    level = expected["severity_level"]  # 0 Not classified .. 5 Disaster
    assert ticket.priority == {5: "P0", 4: "P1", 3: "P2"}.get(level, "P3")


def test_zabbix_corpus_problem_then_ok_resolves(settings: Settings, db: Database) -> None:
    client = make_client(webhook_settings(settings), db)
    for name in ("zulip--zabbix_alert.json", "zulip--zabbix_ok.json"):
        r = client.post(
            "/webhooks/zabbix", content=(CORPUS / "zabbix" / name).read_bytes(), headers=auth()
        )
        assert r.status_code == 200
    (ticket,) = tickets(db)
    assert ticket.status == "resolved"


def test_generic_source(settings: Settings, db: Database) -> None:
    mapping = GenericSource(
        username="grafana", password="s3cret", alerts="/alerts", fingerprint="/fingerprint",
        status="/status", summary="/annotations/summary", severity="/labels/severity",
        labels="/labels",
    )  # fmt: skip
    client = make_client(webhook_settings(settings, generic={"grafana": mapping}), db)
    basic = {"Authorization": "Basic " + base64.b64encode(b"grafana:s3cret").decode()}
    body = {
        "alerts": [
            {
                "fingerprint": "g1",
                "status": "firing",
                "labels": {"severity": "high"},
                "annotations": {"summary": "Queue stuck"},
            }
        ]
    }
    r = client.post("/webhooks/generic/grafana", json=body, headers=basic)
    assert r.status_code == 200, r.text
    (ticket,) = tickets(db)
    assert (ticket.source, ticket.subject, ticket.priority, ticket.fingerprint) == (
        "generic",
        "Queue stuck",
        "P1",
        "grafana/g1",
    )
    body["alerts"][0]["status"] = "resolved"
    assert (
        client.post("/webhooks/generic/grafana", json=body, headers=basic).json()["alerts"][0][
            "outcome"
        ]
        == "resolved"
    )
    assert client.post("/webhooks/generic/nope", json=body, headers=basic).status_code == 404
    r = client.post("/webhooks/generic/grafana", json={"alerts": [{}]}, headers=basic)
    assert r.status_code == 400 and r.json()["field"] == "/alerts/0/fingerprint"


def test_auth(settings: Settings, db: Database) -> None:
    hooks = webhook_settings(
        settings, alertmanager=AlertmanagerSource(token=TOKEN, username="am", password="pw")
    )
    client = make_client(hooks, db)
    body = am_body(am_alert("f1"))

    def basic(user: bytes, password: bytes) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}

    for headers in (
        {},
        auth("wrong-token"),
        {"Authorization": TOKEN},
        basic(b"am", b"nope"),
        basic(b"x", b"pw"),
        {"Authorization": "Basic %%%"},
    ):
        r = client.post("/webhooks/alertmanager", content=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert tickets(db) == []
    assert post_am(client, body, auth()).status_code == 200
    assert post_am(client, body, basic(b"am", b"pw")).status_code == 200
    # Zabbix has its own token.
    assert zabbix_post(client, zabbix_event(), auth("am-token-wrong")).status_code == 401


def test_no_token_means_open_with_a_warning(settings: Settings, db: Database, caplog) -> None:
    hooks = webhook_settings(settings, alertmanager=AlertmanagerSource())
    client = make_client(hooks, db)
    assert "webhook alertmanager has no token" in caplog.text
    assert "webhook zabbix" not in caplog.text
    assert client.post("/webhooks/alertmanager", content=am_body(am_alert("f1"))).status_code == 200


def test_malformed_bodies_are_400_naming_the_field_and_kept(
    settings: Settings, db: Database
) -> None:
    client = make_client(webhook_settings(settings), db)
    cases = [
        (b"{oops", ""),
        (
            json.dumps({"alerts": [{"labels": {"severity": 5}}]}).encode(),
            "alerts.0.labels.severity",
        ),
        (json.dumps({"version": "4"}).encode(), "alerts"),
    ]
    for body, field in cases:
        r = post_am(client, body)
        assert r.status_code == 400 and r.json()["error"] == "invalid"
        assert r.json()["field"] == field and field in r.json()["message"]
    with db.unit(readonly=True) as s:
        kept = list(s.scalars(select(RawMessage).order_by(RawMessage.id)))
    assert [k.data for k in kept] == [b for b, _ in cases]
    assert all(k.status == "quarantined" and k.source == "alertmanager" for k in kept)
    assert tickets(db) == []


def test_body_over_the_limit_is_413(settings: Settings, db: Database) -> None:
    from gateway.config import HttpSettings

    small = settings.model_copy(update={"http": HttpSettings(max_body_bytes=65536)})
    client = make_client(webhook_settings(small), db)
    big = am_body(*(am_alert(f"f{i}") for i in range(300)))
    assert len(big) > 65536
    r = post_am(client, big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert tickets(db) == []
    assert post_am(client, am_body(am_alert("f1"))).status_code == 200
