"""What the fault tests share: a real `gateway run` the test can kill -9 and restart, a
client that retries mail the way an MTA does, and the figures table they print."""

from __future__ import annotations

import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import create_engine, text

from tests.daemons import GATEWAY, free_port, init, wait_for

# Figures of every fault test in this run, printed at the end (conftest.py) and copied into
# bench/RESULTS.md by hand.
FIGURES: list[tuple[str, dict[str, object]]] = []


def record(test: str, **figures: object) -> None:
    FIGURES.append((test, figures))
    print(f"\n[faults] {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


class Gateway:
    """One `gateway run` process over a folder made by `gateway init`, restartable on the same
    ports, so clients reconnect to the same address as they would after a real crash."""

    def __init__(self, folder: Path, name: str = "daemon", **env: str) -> None:
        self.folder = folder
        self.name = name
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        if not (folder / "gateway.toml").exists():
            init(folder)
        self.smtp_port, self.http_port = free_port(), free_port()
        self.env.update(
            GATEWAY_SMTP__PORT=str(self.smtp_port),
            GATEWAY_HTTP__PORT=str(self.http_port),
            GATEWAY_DAEMON__DRAIN_SECONDS="2",
        )
        self.env.update(env)
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[str] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the daemon and return once /readyz says 200."""
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in kill()/stop()
        self._log.write(f"\n===== start {self.starts} =====\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(self.folder / "gateway.toml")],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        wait_for(self._ready, timeout=60, what=f"{self.name} ready")

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        return self.readyz() == 200

    def readyz(self) -> int:
        """The /readyz status, or 0 when nothing answers."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=5).status_code
        except httpx.HTTPError:
            return 0

    def metric(self, metric: str, **labels: str) -> float | None:
        """One sample from this process's /metrics (None if absent or unreachable)."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = rf"^{re.escape(metric)}\{{{re.escape(want)}\}} (\S+)$" if labels else None
        for line in text.splitlines():
            if pattern and re.match(pattern, line):
                return float(line.rsplit(" ", 1)[1])
            if not labels and line.startswith(f"{metric} "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def kill(self) -> None:
        """kill -9: no drain, no lease release, no clean close of anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self._close_log()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


SUBJECT = "磁盘告警"


def numbered_mail(run: str, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"user{n % 50}@example.com"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"{SUBJECT} {run}-{n:05d}"
    msg["Message-ID"] = f"<{run}-{n:05d}@client.example>"
    msg.set_content(f"服务器 db-{n % 7} 磁盘使用率超过 90%。Disk above 90% on db-{n % 7}.")
    return msg


@dataclass
class MtaFigures:
    sent: int = 0  # distinct messages handed to the client
    attempts: int = 0  # DATA transactions tried, first tries and retries
    acknowledged: int = 0  # distinct messages that got a 250
    retried: int = 0  # transactions that failed (reset, refused, 4xx) and were tried again
    codes: Counter[int] = field(default_factory=Counter)  # final reply codes seen
    refused: list[str] = field(default_factory=list)  # 5xx: a real MTA would bounce these


class RetryingMta:
    """Sends numbered messages over several connections; like an MTA, a message whose
    transaction failed (connection reset or refused, 421/451) is queued and tried again until
    it gets 250 (RFC 5321 §4.5.4.1). A 250 means the server took responsibility: never resent."""

    def __init__(self, port: int, run: str, connections: int = 8) -> None:
        self.port = port
        self.run = run
        self.connections = connections
        self.figures = MtaFigures()
        self._queue: list[int] = []
        self._lock = threading.Lock()
        self.acked: set[str] = set()
        self.stop_retrying = threading.Event()

    def send(self, count: int, start: int = 0) -> None:
        """Deliver messages start..start+count-1; returns when every one got a 250."""
        with self._lock:
            self._queue.extend(range(start, start + count))
            self.figures.sent += count
        threads = [threading.Thread(target=self._worker) for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _next(self) -> int | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _worker(self) -> None:
        client: smtplib.SMTP | None = None
        backoff = 0.05
        n = self._next()
        while n is not None:
            msg = numbered_mail(self.run, n)
            with self._lock:
                self.figures.attempts += 1
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                refused = client.send_message(msg)
                assert not refused, refused
                code = 250
            except smtplib.SMTPResponseException as exc:
                code = exc.smtp_code
            except (OSError, smtplib.SMTPException):
                code = 0  # connection refused, reset or closed mid-transaction
            with self._lock:
                self.figures.codes[code] += 1
            if code == 250:
                with self._lock:
                    if msg["Message-ID"] not in self.acked:
                        self.acked.add(msg["Message-ID"])
                        self.figures.acknowledged += 1
                backoff = 0.05
                n = self._next()
                continue
            if 500 <= code < 600 and code != 503:
                with self._lock:
                    self.figures.refused.append(f"{msg['Message-ID']}: {code}")
                n = self._next()
                continue
            # 4xx or a broken connection: a new connection, a short backoff, the same message.
            with self._lock:
                self.figures.retried += 1
            if client is not None:
                _close(client)
                client = None
            time.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 1.0)
        if client is not None:
            _close(client)


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def stored(url: str, run: str) -> tuple[Counter[str], Counter[str]]:
    """How often each Message-ID of `run` is in raw_messages, and each subject in tickets."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            raw = Counter(
                str(r[0]).strip("<>")
                for r in conn.execute(
                    text("SELECT message_id FROM raw_messages WHERE message_id LIKE :p"),
                    {"p": f"%{run}-%"},
                )
            )
            tickets = Counter(
                str(r[0])
                for r in conn.execute(
                    text("SELECT subject FROM tickets WHERE subject LIKE :p"),
                    {"p": f"{SUBJECT} {run}-%"},
                )
            )
    finally:
        engine.dispose()
    return raw, tickets


def redeliveries(url: str) -> int:
    """Deliveries the dedup ledger recognised as repeats: retries of messages already stored
    (the crash or outage came after the commit, before the client read the 250)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(text("SELECT COALESCE(SUM(deliveries - 1), 0) FROM intake_keys"))
            )
    finally:
        engine.dispose()
