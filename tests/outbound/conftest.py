"""Fixtures: outbound settings pointing at a real SMTP sink, a pipeline, an API client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import ApiSettings, ApiToken, OutboundSettings, RelaySettings, Settings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from tests.outbound.servers import SmtpSink

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
TOKENS = {
    "olga": ApiToken(token="olga-agent-token-0001", role="agent", email="olga@example.com"),
    "root": ApiToken(token="root-admin-token-0001", role="admin", email="root@example.com"),
    "alice": ApiToken(token="alice-requester-token", role="requester", email="alice@example.com"),
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name].token}"}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """The relay; not started: tests start it (or leave it down)."""
    s = SmtpSink()
    yield s
    s.stop()


def outbound(sink: SmtpSink, **over: object) -> OutboundSettings:
    fields: dict[str, object] = {
        "enabled": True,
        "from_address": "support@example.com",
        "from_name": "IT 运维",
        "smtp": RelaySettings(host="127.0.0.1", port=sink.port, timeout_seconds=5),
        "batch": 10,
        "lease_seconds": 600,
        "backoff_initial_seconds": 30,
        "backoff_max_seconds": 600,
        "group_addresses": {"service-desk": "desk@example.com"},
    }
    fields.update(over)
    return OutboundSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def out_settings(settings: Settings, sink: SmtpSink) -> Settings:
    replies = settings.replies.model_copy(update={"secret": "s3cret-for-tests"})
    return settings.model_copy(
        update={
            "outbound": outbound(sink),
            "replies": replies,
            "api": ApiSettings(tokens=TOKENS),
        }
    )


@pytest.fixture
def pipeline(db: Database, out_settings: Settings, clock) -> Pipeline:
    return Pipeline(db, out_settings, RulesHolder(RULES).classify, clock)


@pytest.fixture
def client(out_settings: Settings, db: Database, pipeline: Pipeline, clock) -> Iterator[TestClient]:
    app = create_app(out_settings, db, pipeline, clock=clock)
    with TestClient(app) as c:
        yield c
