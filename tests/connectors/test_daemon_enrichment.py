"""`gateway run` with a NetBox that is down at first: mail still becomes a ticket, and the
daemon's retry job enriches it once NetBox answers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from gateway.config import DatabaseSettings
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.connectors.netbox_server import TOKEN, NetBoxServer
from tests.daemons import init, running, send, wait_for


def test_daemon_retry_job_enriches_after_netbox_returns(tmp_path: Path) -> None:
    netbox = NetBoxServer()  # not started: connection refused
    folder = init(tmp_path)
    folder.edit(
        lambda text: (
            text.replace('cmdb = ""', 'cmdb = "nb"').replace(
                "retry_seconds = 60 ", "retry_seconds = 0.2"
            )
            + f'\n[connectors.nb]\nkind = "netbox"\nurl = "{netbox.url}"\ntoken = "{TOKEN}"\n'
            "retries = 0\nbreaker_failures = 1\nbreaker_seconds = 0.2\n"
        )
    )
    db = Database(DatabaseSettings(url=folder.database_url))

    def ticket() -> Ticket | None:
        with db.unit(readonly=True) as s:
            found = s.scalars(select(Ticket)).first()
            if found is not None:
                found.events  # noqa: B018 - load the journal before the session closes
            return found

    try:
        with running(folder) as daemon:
            send(daemon.smtp_port, "disk full on db-bj-03.prod.example.com", "please look")
            wait_for(lambda: ticket() is not None, what="ticket created")
            assert ticket().labels["cmdb.lookup"] == "pending"
            netbox.start()
            wait_for(lambda: "cmdb.site" in ticket().labels, what="ticket enriched")
            t = ticket()
            assert t.labels["cmdb.service"] == "payments" and "cmdb.lookup" not in t.labels
            assert [e.kind for e in t.events].count("enriched") == 1
            assert daemon.stop() == 0, daemon.log()
    finally:
        netbox.stop()
        db.dispose()
