"""A change approved through an OA, end to end on SQLite and PostgreSQL: the instance is created
by the outbox worker against a loopback OA, the OA's signed callbacks move the chain, forged or
replayed callbacks change nothing, and status changes are pushed back through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from connectors.settings import ApprovalsSettings
from gateway.api.app import create_app
from gateway.config import ApiSettings, ApiToken, DatabaseSettings, Settings, load_settings
from gateway.outbound.worker import OutboxWorker
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage import migrate
from gateway.storage.db import Database
from gateway.storage.models import ApprovalInstance, OutboxMessage, Ticket
from tests.connectors.oa_server import (
    OaServer,
    ding_callback,
    ding_decrypt,
    oa_callback,
    task_finished,
)
from tests.connectors.test_oa_connectors import ding_settings, rest_settings
from tests.tcpproxy import TcpProxy

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
MANAGER, SECURITY = "ops-manager@example.com", "security-lead@example.com"
TOKENS = {
    "alice": ApiToken(token="alice-requester-token", role="requester", email="alice@example.com"),
    "olga": ApiToken(token="olga-agent-token-0001", role="agent", email="olga@example.com"),
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name].token}"}


@pytest.fixture
def server() -> Iterator[OaServer]:
    s = OaServer()
    yield s
    s.stop()


def with_oa(settings: Settings, server: OaServer, oa: str) -> Settings:
    return settings.model_copy(
        update={
            "api": ApiSettings(tokens=TOKENS),
            "connectors": {"oa": rest_settings(server.url), "ding": ding_settings(server.url)},
            "approvals": ApprovalsSettings(oa=oa),
        }
    )


@pytest.fixture
def oa_settings(settings: Settings, server: OaServer) -> Settings:
    return with_oa(settings, server, "oa")


def app_client(settings: Settings, db: Database, clock: Any) -> TestClient:
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify, clock)
    return TestClient(create_app(settings, db, pipeline, clock=clock))


@pytest.fixture
def client(oa_settings: Settings, db: Database, clock: Any) -> Iterator[TestClient]:
    with app_client(oa_settings, db, clock) as c:
        yield c


def new_change(client: TestClient) -> str:
    r = client.post(
        "/api/v1/tickets",
        json={
            "subject": "扩容生产数据库 db-bj-03 内存",
            "description": "64G 扩到 128G，周六 22:00",
        },
        headers=auth("alice"),
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["status"] == "pending_approval" and ticket["type"] == "change"
    return ticket["key"]


def ticket_state(db: Database, key: str) -> tuple[str, list[str], list[tuple[str, str, str]]]:
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        return t.status, list(t.approvals), [(e.kind, e.actor, e.channel) for e in t.events]


def outbox(db: Database, event: str) -> list[OutboxMessage]:
    with db.unit(readonly=True) as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.event == event)))


def instances(db: Database) -> list[tuple[str, str, str]]:
    with db.unit(readonly=True) as s:
        rows = s.scalars(select(ApprovalInstance).order_by(ApprovalInstance.id))
        return [(r.connector, r.instance_id, r.status) for r in rows]


def decide(
    client: TestClient,
    clock: Any,
    event_id: str,
    step: int,
    approver: str,
    decision: str = "approve",
    *,
    instance: str = "OA-1",
    secret: str | None = None,
    comment: str = "",
) -> Any:
    body = {
        "event_id": event_id,
        "instance_id": instance,
        "step": step,
        "approver": approver,
        "decision": decision,
        "comment": comment,
    }
    stamp = int(clock().timestamp())
    raw, headers = oa_callback(body, stamp, secret) if secret else oa_callback(body, stamp)
    return client.post("/webhooks/oa/oa", content=raw, headers=headers)


def test_two_level_approval_through_oa_callbacks(client, db, clock, server, oa_settings) -> None:
    key = new_change(client)
    (row,) = outbox(db, "oa_create")
    assert (row.channel, row.recipient, row.state) == ("connector", "oa", "pending")
    # Nothing was sent to the OA while the request ran: the worker does it.
    assert server.state.requests == []

    assert OutboxWorker(db, oa_settings, clock=clock).run_once() == 1
    assert server.state.paths() == ["/api/instances"]
    assert server.state.requests[0][2]["ticket"]["key"] == key
    assert instances(db) == [("oa", "OA-1", "pending")]
    assert outbox(db, "oa_create")[0].state == "sent"
    assert ("approval_instance", "system", "oa:oa") in ticket_state(db, key)[2]

    first = decide(client, clock, "evt-1", 1, MANAGER, comment="同意，周六执行")
    assert first.status_code == 200, first.text
    assert first.json()["decisions"] == [
        {"event_id": "evt-1", "ticket": key, "status": "pending_approval", "duplicate": False}
    ]
    status, approvals, events = ticket_state(db, key)
    assert (status, approvals) == ("pending_approval", [MANAGER])
    assert events[-1] == ("action.approve", MANAGER, "oa:oa")

    # The OA delivers the same event again: 2xx, nothing changes.
    again = decide(client, clock, "evt-1", 1, MANAGER, comment="同意，周六执行")
    assert again.status_code == 200 and again.json()["decisions"][0]["duplicate"] is True
    assert ticket_state(db, key) == (status, approvals, events)

    # A step that is not current (step 1 again, or step 2 by the wrong person): 409, no journal.
    late = decide(client, clock, "evt-2", 1, MANAGER)
    assert late.status_code == 409 and late.json()["error"] == "not_current"
    assert "waits for step 2/2" in late.json()["message"]
    wrong = decide(client, clock, "evt-3", 2, MANAGER)
    assert wrong.status_code == 409
    assert ticket_state(db, key) == (status, approvals, events)

    second = decide(client, clock, "evt-4", 2, SECURITY)
    assert second.status_code == 200 and second.json()["decisions"][0]["status"] == "approved"
    status, approvals, events = ticket_state(db, key)
    assert (status, approvals) == ("approved", [MANAGER, SECURITY])
    decided = [e for e in events if e[0] == "action.approve"]
    assert decided == [
        ("action.approve", MANAGER, "oa:oa"),
        ("action.approve", SECURITY, "oa:oa"),
    ]
    assert instances(db) == [("oa", "OA-1", "approved")]


def test_forged_callback_gets_401_and_changes_nothing(client, db, clock, oa_settings) -> None:
    key = new_change(client)
    OutboxWorker(db, oa_settings, clock=clock).run_once()
    before = ticket_state(db, key)
    forged = decide(client, clock, "evt-1", 1, MANAGER, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"] == "unauthorized"
    unsigned = client.post("/webhooks/oa/oa", json={"event_id": "evt-1"})
    assert unsigned.status_code == 401
    assert ticket_state(db, key) == before
    # The forged event id was not remembered: the real callback still counts.
    assert decide(client, clock, "evt-1", 1, MANAGER).status_code == 200
    assert ticket_state(db, key)[1] == [MANAGER]


def test_rejection_through_oa_callback(client, db, clock, oa_settings) -> None:
    key = new_change(client)
    OutboxWorker(db, oa_settings, clock=clock).run_once()
    r = decide(client, clock, "evt-9", 1, MANAGER, "reject", comment="窗口期太短，改到下周")
    assert r.status_code == 200 and r.json()["decisions"][0]["status"] == "rejected"
    status, approvals, events = ticket_state(db, key)
    assert (status, approvals) == ("rejected", [])
    assert events[-1] == ("action.reject", MANAGER, "oa:oa")
    with db.unit(readonly=True) as s:
        note = s.scalars(select(Ticket).where(Ticket.key == key)).one().events[-1].note
    assert "窗口期太短" in note
    assert instances(db) == [("oa", "OA-1", "rejected")]
    # Anything after the end of the chain is not for a current step.
    assert decide(client, clock, "evt-10", 2, SECURITY).status_code == 409


def test_unknown_connector_instance_and_bad_body(client, db, clock, oa_settings) -> None:
    new_change(client)
    OutboxWorker(db, oa_settings, clock=clock).run_once()
    assert client.post("/webhooks/oa/nope", content=b"{}").status_code == 404
    unknown = decide(client, clock, "evt-1", 1, MANAGER, instance="OA-404")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_instance"
    raw, headers = oa_callback({"event_id": "e", "decision": "approve"}, int(clock().timestamp()))
    bad = client.post("/webhooks/oa/oa", content=raw, headers=headers)
    assert bad.status_code == 400 and "missing" in bad.json()["message"]


def test_instance_creation_retries_then_dead_letters(client, db, clock, server, oa_settings):
    new_change(client)
    worker = OutboxWorker(db, oa_settings, clock=clock)
    server.state.script = [503]
    worker.run_once()
    (row,) = outbox(db, "oa_create")
    assert (row.state, row.attempts) == ("pending", 1) and "503" in row.last_error
    assert instances(db) == []
    clock.now = row.next_attempt_at + timedelta(seconds=1)
    worker.run_once()
    assert outbox(db, "oa_create")[0].state == "sent"
    # Both attempts carried one key: the OA made one instance.
    keys = {h["idempotency-key"] for p, h, _ in server.state.requests}
    assert len(keys) == 1 and len(server.state.instances) == 1
    assert instances(db) == [("oa", "OA-1", "pending")]

    new_change(client)
    server.state.script = [400]  # the OA refuses the request: retrying would repeat it
    worker.run_once()
    dead = [r for r in outbox(db, "oa_create") if r.state == "dead"]
    assert len(dead) == 1 and "400" in dead[0].last_error


def test_status_changes_are_pushed_through_the_outbox(client, db, clock, server, oa_settings):
    key = new_change(client)
    worker = OutboxWorker(db, oa_settings, clock=clock)
    worker.run_once()
    decide(client, clock, "evt-1", 1, MANAGER)
    decide(client, clock, "evt-2", 2, SECURITY)
    # The OA's own decisions are not echoed back to it.
    assert outbox(db, "status_sync") == []
    r = client.post(
        f"/api/v1/tickets/{key}/transitions", json={"action": "start"}, headers=auth("olga")
    )
    assert r.status_code == 200, r.text
    (row,) = outbox(db, "status_sync")
    assert row.state == "pending" and server.state.status_pushes == []
    worker.run_once()
    (push,) = server.state.status_pushes
    assert (push["key"], push["previous"], push["status"]) == (key, "approved", "in_progress")
    assert (push["actor"], push["channel"], push["instance_ids"]) == (
        "olga@example.com",
        "api",
        ["OA-1"],
    )
    assert outbox(db, "status_sync")[0].state == "sent"


def test_without_an_oa_no_connector_call_is_queued(settings, db, clock, server) -> None:
    plain = with_oa(settings, server, "")
    plain.connectors["oa"] = rest_settings(server.url, status_url="")
    with app_client(plain, db, clock) as c:
        new_change(c)
    with db.unit(readonly=True) as s:
        assert s.scalars(select(OutboxMessage)).all() == []


def test_two_level_approval_through_dingtalk(settings, db, clock, server) -> None:
    ding = with_oa(settings, server, "ding")
    with app_client(ding, db, clock) as client:
        key = new_change(client)
        OutboxWorker(db, ding, clock=clock).run_once()
        assert server.state.paths() == [
            "/v1.0/oauth2/accessToken",
            "/v1.0/workflow/processInstances",
        ]
        assert instances(db) == [("ding", "ding-proc-1", "pending")]

        def push(event: dict[str, Any], **query: str) -> Any:
            body, params = ding_callback(event)
            return client.post("/webhooks/oa/ding", content=body, params=params | query)

        first = task_finished("ding-proc-1", "manager01", "agree", 1, remark="同意")
        forged = push(first, msg_signature="f" * 40)
        assert forged.status_code == 401
        assert ticket_state(db, key)[1] == []

        r = push(first)
        assert r.status_code == 200
        assert ding_decrypt(r.json()["encrypt"])[0] == "success"
        assert ticket_state(db, key)[:2] == ("pending_approval", [MANAGER])
        assert push(first).status_code == 200  # redelivered by DingTalk: no second step
        assert ticket_state(db, key)[:2] == ("pending_approval", [MANAGER])

        # A task DingTalk started (not finished) decides nothing but is answered.
        started = {**task_finished("ding-proc-1", "sec02", "", 2), "type": "start"}
        assert push(started).status_code == 200

        assert push(task_finished("ding-proc-1", "sec02", "agree", 2)).status_code == 200
        status, approvals, events = ticket_state(db, key)
        assert (status, approvals) == ("approved", [MANAGER, SECURITY])
        assert [e for e in events if e[0] == "action.approve"] == [
            ("action.approve", MANAGER, "oa:ding"),
            ("action.approve", SECURITY, "oa:ding"),
        ]


def test_callback_gets_503_while_the_store_is_down(pg_schema_url, clock, server) -> None:
    direct = make_url(pg_schema_url)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.start()
    via_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    base = load_settings(None, require_file=False)
    cut_off = with_oa(base, server, "oa").model_copy(
        update={"database": DatabaseSettings(url=via_proxy)}
    )
    db = Database(cut_off.database)
    migrate.upgrade(db.engine)
    try:
        with app_client(cut_off, db, clock) as client:
            key = new_change(client)
            OutboxWorker(db, cut_off, clock=clock).run_once()
            proxy.cut()
            down = decide(client, clock, "evt-1", 1, MANAGER)
            assert down.status_code == 503 and down.json()["error"] == "unavailable"
            proxy.start()  # back on the same port: the OA's retry is applied, once
            assert decide(client, clock, "evt-1", 1, MANAGER).status_code == 200
            assert decide(client, clock, "evt-1", 1, MANAGER).json()["decisions"][0]["duplicate"]
            assert ticket_state(db, key)[:2] == ("pending_approval", [MANAGER])
    finally:
        proxy.cut()
        db.dispose()
