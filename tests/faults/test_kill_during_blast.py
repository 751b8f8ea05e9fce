"""kill -9 the daemon three times during a 5,000-message SMTP blast from a retrying client.

RFC 5321 §4.5.3.1 / §6.1: a 250 hands responsibility for the message to us, so a 250'd
message must survive any crash; a transaction cut off before its 250 stays the client's, and
its retry must not make a second ticket. The client never resends a message it got a 250
for, so "all 5,000 stored once at the end" proves both at once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.faults.harness import Gateway, RetryingMta, record, redeliveries, stored

MESSAGES = int(os.environ.get("GATEWAY_FAULTS_MESSAGES", "5000"))
KILLS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.mark.timeout(900)
def test_kill_9_three_times_during_a_blast(database_url: str, tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, GATEWAY_DATABASE__URL=database_url)
    gateway.start()
    run = "blast"
    mta = RetryingMta(gateway.smtp_port, run, connections=8)
    kills_at = [MESSAGES * (k + 1) // (KILLS + 1) for k in range(KILLS)]
    killed: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def killer() -> None:
        # Kill once the client has that many 250s, mid-blast, then restart at once (what
        # systemd's Restart=always does); clients meanwhile see resets and refusals.
        try:
            for threshold in kills_at:
                while len(mta.acked) < threshold and not done.is_set():
                    done.wait(0.01)
                if done.is_set():
                    return
                gateway.kill()
                killed.append(len(mta.acked))
                gateway.start()
        except BaseException as exc:
            errors.append(exc)

    chaos = threading.Thread(target=killer)
    chaos.start()
    try:
        mta.send(MESSAGES)
    finally:
        done.set()
        chaos.join()
        gateway.stop()
    assert not errors, errors
    assert len(killed) == KILLS, f"only {len(killed)} kills happened: {killed}"

    raw, tickets = stored(database_url, run)
    figures = mta.figures
    expected = {f"{run}-{n:05d}@client.example" for n in range(MESSAGES)}
    lost = expected - set(raw)
    duplicates = sum(c - 1 for c in raw.values()) + sum(c - 1 for c in tickets.values())
    record(
        f"kill -9 x{KILLS} during SMTP blast ({database_url.split(':', 1)[0]})",
        sent=figures.sent,
        acknowledged=figures.acknowledged,
        attempts=figures.attempts,
        retried=figures.retried,
        stored=len(raw),
        tickets=len(tickets),
        duplicates=duplicates,
        redelivered_after_commit=redeliveries(database_url),
        lost=len(lost),
        killed_after_acks=killed,
        replies=dict(sorted(figures.codes.items())),
    )
    assert not figures.refused, figures.refused[:5]  # nothing bounced
    assert figures.acknowledged == MESSAGES
    assert not lost, sorted(lost)[:10]  # every 250'd message survived the kills
    assert set(raw) == expected
    assert all(count == 1 for count in raw.values())
    assert len(tickets) == MESSAGES and all(count == 1 for count in tickets.values())
