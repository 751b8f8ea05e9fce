"""Fuzzing the alert webhooks through the real HTTP app over a real SQLite store.

Every body must be stored (200 after the commit, each alert with an outcome) or refused with a
4xx JSON reason (400 names the field; its raw bytes are kept). A 5xx or an exception is a bug:
Alertmanager would retry the same body forever.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import DatabaseSettings, GenericSource, load_settings
from gateway.storage import migrate
from gateway.storage.db import Database
from tests.fuzz.conftest import examples
from tests.fuzz.json_strategies import alertmanager_body, generic_body, zabbix_body
from tests.ingest.alerting import TOKEN, make_client, webhook_settings

OUTCOMES = {"created", "occurrence", "resolved", "reopened", "commented", "ignored"}
BASIC = "Basic " + base64.b64encode(b"grafana:s3cret").decode()
ROUTES = {
    "alertmanager": ("/webhooks/alertmanager", alertmanager_body(), f"Bearer {TOKEN}"),
    "zabbix": ("/webhooks/zabbix", zabbix_body(), f"Bearer {TOKEN}"),
    "generic": ("/webhooks/generic/grafana", generic_body(), BASIC),
}


def app_client(url: str, folder: Path) -> Iterator[TestClient]:
    base = load_settings(None, require_file=False)
    config = base.model_copy(update={"database": DatabaseSettings(url=url), "config_dir": folder})
    mapping = GenericSource(
        username="grafana", password="s3cret", alerts="/alerts", fingerprint="/fingerprint",
        status="/status", summary="/annotations/summary", severity="/labels/severity",
        labels="/labels",
    )  # fmt: skip
    config = webhook_settings(config, generic={"grafana": mapping})
    db = Database(config.database)
    migrate.upgrade(db.engine)
    yield make_client(config, db)
    db.dispose()


@pytest.fixture
def client(fast_dir: Path) -> Iterator[TestClient]:
    yield from app_client(f"sqlite:///{fast_dir / 'fuzz.db'}", fast_dir)


@pytest.fixture
def pg_client(pg_schema_url: str, tmp_path: Path) -> Iterator[TestClient]:
    yield from app_client(pg_schema_url, tmp_path)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("source", "n"), [("alertmanager", 3000), ("zabbix", 2200), ("generic", 1500)]
)
def test_fuzz_webhook(client: TestClient, source: str, n: int, tally: Counter[str]) -> None:
    campaign(client, source, n, tally)


@pytest.mark.postgres
@pytest.mark.timeout(900)
@pytest.mark.parametrize("source", ["alertmanager", "zabbix", "generic"])
def test_fuzz_webhook_postgresql(pg_client: TestClient, source: str, tally: Counter[str]) -> None:
    # A smaller run on PostgreSQL, which refuses NUL in text and enforces column types.
    campaign(pg_client, source, 150, tally)


def campaign(client: TestClient, source: str, n: int, tally: Counter[str]) -> None:
    path, bodies, auth = ROUTES[source]

    @settings(settings.get_profile("fuzz"), max_examples=examples(n))
    @given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
    def post(body: bytes, content_type: str) -> None:
        tally["inputs"] += 1
        headers = {"Authorization": auth, "Content-Type": content_type}
        try:
            r = client.post(path, content=body, headers=headers)
        except Exception:
            tally["exceptions"] += 1
            raise
        if r.status_code >= 500:
            tally["exceptions"] += 1
        assert r.status_code in (200, 400, 413), (r.status_code, r.text, body[:300])
        answer = r.json()
        if r.status_code == 200:
            tally["stored"] += 1
            assert answer["received"] == len(answer["alerts"])
            for alert in answer["alerts"]:
                assert alert["outcome"] in OUTCOMES, alert
                tally[alert["outcome"]] += 1
        else:
            tally["refused"] += 1
            assert answer["error"] and answer["message"], answer

    post()
    assert tally["exceptions"] == 0
    assert tally["inputs"] >= examples(n)
