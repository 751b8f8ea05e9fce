"""`gateway run` with outbound enabled: the worker delivers, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from tests.outbound.servers import SmtpSink, free_port
from tests.test_daemon import GATEWAY, send, wait_for


def test_daemon_sends_the_acknowledgement_and_stops_on_sigterm(tmp_path: Path) -> None:
    sink = SmtpSink().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    init = subprocess.run(
        [*GATEWAY, "init", "--dir", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    smtp_port, http_port = free_port(), free_port()
    env.update(
        GATEWAY_SMTP__PORT=str(smtp_port),
        GATEWAY_HTTP__PORT=str(http_port),
        GATEWAY_OUTBOUND__ENABLED="true",
        GATEWAY_OUTBOUND__POLL_SECONDS="0.1",
        GATEWAY_OUTBOUND__SMTP__PORT=str(sink.port),
    )
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(tmp_path / "gateway.toml")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def ready() -> bool:
                assert proc.poll() is None, log_path.read_text()
                try:
                    url = f"http://127.0.0.1:{http_port}/readyz"
                    return httpx.get(url, timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready, what="daemon ready")
            send(smtp_port, "VPN 连不上", "从今天早上开始", Message_ID="<d1@client.example>")
            wait_for(lambda: len(sink.received) == 1, what="acknowledgement at the relay")
            msg = sink.messages()[0]
            assert re.match(r"\[REQ-\d{6}\] ", str(msg["Subject"])) or "[INC-" in str(
                msg["Subject"]
            )
            assert str(msg["In-Reply-To"]) == "<d1@client.example>"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sink.stop()
    text = log_path.read_text()
    assert "outbox worker" in text and "stopped" in text
