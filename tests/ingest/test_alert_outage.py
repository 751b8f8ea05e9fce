"""Webhooks while the store is down: 503 with Retry-After (Alertmanager retries), never 200."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from gateway.config import DatabaseSettings, Settings, load_settings
from gateway.storage import migrate
from gateway.storage.db import Database
from tests.core.test_alert_lifecycle import zabbix_event
from tests.ingest.alerting import (
    am_alert,
    am_body,
    auth,
    make_client,
    post_am,
    tickets,
    webhook_settings,
)
from tests.tcpproxy import TcpProxy


def test_503_while_postgres_is_cut_then_stored_once_back(pg_schema_url: str) -> None:
    direct = make_url(pg_schema_url)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.start()
    via_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    base: Settings = load_settings(None, require_file=False)
    settings = webhook_settings(
        base.model_copy(update={"database": DatabaseSettings(url=via_proxy)})
    )
    db = Database(settings.database)
    migrate.upgrade(db.engine)
    client = make_client(settings, db)
    try:
        assert post_am(client, am_body(am_alert("warm"))).status_code == 200
        proxy.cut()
        for r in (
            post_am(client, am_body(am_alert("during"))),
            client.post("/webhooks/zabbix", json=zabbix_event(), headers=auth()),
            post_am(client, b"{broken"),  # not even kept: the sender must retry it later
        ):
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "unavailable" and int(r.headers["retry-after"]) > 0
        proxy.start()  # the same port: the database is back
        r = post_am(client, am_body(am_alert("during")))
        assert r.status_code == 200 and r.json()["alerts"][0]["outcome"] == "created"
        assert post_am(client, b"{broken").status_code == 400
        assert [t.fingerprint for t in tickets(db)] == ["warm", "during"]
    finally:
        proxy.cut()
        db.dispose()
