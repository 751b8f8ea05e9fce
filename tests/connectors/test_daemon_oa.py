"""`gateway run` with an OA and mail notifications off: a change mailed in gets its approval
instance from the daemon's outbox worker, and the OA's signed callbacks over real HTTP
approve it step by step."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from gateway.config import DatabaseSettings
from gateway.storage.db import Database
from gateway.storage.models import Ticket
from tests.connectors.oa_server import OA_SECRET, OA_TOKEN, OaServer, oa_callback
from tests.outbound.servers import free_port
from tests.test_daemon import GATEWAY, send, wait_for

MANAGER, SECURITY = "ops-manager@example.com", "security-lead@example.com"


def test_daemon_runs_a_change_through_the_oa(tmp_path: Path) -> None:
    oa = OaServer()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    init = subprocess.run(
        [*GATEWAY, "init", "--dir", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    config = tmp_path / "gateway.toml"
    text = config.read_text(encoding="utf-8").replace('\noa = ""', '\noa = "oa"', 1)
    text += (
        f'\n[connectors.oa]\nkind = "oa_rest"\nurl = "{oa.url}/api"\ntoken = "{OA_TOKEN}"\n'
        f'callback_secret = "{OA_SECRET}"\n'
    )
    config.write_text(text, encoding="utf-8")
    smtp_port, http_port = free_port(), free_port()
    env.update(GATEWAY_SMTP__PORT=str(smtp_port), GATEWAY_HTTP__PORT=str(http_port))
    db = Database(DatabaseSettings(url=f"sqlite:///{(tmp_path / 'gateway.db').as_posix()}"))
    log_path = tmp_path / "daemon.log"

    def ticket() -> Ticket | None:
        with db.unit(readonly=True) as s:
            return s.scalars(select(Ticket)).first()

    def decide(event_id: str, step: int, approver: str) -> httpx.Response:
        body = {
            "event_id": event_id,
            "instance_id": "OA-1",
            "step": step,
            "approver": approver,
            "decision": "approve",
        }
        raw, headers = oa_callback(body, int(time.time()))
        url = f"http://127.0.0.1:{http_port}/webhooks/oa/oa"
        return httpx.post(url, content=raw, headers=headers, timeout=10)

    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(config)], env=env, stdout=log, stderr=log
        )
        try:
            wait_for(lambda: "gateway ready" in log_path.read_text(), what="daemon ready")
            send(smtp_port, "扩容生产数据库 db-bj-03 内存", "64G 扩到 128G，周六 22:00")
            wait_for(lambda: ticket() is not None, what="ticket created")
            assert ticket().status == "pending_approval"
            wait_for(lambda: oa.state.instances, what="instance created by the worker")
            assert decide("evt-1", 1, MANAGER).status_code == 200
            assert decide("evt-2", 2, SECURITY).json()["decisions"][0]["status"] == "approved"
            t = ticket()
            assert (t.status, t.approvals) == ("approved", [MANAGER, SECURITY])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            oa.stop()
            db.dispose()
