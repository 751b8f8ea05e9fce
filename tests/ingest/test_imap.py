"""The IMAP poller against a real Dovecot: mail in, ticket out, message filed, nothing lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.header import Header
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from gateway.config import (
    DatabaseSettings,
    ImapMailbox,
    RulesSettings,
    Settings,
    load_settings,
)
from gateway.daemon import Daemon
from gateway.ingest.imap import ImapPoller
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage import migrate
from gateway.storage.db import Database
from gateway.storage.models import IntakeKey, RawMessage, Ticket
from tests.ingest.dovecot import Dovecot, skip_or_fail_without_dovecot

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
# Nothing listens on port 1: every database connection attempt fails at once.
DOWN = "postgresql+psycopg://gateway@127.0.0.1:1/gateway"
WAIT = 60.0  # generous: the condition is awaited, never slept for

MakePoller = Callable[..., ImapPoller]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    skip_or_fail_without_dovecot()
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pipeline(db: Database, settings: Settings) -> Pipeline:
    return Pipeline(db, settings, RulesHolder(RULES).classify)


def poller_factory(
    server: Dovecot, pipeline: Pipeline, settings: Settings
) -> tuple[MakePoller, list[ImapPoller]]:
    started: list[ImapPoller] = []

    def make(**overrides: Any) -> ImapPoller:
        fields: dict[str, Any] = {
            "name": f"test{len(started)}",
            "host": server.host,
            "port": server.port,
            "ssl": False,
            "username": server.user,
            "password": server.password,
            # Long: anything picked up within a test's wait came through IDLE, not a poll.
            "poll_seconds": 600.0,
        }
        poller = ImapPoller(ImapMailbox(**(fields | overrides)), pipeline, settings)
        poller.start()
        started.append(poller)
        return poller

    return make, started


@pytest.fixture
def make_poller(dovecot: Dovecot, pipeline: Pipeline, settings: Settings) -> Iterator[MakePoller]:
    make, started = poller_factory(dovecot, pipeline, settings)
    yield make
    for poller in started:
        # stop() interrupts IDLE at once (a 600 s poll interval would otherwise show here).
        assert poller.stop(timeout=15), "poller did not stop"


# --- helpers -------------------------------------------------------------------------------


@contextmanager
def imap(server: Dovecot) -> Iterator[IMAPClient]:
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    client.login(server.user, server.password)
    try:
        yield client
    finally:
        client.logout()


def append(server: Dovecot, data: bytes, folder: str = "INBOX") -> None:
    with imap(server) as client:
        client.append(folder, data)


def folder_flags(server: Dovecot, folder: str) -> list[tuple[bytes, ...]]:
    """The flags of every message in `folder` ([] if it does not exist), without \\Recent
    (a per-session flag, RFC 3501 §2.3.2, that depends on who looked first)."""
    with imap(server) as client:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        fetched = client.fetch(uids, ["FLAGS"]) if uids else {}
        return [
            tuple(f for f in fetched[uid][b"FLAGS"] if f != b"\\Recent") for uid in sorted(fetched)
        ]


def count(server: Dovecot, folder: str) -> int:
    return len(folder_flags(server, folder))


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def tickets(db: Database) -> list[Ticket]:
    with db.unit(readonly=True) as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def mail(subject: str = "Printer on 3F is jammed", body: str = "It blinks red.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(body)
    return bytes(msg)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- tests ---------------------------------------------------------------------------------


def test_mail_becomes_a_ticket_and_is_moved_to_processed(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    poller = make_poller()
    append(dovecot, mail())
    wait_for(lambda: count(dovecot, "Processed") == 1, "the message in Processed")
    assert count(dovecot, "INBOX") == 0
    [ticket] = tickets(db)
    assert (ticket.source, ticket.subject, ticket.requester) == (
        "imap",
        "Printer on 3F is jammed",
        "alice@example.com",
    )
    assert metric("gateway_imap_up", mailbox=poller.mailbox.name) == 1
    assert metric("gateway_imap_messages_total", mailbox=poller.mailbox.name, outcome="created")
    # Fetched with BODY.PEEK[]: the poller itself never marked it read.
    assert folder_flags(dovecot, "Processed") == [()]


def test_redelivery_makes_no_second_ticket(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    make_poller()
    data = mail()
    append(dovecot, data)
    wait_for(lambda: count(dovecot, "Processed") == 1, "the first delivery filed")
    append(dovecot, data)
    wait_for(lambda: count(dovecot, "Processed") == 2, "the second delivery filed")
    assert len(tickets(db)) == 1
    with db.unit(readonly=True) as session:
        assert session.scalar(select(IntakeKey.deliveries)) == 2


def test_unparseable_message_is_quarantined_with_its_raw_bytes(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    make_poller()
    # mailparse.ParseError covers input that is not a message at all: blank lines only.
    garbage = b"\r\n\r\n"
    append(dovecot, garbage)
    wait_for(lambda: count(dovecot, "Quarantine") == 1, "the message in Quarantine")
    assert count(dovecot, "INBOX") == 0
    assert tickets(db) == []
    with db.unit(readonly=True) as session:
        [raw] = session.scalars(select(RawMessage)).all()
        assert (raw.source, raw.status, raw.data) == ("imap", "quarantined", garbage)
        assert raw.reason


def test_idle_picks_up_a_new_message(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    poller = make_poller()  # poll_seconds=600: only IDLE can be this quick
    wait_for(poller.connected.is_set, "the poller to connect")
    append(dovecot, mail("first"))
    wait_for(lambda: len(tickets(db)) == 1, "the first ticket")
    # The poller is now waiting in IDLE; the server's EXISTS response must wake it.
    append(dovecot, mail("second"))
    wait_for(lambda: len(tickets(db)) == 2, "the second ticket, through IDLE")
    assert [t.subject for t in tickets(db)] == ["first", "second"]


def test_poller_survives_a_dovecot_restart(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    poller = make_poller()
    append(dovecot, mail("before"))
    wait_for(lambda: len(tickets(db)) == 1, "the ticket from before the restart")
    dovecot.stop()
    wait_for(lambda: not poller.connected.is_set(), "the poller to notice")
    dovecot.start()  # same port, same maildir
    append(dovecot, mail("after"))
    wait_for(lambda: len(tickets(db)) == 2, "the ticket from after the restart")
    assert metric("gateway_imap_up", mailbox=poller.mailbox.name) == 1
    assert count(dovecot, "Processed") == 2


def test_empty_processed_folder_flags_seen_instead_of_moving(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    make_poller(processed_folder="")
    append(dovecot, mail("one"))
    wait_for(lambda: folder_flags(dovecot, "INBOX") == [(b"\\Seen",)], "one message flagged")
    append(dovecot, mail("two"))
    wait_for(lambda: len(tickets(db)) == 2, "the second ticket")
    wait_for(lambda: folder_flags(dovecot, "INBOX") == [(b"\\Seen",)] * 2, "both flagged")
    with imap(dovecot) as client:
        assert not client.folder_exists("Processed")
    with db.unit(readonly=True) as session:
        # The first message was not read again once it was \Seen.
        assert session.scalars(select(IntakeKey.deliveries)).all() == [1, 1]


def test_chinese_rfc2047_subject_decodes(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    subject = "服务器磁盘空间不足，请尽快处理"
    body = "机房 3 楼的文件服务器报警，磁盘使用率 98%。"
    encoded = Header(subject, "gb18030").encode()
    assert encoded.startswith("=?gb18030?")
    raw = (
        (
            "From: =?gbk?B?1cXI/Q==?= <zhangsan@example.cn>\r\n"
            "To: support@example.com\r\n"
            f"Subject: {encoded}\r\n"
            f"Message-ID: {make_msgid(domain='example.cn')}\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: text/plain; charset="GBK"\r\n'
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
        ).encode("ascii")
        + body.encode("gbk")
        + b"\r\n"
    )
    make_poller()
    append(dovecot, raw)
    wait_for(lambda: len(tickets(db)) == 1, "the ticket")
    [ticket] = tickets(db)
    assert ticket.subject == subject
    assert body in ticket.description
    assert ticket.requester_name == "张三"


@pytest.mark.parametrize(
    "capabilities",
    ["IMAP4rev1 LITERAL+ UIDPLUS", "IMAP4rev1 LITERAL+"],
    ids=["copy-uid-expunge", "copy-expunge"],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_server_without_idle_or_move_is_polled_and_copied(
    capabilities: str, pipeline: Pipeline, settings: Settings, db: Database
) -> None:
    skip_or_fail_without_dovecot()
    # A server advertising neither IDLE (RFC 2177) nor MOVE (RFC 6851), with and without
    # UIDPLUS (RFC 4315): polling, and COPY + \Deleted + (UID) EXPUNGE.
    server = Dovecot(capabilities=capabilities)
    server.start()
    make, started = poller_factory(server, pipeline, settings)
    try:
        make(poll_seconds=0.2)
        append(server, mail())
        wait_for(lambda: count(server, "Processed") == 1, "the message copied to Processed")
        wait_for(lambda: count(server, "INBOX") == 0, "the original expunged")
        assert len(tickets(db)) == 1
    finally:
        for poller in started:
            assert poller.stop(timeout=15)
        server.cleanup()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_stop_logs_out_cleanly(dovecot: Dovecot, make_poller: MakePoller) -> None:
    poller = make_poller()
    wait_for(poller.connected.is_set, "the poller to connect")
    assert poller.stop(timeout=15)
    assert metric("gateway_imap_up", mailbox=poller.mailbox.name) == 0
    # Dovecot logs "Logged out" for a LOGOUT (RFC 3501 §6.1.3), "Disconnected" otherwise.
    wait_for(lambda: "Disconnected: Logged out" in dovecot.log, "dovecot to log the LOGOUT")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_refused_login_is_logged_clearly_and_not_hammered(
    dovecot: Dovecot, make_poller: MakePoller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.ingest.imap")
    poller = make_poller(password="wrong")
    wait_for(lambda: "check username and password" in caplog.text, "the login error")
    # The next try is minutes away, not a second: exactly one attempt so far.
    assert caplog.text.count("refused the login") == 1
    assert "next try in 300s" in caplog.text
    assert poller.stop(timeout=5), "stop() must interrupt the wait"


def test_store_outage_leaves_the_message_in_place(dovecot: Dovecot, tmp_path: Path) -> None:
    skip_or_fail_without_dovecot()
    base = load_settings(None, require_file=False)
    down = base.model_copy(update={"database": DatabaseSettings(url=DOWN)})
    down_db = Database(down.database)
    make, started = poller_factory(
        dovecot, Pipeline(down_db, down, RulesHolder(RULES).classify), down
    )
    tries = metric("gateway_intake_total", source="imap", outcome="unavailable")
    append(dovecot, mail("while the database is down"))
    poller = make()
    wait_for(
        lambda: metric("gateway_intake_total", source="imap", outcome="unavailable") > tries,
        "a failed attempt to store",
    )
    assert poller.stop(timeout=15), "stop() must interrupt the store backoff"
    down_db.dispose()
    # Untouched: still in INBOX, not \Seen, nothing filed.
    assert folder_flags(dovecot, "INBOX") == [()]
    assert count(dovecot, "Processed") == 0
    assert metric("gateway_imap_messages_total", mailbox=poller.mailbox.name, outcome="unavailable")

    # The store is back: the same message goes through.
    up = base.model_copy(
        update={"database": DatabaseSettings(url=f"sqlite:///{tmp_path / 'up.db'}")}
    )
    up_db = Database(up.database)
    migrate.upgrade(up_db.engine)
    make, started = poller_factory(dovecot, Pipeline(up_db, up, RulesHolder(RULES).classify), up)
    try:
        make(name="after-outage")
        wait_for(lambda: count(dovecot, "Processed") == 1, "the message filed")
        with up_db.unit(readonly=True) as session:
            assert session.scalar(select(func.count()).select_from(Ticket)) == 1
    finally:
        for p in started:
            assert p.stop(timeout=15)
        up_db.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_daemon_starts_and_stops_its_pollers(
    dovecot: Dovecot, settings: Settings, db: Database
) -> None:
    box = ImapMailbox(
        name="daemon",
        host=dovecot.host,
        port=dovecot.port,
        ssl=False,
        username=dovecot.user,
        password=dovecot.password,
        poll_seconds=600.0,
    )
    config = settings.model_copy(
        update={
            "imap": [box],
            "smtp": settings.smtp.model_copy(update={"enabled": False}),
            "http": settings.http.model_copy(update={"enabled": False}),
            "rules": RulesSettings(path=str(RULES), watch_seconds=0),
        }
    )
    daemon = Daemon(config)

    async def scenario() -> int:
        running = asyncio.create_task(daemon.run())
        await asyncio.to_thread(append, dovecot, mail("through the daemon"))
        await asyncio.to_thread(wait_for, lambda: len(tickets(db)) == 1, "the ticket")
        daemon.stopping.set()  # what SIGTERM does
        return await asyncio.wait_for(running, 30)

    assert asyncio.run(scenario()) == 0
    assert count(dovecot, "Processed") == 1
    wait_for(lambda: "Disconnected: Logged out" in dovecot.log, "the poller's LOGOUT")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_uidvalidity_change_is_logged_and_reprocessing_is_safe(
    dovecot: Dovecot, make_poller: MakePoller, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.ingest.imap")
    make_poller(processed_folder="")
    append(dovecot, mail("before the renumbering"))
    wait_for(lambda: folder_flags(dovecot, "INBOX") == [(b"\\Seen",)], "the first message done")
    # A rebuilt mailbox: new UIDVALIDITY, and the flags are lost with it (RFC 3501 §2.3.1.1).
    with imap(dovecot) as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search("ALL"), [b"\\Seen"])
    dovecot.set_uidvalidity("INBOX", 12345)
    append(dovecot, mail("after the renumbering"))
    wait_for(lambda: folder_flags(dovecot, "INBOX") == [(b"\\Seen",)] * 2, "both messages done")
    wait_for(lambda: "UIDVALIDITY" in caplog.text, "the UIDVALIDITY warning")
    assert [t.subject for t in tickets(db)] == ["before the renumbering", "after the renumbering"]
    with db.unit(readonly=True) as session:
        # The first message went through again and was recognised as a duplicate.
        assert sorted(session.scalars(select(IntakeKey.deliveries))) == [1, 2]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_backlog_is_worked_off_in_bounded_batches(
    dovecot: Dovecot, make_poller: MakePoller, db: Database
) -> None:
    with imap(dovecot) as client:
        for n in range(7):
            client.append("INBOX", mail(f"backlog {n}"))
    make_poller(batch=3)
    wait_for(lambda: count(dovecot, "Processed") == 7, "the whole backlog filed")
    # Oldest first, across batch boundaries.
    assert [t.subject for t in tickets(db)] == [f"backlog {n}" for n in range(7)]
