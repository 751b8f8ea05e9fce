"""The real Alertmanager (Debian prometheus-alertmanager) notifying the gateway over HTTP.

Alertmanager runs on a random loopback port with clustering off and its receiver pointed at
the gateway's app served by a real uvicorn; alerts go in through its v2 API and the test
waits (polling, with a deadline) for the tickets: created once, repeats counted, resolved on
`resolved`, reopened on a new firing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.api.app import create_app
from gateway.config import Settings
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.conftest import IN_CI
from tests.daemons import free_port, wait_for
from tests.ingest.alerting import RULES, TOKEN, tickets, webhook_settings

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def need_alertmanager() -> str:
    """Under CI=true a missing Alertmanager is a failure, elsewhere a skip (issue 5)."""
    if not Path(BINARY).exists():
        if IN_CI:
            pytest.fail(
                "CI=true but prometheus-alertmanager is not installed (.ci/run installs it)"
            )
        pytest.skip("prometheus-alertmanager is not installed")
    return BINARY


def wait_until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_for(check, timeout, what)


@pytest.fixture
def gateway_port(settings: Settings, db: Database) -> Iterator[int]:
    hooks = webhook_settings(settings)
    app = create_app(hooks, db, Pipeline(db, hooks, RulesHolder(RULES).classify))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until("uvicorn serves", lambda: server.started)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def alertmanager(gateway_port: int, tmp_path: Path) -> Iterator[str]:
    binary = need_alertmanager()
    config = {
        "route": {
            "receiver": "gw",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            # Re-notify a still-firing group every 2 s: each is a repeat for the gateway.
            "repeat_interval": "2s",
        },
        "receivers": [
            {
                "name": "gw",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{gateway_port}/webhooks/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "am.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until("alertmanager is ready", ready)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def post_alert(url: str, ends_at: datetime | None = None) -> None:
    alert = {
        "labels": {"alertname": "DiskFull", "instance": "db-01:9100", "severity": "critical"},
        "annotations": {"summary": "磁盘空间不足：db-01 /data", "description": "97% used"},
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat().replace("+00:00", "Z")
    r = httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=10)
    assert r.status_code == 200, r.text


def only_ticket(db: Database) -> Ticket | None:
    found = tickets(db)
    assert len(found) <= 1, [t.key for t in found]  # never a second ticket for one alert
    return found[0] if found else None


def test_real_alertmanager_create_repeat_resolve_reopen(alertmanager: str, db: Database) -> None:
    post_alert(alertmanager)
    wait_until("a ticket exists", lambda: only_ticket(db) is not None)
    ticket = only_ticket(db)
    assert ticket is not None
    assert (ticket.source, ticket.type, ticket.priority) == ("alertmanager", "incident", "P0")
    assert ticket.subject == "磁盘空间不足：db-01 /data" and ticket.labels["host"] == "db-01"

    wait_until("repeats are counted", lambda: only_ticket(db).occurrences >= 3)  # type: ignore[union-attr]

    post_alert(alertmanager, ends_at=datetime.now(UTC) - timedelta(seconds=5))
    wait_until("the ticket is resolved", lambda: only_ticket(db).status == "resolved")  # type: ignore[union-attr]

    post_alert(alertmanager)
    wait_until("the ticket is reopened", lambda: only_ticket(db).status == "reopened")  # type: ignore[union-attr]
    assert only_ticket(db).key == ticket.key  # type: ignore[union-attr]
