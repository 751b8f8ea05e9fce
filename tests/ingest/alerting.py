"""Shared by the alert tests: the HTTP app over a real store, and Alertmanager bodies."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.config import (
    AlertmanagerSource,
    GenericSource,
    Settings,
    WebhooksSettings,
    ZabbixSource,
)
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket, TicketEvent

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
TOKEN = "am-token-0123456789"


def webhook_settings(settings: Settings, **sources: Any) -> Settings:
    hooks = {
        "alertmanager": AlertmanagerSource(token=TOKEN),
        "zabbix": ZabbixSource(token=TOKEN),
        "generic": {},
        **sources,
    }
    return settings.model_copy(update={"webhooks": WebhooksSettings(**hooks)})


def make_client(
    settings: Settings, db: Database, clock: Any = None, rules: Path = RULES
) -> TestClient:
    kwargs = {"clock": clock} if clock is not None else {}
    pipeline = Pipeline(db, settings, RulesHolder(rules).classify, **kwargs)
    return TestClient(create_app(settings, db, pipeline, **kwargs))


def post_am(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/webhooks/alertmanager", content=body, headers=headers or auth())


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def am_alert(
    fingerprint: str,
    status: str = "firing",
    name: str = "HighCPU",
    severity: str = "critical",
    ends: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "instance": "db-01:9100", **labels},
        "annotations": {"summary": f"{name} on db-01", "description": "CPU above 95%"},
        "startsAt": "2026-11-25T08:00:00Z",
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def am_body(*alerts: dict[str, Any], truncated: int = 0) -> bytes:
    statuses = {a.get("status", "firing") for a in alerts}
    return json.dumps(
        {
            "version": "4",
            "receiver": "gw",
            "status": "firing" if "firing" in statuses else "resolved",
            "groupKey": '{}:{alertname="HighCPU"}',
            "truncatedAlerts": truncated,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()


def tickets(db: Database) -> list[Ticket]:
    with db.unit(readonly=True) as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.id)))


def journal(db: Database, key: str) -> list[TicketEvent]:
    with db.unit(readonly=True) as s:
        ticket = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        return list(ticket.events)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


__all__ = ["GenericSource", "ZabbixSource"]
