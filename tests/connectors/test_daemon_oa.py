"""`gateway run` with an OA and mail notifications off: a change mailed in gets its approval
instance from the daemon's outbox worker, and the OA's signed callbacks over real HTTP
approve it step by step."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy import select

from gateway.config import DatabaseSettings
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.connectors.oa_server import OA_SECRET, OA_TOKEN, OaServer, oa_callback
from tests.daemons import init, running, send, wait_for

MANAGER, SECURITY = "ops-manager@example.com", "security-lead@example.com"


def test_daemon_runs_a_change_through_the_oa(tmp_path: Path) -> None:
    oa = OaServer()
    folder = init(tmp_path)
    folder.edit(
        lambda text: (
            text.replace('\noa = ""', '\noa = "oa"', 1)
            + f'\n[connectors.oa]\nkind = "oa_rest"\nurl = "{oa.url}/api"\ntoken = "{OA_TOKEN}"\n'
            f'callback_secret = "{OA_SECRET}"\n'
        )
    )
    db = Database(DatabaseSettings(url=folder.database_url))

    def ticket() -> Ticket | None:
        with db.unit(readonly=True) as s:
            return s.scalars(select(Ticket)).first()

    try:
        with running(folder) as daemon:

            def decide(event_id: str, step: int, approver: str) -> httpx.Response:
                body = {
                    "event_id": event_id,
                    "instance_id": "OA-1",
                    "step": step,
                    "approver": approver,
                    "decision": "approve",
                }
                raw, headers = oa_callback(body, int(time.time()))
                url = daemon.url("/webhooks/oa/oa")
                return httpx.post(url, content=raw, headers=headers, timeout=10)

            send(daemon.smtp_port, "扩容生产数据库 db-bj-03 内存", "64G 扩到 128G，周六 22:00")
            wait_for(lambda: ticket() is not None, what="ticket created")
            assert ticket().status == "pending_approval"
            wait_for(lambda: oa.state.instances, what="instance created by the worker")
            assert decide("evt-1", 1, MANAGER).status_code == 200
            assert decide("evt-2", 2, SECURITY).json()["decisions"][0]["status"] == "approved"
            t = ticket()
            assert (t.status, t.approvals) == ("approved", [MANAGER, SECURITY])
            assert daemon.stop() == 0, daemon.log()
    finally:
        oa.stop()
        db.dispose()
