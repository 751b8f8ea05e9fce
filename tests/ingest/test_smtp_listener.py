"""The SMTP listener over real sockets: size limit, STARTTLS, AUTH, recipient policy."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.config import Settings, SmtpSettings
from gateway.ingest.smtp import IntakeHandler, make_smtp_factory
from gateway.pipeline import Pipeline
from gateway.rules.holder import RulesHolder
from gateway.storage.db import Database
from gateway.storage.models import Ticket

RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
MESSAGE = b"From: alice@example.com\r\nSubject: VPN down\r\n\r\nhelp\r\n"


@pytest.fixture
def listener(db: Database, settings: Settings) -> Iterator[Callable[..., int]]:
    """Start a listener with the given [smtp] overrides; returns its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    executor = ThreadPoolExecutor(4)
    servers = []

    def start(**smtp: object) -> int:
        cfg = settings.model_copy(
            update={"smtp": SmtpSettings(**{**settings.smtp.model_dump(), **smtp})}
        )
        pipeline = Pipeline(db, cfg, RulesHolder(RULES).classify)
        handler = IntakeHandler(pipeline, cfg, executor)
        server = asyncio.run_coroutine_threadsafe(
            loop.create_server(make_smtp_factory(handler, cfg), "127.0.0.1", 0), loop
        ).result(10)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    executor.shutdown()


def tickets(db: Database) -> int:
    with db.unit(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(Ticket))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_oversize_mail_is_refused_with_552_naming_the_limit(listener, db) -> None:
    port = listener(max_message_bytes=2048)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("size") and client.esmtp_features["size"] == "2048"
        client.mail("alice@example.com")
        client.rcpt("support@example.com")
        code, reply = client.data(MESSAGE + (b"x" * 70 + b"\r\n") * 60)
    assert code == 552 and b"2048 bytes" in reply
    assert tickets(db) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_domain_wide_acceptance(listener, db) -> None:
    port = listener(addresses=[], domains=["ops.example.com"])
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("alice@example.com")
        assert client.rcpt("anything@ops.example.com")[0] == 250
        assert client.rcpt("anything@example.com")[0] == 550
        assert client.data(MESSAGE)[0] == 250
    assert tickets(db) == 1


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own throwaway certificate
    return context


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_starttls_and_auth(listener, db, certificate) -> None:
    cert, key = certificate
    port = listener(
        tls_cert=cert,
        tls_key=key,
        require_tls=True,
        auth_required=True,
        users={"relay": "correct horse"},
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.mail("alice@example.com")
        assert code == 530  # must STARTTLS first
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=client_context())
        client.ehlo()
        assert client.mail("alice@example.com")[0] == 530  # must AUTH first
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("relay", "wrong")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.starttls(context=client_context())
        client.login("relay", "correct horse")
        client.sendmail("alice@example.com", ["support@example.com"], MESSAGE)
    assert tickets(db) == 1


def test_inconsistent_tls_or_auth_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        SmtpSettings(tls_cert="/x.pem")
    with pytest.raises(ValueError, match="users"):
        SmtpSettings(auth_required=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_signed_reply_addresses_of_our_address_are_accepted(listener, db) -> None:
    port = listener(addresses=["support@example.com"])
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("alice@example.com")
        assert client.rcpt("support+INC-000001.0a1b2c3d4e@example.com")[0] == 250
        assert client.rcpt("other+INC-000001.0a1b2c3d4e@example.com")[0] == 550
