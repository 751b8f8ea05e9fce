"""`gateway run` with a NetBox that is down at first: mail still becomes a ticket, and the
daemon's retry job enriches it once NetBox answers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from sqlalchemy import select

from gateway.config import DatabaseSettings
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.connectors.netbox_server import TOKEN, NetBoxServer
from tests.outbound.servers import free_port
from tests.test_daemon import GATEWAY, send, wait_for


def test_daemon_retry_job_enriches_after_netbox_returns(tmp_path: Path) -> None:
    netbox = NetBoxServer()  # not started: connection refused
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    init = subprocess.run(
        [*GATEWAY, "init", "--dir", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    config = tmp_path / "gateway.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('cmdb = ""', 'cmdb = "nb"').replace(
        "retry_seconds = 60 ", "retry_seconds = 0.2"
    )
    text += (
        f'\n[connectors.nb]\nkind = "netbox"\nurl = "{netbox.url}"\ntoken = "{TOKEN}"\n'
        "retries = 0\nbreaker_failures = 1\nbreaker_seconds = 0.2\n"
    )
    config.write_text(text, encoding="utf-8")
    smtp_port, http_port = free_port(), free_port()
    env.update(GATEWAY_SMTP__PORT=str(smtp_port), GATEWAY_HTTP__PORT=str(http_port))
    db = Database(DatabaseSettings(url=f"sqlite:///{(tmp_path / 'gateway.db').as_posix()}"))
    log_path = tmp_path / "daemon.log"

    def ticket() -> Ticket | None:
        with db.unit(readonly=True) as s:
            found = s.scalars(select(Ticket)).first()
            if found is not None:
                found.events  # noqa: B018 - load the journal before the session closes
            return found

    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(config)], env=env, stdout=log, stderr=log
        )
        try:
            wait_for(lambda: "gateway ready" in log_path.read_text(), what="daemon ready")
            send(smtp_port, "disk full on db-bj-03.prod.example.com", "please look")
            wait_for(lambda: ticket() is not None, what="ticket created")
            assert ticket().labels["cmdb.lookup"] == "pending"
            netbox.start()
            wait_for(lambda: "cmdb.site" in ticket().labels, what="ticket enriched")
            t = ticket()
            assert t.labels["cmdb.service"] == "payments" and "cmdb.lookup" not in t.labels
            assert [e.kind for e in t.events].count("enriched") == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            netbox.stop()
            db.dispose()
