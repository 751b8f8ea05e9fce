"""Several `gateway run` on one host and one SQLite file: the SMTP port shared with
SO_REUSEPORT, the writer slot shared through the lock file beside the database."""

from __future__ import annotations

import re
import smtplib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from gateway.config import DatabaseSettings
from gateway.storage.db import Database, WriterLock
from tests.daemons import free_port, init, running

HOLDER = """
import sys, time
from gateway.storage.db import WriterLock
lock = WriterLock(sys.argv[1])
with lock:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_writer_lock_excludes_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "db.writer")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path, "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = WriterLock(path)
        with lock:
            # We only get here once the other process let go, i.e. after it exited its block.
            assert holder.wait(timeout=30) == 0
        lock.close()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_writer_lock_serialises_threads_of_one_process(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.writer"))
    inside, most = 0, 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(200):
            with lock:
                with guard:
                    inside += 1
                    most = max(most, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lock.close()
    assert most == 1


def test_a_file_database_uses_the_lock_file(tmp_path: Path) -> None:
    db = Database(DatabaseSettings(url=f"sqlite:///{tmp_path}/gateway.db"))
    with db.unit() as session:
        session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
    assert (tmp_path / "gateway.db.writer").exists()
    db.dispose()


@pytest.fixture
def two_daemons(tmp_path: Path) -> Iterator[tuple[int, list[int], Path]]:
    folder = init(tmp_path)
    smtp_port = free_port()
    shared = {"GATEWAY_SMTP__REUSE_PORT": "true"}
    with (
        running(folder, shared, smtp_port=smtp_port, log_name="daemon0.log") as first,
        running(folder, shared, smtp_port=smtp_port, log_name="daemon1.log") as second,
    ):
        yield smtp_port, [first.http_port, second.http_port], tmp_path
        assert first.stop() == 0 and second.stop() == 0


def smtp_intake(http_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5).text
    found = re.findall(r'^gateway_intake_total\{[^}]*source="smtp"[^}]*\} (\S+)$', text, re.M)
    return sum(float(v) for v in found)


def test_two_daemons_share_the_smtp_port_and_one_sqlite_file(two_daemons) -> None:
    smtp_port, http_ports, folder = two_daemons
    per_connection, connections = 15, 16
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
                for i in range(per_connection):
                    msg = EmailMessage()
                    msg["From"] = f"user{c}@example.com"
                    msg["To"] = "support@example.com"
                    msg["Subject"] = f"打印机故障 {c}-{i}"
                    msg["Message-ID"] = f"<multi-{c}-{i}@example.com>"
                    msg.set_content("三楼打印机卡纸。The printer on floor 3 jams.")
                    smtp.send_message(msg)
                    if i == 0:  # a redelivery must still make no second ticket
                        smtp.send_message(msg)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    with sqlite3.connect(folder / "gateway.db") as conn:
        subjects = [r[0] for r in conn.execute("SELECT subject FROM tickets")]
    expected = {f"打印机故障 {c}-{i}" for c in range(connections) for i in range(per_connection)}
    assert sorted(subjects) == sorted(expected)  # every message once, none twice
    # Both processes took connections: the kernel spread them over the two listeners.
    counts = [smtp_intake(port) for port in http_ports]
    assert sum(counts) == connections * (per_connection + 1)
    assert all(count > 0 for count in counts), counts
