"""PostgreSQL unreachable for ~30 s under a running daemon: SMTP answers 451 and the
Alertmanager webhook 503 (both senders keep the message and retry), /readyz says 503; once
the database is back everything retried is stored, once.

The outage is a TcpProxy between the daemon and the real PostgreSQL that the test cuts
(every connection dropped, new ones refused) and restores on the same port.
GATEWAY_FAULTS_OUTAGE_SECONDS shortens it for local runs; CI uses the default 30.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.daemons import wait_for
from tests.faults.harness import Gateway, RetryingMta, record, redeliveries, stored
from tests.ingest.alerting import am_alert, am_body
from tests.tcpproxy import TcpProxy

OUTAGE_SECONDS = float(os.environ.get("GATEWAY_FAULTS_OUTAGE_SECONDS", "30"))
TOKEN = "faults-am-token-0123456789"


class AlertSender:
    """Posts one Alertmanager batch every `interval`, each retried until 200 as Alertmanager
    does (it retries a 5xx with backoff and keeps the notification)."""

    def __init__(self, port: int, interval: float = 0.5) -> None:
        self.url = f"http://127.0.0.1:{port}/webhooks/alertmanager"
        self.interval = interval
        self.codes: Counter[int] = Counter()
        self.sent: list[str] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join()

    def _run(self) -> None:
        n = 0
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                fingerprint = f"outage-{n:04d}"
                self._deliver(http, fingerprint)
                self.sent.append(fingerprint)
                n += 1
                self.stop.wait(self.interval)

    def _deliver(self, http: httpx.Client, fingerprint: str) -> None:
        body = am_body(am_alert(fingerprint, name=f"DiskFull{fingerprint}"))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        backoff = 0.1
        while True:
            try:
                code = http.post(self.url, content=body, headers=headers).status_code
            except httpx.HTTPError:
                code = 0
            self.codes[code] += 1
            if code == 200:
                return
            assert code in (0, 503), f"{fingerprint}: HTTP {code}"
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)


def alert_tickets(url: str) -> Counter[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT fingerprint FROM tickets WHERE fingerprint LIKE 'outage-%'")
            )
            return Counter(str(r[0]) for r in rows)
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_postgres_outage_during_intake(pg_schema_url: str, tmp_path: Path) -> None:
    direct = make_url(pg_schema_url)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.start()
    via_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    gateway = Gateway(
        tmp_path,
        GATEWAY_DATABASE__URL=via_proxy,
        GATEWAY_WEBHOOKS__ALERTMANAGER__TOKEN=TOKEN,
    )
    gateway.start()
    run = "outage"
    mta = RetryingMta(gateway.smtp_port, run, connections=4)
    alerts = AlertSender(gateway.http_port)
    readyz: Counter[int] = Counter()
    try:
        mta.send(100)  # before: all accepted
        blast = threading.Thread(target=mta.send, args=(400, 100))
        alerts.start()
        proxy.cut()
        cut_at = time.monotonic()
        blast.start()
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            readyz[gateway.readyz()] += 1
            time.sleep(0.5)
        proxy.start()  # the same port: the database is back
        outage = time.monotonic() - cut_at
        wait_for(lambda: gateway.readyz() == 200, timeout=60, what="ready after the outage")
        blast.join()
        mta.send(100, 500)  # after: accepted at once
        alerts.join()
    finally:
        alerts.stop.set()
        proxy.cut()
        proxy.start()  # let the daemon's shutdown reach the database
        gateway.stop()
        proxy.cut()

    raw, tickets = stored(pg_schema_url, run)
    alert_rows = alert_tickets(pg_schema_url)
    expected = {f"{run}-{n:05d}@client.example" for n in range(600)}
    figures = mta.figures
    record(
        f"PostgreSQL outage {outage:.0f}s during intake",
        smtp_sent=figures.sent,
        smtp_acknowledged=figures.acknowledged,
        smtp_retried=figures.retried,
        smtp_replies=dict(sorted(figures.codes.items())),
        smtp_stored=len(raw),
        smtp_duplicates=sum(c - 1 for c in raw.values()) + sum(c - 1 for c in tickets.values()),
        smtp_lost=len(expected - set(raw)),
        redelivered_after_commit=redeliveries(pg_schema_url),
        alerts_sent=len(alerts.sent),
        alert_replies=dict(sorted(alerts.codes.items())),
        alerts_stored=len(alert_rows),
        alert_duplicates=sum(c - 1 for c in alert_rows.values()),
        readyz_during=dict(sorted(readyz.items())),
    )
    # During the cut: "retry later" on both paths, never a bounce, and not ready.
    assert figures.codes[451] > 0, figures.codes
    assert alerts.codes[503] > 0, alerts.codes
    assert not figures.refused, figures.refused[:5]
    assert readyz[503] > 0 and readyz[200] == 0, readyz
    # After: everything that was retried is stored, once.
    assert figures.acknowledged == 600
    assert set(raw) == expected and all(c == 1 for c in raw.values())
    assert len(tickets) == 600 and all(c == 1 for c in tickets.values())
    assert set(alert_rows) == set(alerts.sent) and all(c == 1 for c in alert_rows.values())
