"""`gateway run` with outbound enabled: the worker delivers, and SIGTERM stops it cleanly."""

from __future__ import annotations

import re
from pathlib import Path

from tests.daemons import init, running, send, wait_for
from tests.outbound.servers import SmtpSink


def test_daemon_sends_the_acknowledgement_and_stops_on_sigterm(tmp_path: Path) -> None:
    sink = SmtpSink().start()
    overrides = {
        "GATEWAY_OUTBOUND__ENABLED": "true",
        "GATEWAY_OUTBOUND__POLL_SECONDS": "0.1",
        "GATEWAY_OUTBOUND__SMTP__PORT": str(sink.port),
    }
    try:
        with running(init(tmp_path), overrides) as daemon:
            send(daemon.smtp_port, "VPN 连不上", "从今天早上开始", Message_ID="<d1@client.example>")
            wait_for(lambda: len(sink.received) == 1, what="acknowledgement at the relay")
            msg = sink.messages()[0]
            assert re.match(r"\[REQ-\d{6}\] ", str(msg["Subject"])) or "[INC-" in str(
                msg["Subject"]
            )
            assert str(msg["In-Reply-To"]) == "<d1@client.example>"
            assert daemon.stop() == 0, daemon.log()
            text = daemon.log()
    finally:
        sink.stop()
    assert "outbox worker" in text and "stopped" in text
