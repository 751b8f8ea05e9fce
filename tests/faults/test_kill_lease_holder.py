"""Two daemons on one PostgreSQL sharing one Dovecot mailbox; kill -9 the one polling it: the
other takes the mailbox's lease once it expires and ingests what arrives, nothing twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemons import wait_for
from tests.faults.harness import Gateway, numbered_mail, record, redeliveries, stored
from tests.ingest.dovecot import Dovecot, running_dovecot
from tests.ingest.test_imap import append, count

LEASE_SECONDS = 3.0
LEASE = {"name": "imap:support"}


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as server:
        yield server


@pytest.mark.timeout(300)
def test_kill_the_imap_lease_holder(pg_schema_url: str, dovecot: Dovecot, tmp_path: Path) -> None:
    env = {
        "GATEWAY_DATABASE__URL": pg_schema_url,
        "GATEWAY_DAEMON__LEASE_SECONDS": str(LEASE_SECONDS),
    }
    a = Gateway(tmp_path, "daemon-a", **env)
    with (tmp_path / "gateway.toml").open("a", encoding="utf-8") as config:
        config.write(
            f"""
[[imap]]
name = "support"
host = "{dovecot.host}"
port = {dovecot.port}
ssl = false
username = "{dovecot.user}"
password = "{dovecot.password}"
poll_seconds = 5
"""
        )
    b = Gateway(tmp_path, "daemon-b", **env)
    run, before, during, after = "imapkill", 10, 30, 10
    total = before + during + after
    appended = 0

    def deliver(first: int, n: int) -> None:
        nonlocal appended
        for i in range(first, first + n):
            append(dovecot, bytes(numbered_mail(run, i)))
            appended += 1

    def ingested() -> int:
        return len(stored(pg_schema_url, run)[1])

    try:
        a.start()
        wait_for(lambda: a.metric("gateway_lease_held", **LEASE) == 1, what="a holds the lease")
        b.start()
        # b's poller is up (the gauge exists) and waits: a keeps the mailbox.
        wait_for(lambda: b.metric("gateway_lease_held", **LEASE) == 0, what="b waiting")
        deliver(0, before)
        wait_for(lambda: ingested() == before, timeout=60, what="mail ingested by a")
        # Mail keeps arriving while a dies, possibly with one of them in a's hands.
        burst = threading.Thread(target=deliver, args=(before, during))
        burst.start()
        wait_for(lambda: ingested() > before, timeout=60, what="a busy with the burst")
        a.kill()
        killed_at = time.monotonic()
        ingested_by_a = ingested()
        burst.join()
        deliver(before + during, after)  # and after it is gone
        wait_for(
            lambda: b.metric("gateway_lease_held", **LEASE) == 1,
            timeout=LEASE_SECONDS + 15,
            what="b takes the lease",
        )
        takeover = time.monotonic() - killed_at
        wait_for(lambda: ingested() == total, timeout=120, what="all mail ingested by b")
        wait_for(lambda: count(dovecot, "Processed") == total, what="all mail filed")
        assert count(dovecot, "INBOX") == 0
        redelivered = redeliveries(pg_schema_url)
    finally:
        a.kill()
        b.stop()

    raw, tickets = stored(pg_schema_url, run)
    expected = {f"{run}-{n:05d}@client.example" for n in range(total)}
    record(
        "kill -9 the IMAP lease holder (2 daemons, PostgreSQL)",
        lease_seconds=LEASE_SECONDS,
        takeover_seconds=round(takeover, 1),
        delivered=total,
        ingested_by_killed=ingested_by_a,
        ingested_by_survivor=len(tickets) - ingested_by_a,
        stored=len(raw),
        duplicates=sum(c - 1 for c in raw.values()) + sum(c - 1 for c in tickets.values()),
        refetched_after_commit=redelivered,
        lost=len(expected - set(raw)),
    )
    assert set(raw) == expected and all(c == 1 for c in raw.values())
    assert len(tickets) == total and all(c == 1 for c in tickets.values())
