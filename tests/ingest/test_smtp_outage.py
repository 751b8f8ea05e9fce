"""SMTP replies when the store is down: 451 (retry later), never 250 or a bounce."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.config import DatabaseSettings, Settings, load_settings
from gateway.ingest.smtp import IntakeHandler, make_smtp_factory
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
# Nothing listens on port 1: every connection attempt fails at once.
DOWN = "postgresql+psycopg://gateway@127.0.0.1:1/gateway"


@pytest.fixture
def down_settings() -> Settings:
    base = load_settings(None, require_file=False)
    return base.model_copy(update={"database": DatabaseSettings(url=DOWN)})


@pytest.fixture
def smtp_port(down_settings: Settings) -> Iterator[int]:
    db = Database(down_settings.database)
    pipeline = Pipeline(db, down_settings, RulesHolder(RULES).classify)
    executor = ThreadPoolExecutor(2)
    handler = IntakeHandler(pipeline, down_settings, executor)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(make_smtp_factory(handler, down_settings), "127.0.0.1", 0)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    executor.shutdown()
    db.dispose()


def test_store_outage_answers_451(smtp_port: int) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("alice@example.com")
        assert client.rcpt("support@example.com")[0] == 250
        code, reply = client.data(b"Subject: disk full\r\n\r\nhelp\r\n")
        assert code == 451, reply
        assert b"try again later" in reply
        # The session stays usable: the client can retry on the same connection.
        assert client.noop()[0] == 250


def test_api_outage_is_503_and_not_ready(down_settings: Settings) -> None:
    from gateway.config import ApiSettings, ApiToken

    settings = down_settings.model_copy(
        update={
            "api": ApiSettings(
                tokens={"a": ApiToken(token="agent-token-123456", role="agent", email="a@x.org")}
            )
        }
    )
    db = Database(settings.database)
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    with TestClient(create_app(settings, db, pipeline)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] is False
        assert client.get("/healthz").status_code == 200
        r = client.post(
            "/api/v1/tickets",
            json={"subject": "x"},
            headers={"Authorization": "Bearer agent-token-123456"},
        )
        assert r.status_code == 503
        assert r.json()["error"] == "unavailable" and r.headers["retry-after"]
    db.dispose()
