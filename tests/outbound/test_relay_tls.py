"""The relay connection with STARTTLS, implicit TLS and AUTH, against a real aiosmtpd server."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway.config import RelaySettings
from gateway.outbound.policy import Failed, Sent
from gateway.outbound.relay import Relay
from tests.outbound.servers import free_port

USER, PASSWORD = "gateway", "relay-secret"


class _Keep:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bool]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), session.authenticated)
        )
        return "250 OK"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_relay(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = _Keep()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield port, cert, handler
    controller.stop()


def _mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = (
        "support@example.com",
        "bob@example.com",
        "[INC-1] 测试",
    )
    msg.set_content("你好")
    return msg


def _send(cfg: RelaySettings) -> Sent | Failed:
    with Relay(cfg) as relay:
        return relay.send(_mail(), "support@example.com", "bob@example.com")  # type: ignore[return-value]


def test_starttls_and_auth_deliver(tls_relay) -> None:
    port, cert, handler = tls_relay
    cfg = RelaySettings(
        host="127.0.0.1", port=port, starttls=True, username=USER, password=PASSWORD,
        ca_file=cert, timeout_seconds=5,
    )  # fmt: skip
    assert isinstance(_send(cfg), Sent)
    assert handler.envelopes == [("support@example.com", ["bob@example.com"], True)]


def test_wrong_password_is_retried_not_dropped(tls_relay) -> None:
    port, cert, handler = tls_relay
    cfg = RelaySettings(
        host="127.0.0.1", port=port, starttls=True, username=USER, password="wrong",
        ca_file=cert, timeout_seconds=5,
    )  # fmt: skip
    outcome = _send(cfg)
    assert isinstance(outcome, Failed) and "authentication failed" in outcome.error
    assert handler.envelopes == []


def test_untrusted_certificate_is_refused(tls_relay) -> None:
    # Without the CA the relay's certificate is unknown: the mail must not go out in the clear
    # or to an impostor; it waits for a retry.
    port, _cert, handler = tls_relay
    cfg = RelaySettings(
        host="127.0.0.1", port=port, starttls=True, username=USER, password=PASSWORD,
        timeout_seconds=5,
    )  # fmt: skip
    outcome = _send(cfg)
    assert isinstance(outcome, Failed) and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert handler.envelopes == []


def test_relay_that_requires_tls_refuses_plain_clients(tls_relay) -> None:
    port, cert, handler = tls_relay
    cfg = RelaySettings(host="127.0.0.1", port=port, ca_file=cert, timeout_seconds=5)
    outcome = _send(cfg)
    assert isinstance(outcome, Failed)
    assert handler.envelopes == []
