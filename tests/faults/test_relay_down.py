"""The outbound relay down while tickets want mail sent: the acknowledgement waits in the
outbox, retried with backoff, and is delivered exactly once when the relay is back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.daemons import send, wait_for
from tests.faults.harness import Gateway, record
from tests.outbound.servers import SmtpSink


def outbox(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT state, attempts FROM outbox ORDER BY id"))


@pytest.mark.timeout(180)
def test_relay_down_then_delivered_once(tmp_path: Path) -> None:
    sink = SmtpSink()  # its port is chosen, nothing listens on it yet: the relay is down
    db = tmp_path / "gateway.db"
    gateway = Gateway(
        tmp_path,
        GATEWAY_DATABASE__URL=f"sqlite:///{db}",
        GATEWAY_OUTBOUND__ENABLED="true",
        GATEWAY_OUTBOUND__POLL_SECONDS="0.1",
        GATEWAY_OUTBOUND__SMTP__PORT=str(sink.port),
        GATEWAY_OUTBOUND__BACKOFF_INITIAL_SECONDS="0.2",
        GATEWAY_OUTBOUND__BACKOFF_MAX_SECONDS="0.5",
        GATEWAY_OUTBOUND__MAX_ATTEMPTS="1000",  # the outage must not dead-letter it here
    )
    gateway.start()
    try:
        send(
            gateway.smtp_port, "打印机离线", "三楼打印机离线", Message_ID="<relay-1@client.example>"
        )
        # Several failed attempts while the relay is down; the row stays pending.
        wait_for(lambda: any(a >= 5 for _, a in outbox(db)), what="five failed attempts")
        failed = max(a for _, a in outbox(db))
        assert all(state == "pending" for state, _ in outbox(db))
        assert sink.received == []
        sink.start()  # the relay is back, on the same port
        wait_for(lambda: len(sink.received) == 1, timeout=60, what="the acknowledgement")
        wait_for(lambda: all(s == "sent" for s, _ in outbox(db)), what="the row marked sent")
        # A later ticket's mail goes out too; by then the worker has polled many more times,
        # and the first acknowledgement must still have been sent only once.
        send(gateway.smtp_port, "VPN 连不上", "从早上开始", Message_ID="<relay-2@client.example>")
        wait_for(lambda: len(sink.received) == 2, timeout=60, what="the second acknowledgement")
        wait_for(lambda: all(s == "sent" for s, _ in outbox(db)), what="both rows sent")
    finally:
        gateway.stop()
        sink.stop()
    replies_to = [str(m["In-Reply-To"]) for m in sink.messages()]
    record(
        "relay down for the outbound path",
        failed_attempts_while_down=failed,
        notifications=len(outbox(db)),
        delivered=len(sink.received),
        duplicates=len(replies_to) - len(set(replies_to)),
    )
    assert sorted(replies_to) == ["<relay-1@client.example>", "<relay-2@client.example>"]
    assert [state for state, _ in outbox(db)] == ["sent", "sent"]
