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


def test_451_during_a_postgres_outage_then_accepted_once_back(pg_schema_url: str) -> None:
    """A real PostgreSQL behind a proxy we cut: mail gets 451, then 250 once it is back."""
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    from gateway.storage import migrate
    from gateway.storage.models import Ticket
    from tests.tcpproxy import TcpProxy

    direct = make_url(pg_schema_url)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.start()
    via_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    base = load_settings(None, require_file=False)
    settings = base.model_copy(update={"database": DatabaseSettings(url=via_proxy)})
    db = Database(settings.database)
    migrate.upgrade(db.engine)
    pipeline = Pipeline(db, settings, RulesHolder(RULES).classify)
    executor = ThreadPoolExecutor(2)
    handler = IntakeHandler(pipeline, settings, executor)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(make_smtp_factory(handler, settings), "127.0.0.1", 0)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = server.sockets[0].getsockname()[1]

    def deliver(message_id: str) -> int:
        message = f"Message-ID: <{message_id}>\r\nSubject: disk full\r\n\r\nhelp\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo()
            client.mail("alice@example.com")
            client.rcpt("support@example.com")
            return client.data(message.encode())[0]

    try:
        assert deliver("warm@example.com") == 250  # a pooled connection exists
        proxy.cut()
        assert deliver("during@example.com") == 451  # the MTA keeps it and retries
        proxy.start()  # the same port again: the database is back
        assert deliver("during@example.com") == 250  # the retry is stored
        assert deliver("during@example.com") == 250  # and a redelivery is a duplicate
        with db.unit(readonly=True) as s:
            assert s.scalar(select(func.count()).select_from(Ticket)) == 2
    finally:
        proxy.cut()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        executor.shutdown()
        db.dispose()
