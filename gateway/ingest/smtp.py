"""SMTP intake: an aiosmtpd handler that hands each message to the pipeline.

RFC 5321 §4.5.3.1 / §6.1: a 250 reply takes responsibility for the message, so it is given only
after the raw bytes and their ticket change are committed. Anything else is a 4xx (the sending
MTA retries) or a 5xx with a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway import metrics
from gateway.config import Settings
from gateway.group_commit import GroupCommitter
from gateway.ingest.mail import MailIntake, mail_to_intake
from gateway.intake import Intake, Source
from gateway.pipeline import (
    Created,
    Duplicate,
    Outcome,
    Pipeline,
    Quarantined,
    RawInput,
    Refused,
    Updated,
)
from gateway.storage.db import StoreUnavailable

log = logging.getLogger(__name__)

TEMPFAIL = "451 4.3.0 Ticket store unavailable, try again later"


def reply_for(outcome: Outcome) -> str:
    """The one table from pipeline outcomes to SMTP replies."""
    match outcome:
        case Created(key) | Updated(key):
            return f"250 2.0.0 OK {key}"
        case Duplicate(key):
            return f"250 2.0.0 OK duplicate of {key or 'an earlier delivery'}"
        case Quarantined(reason):
            return f"250 2.0.0 OK kept for review ({reason[:100]})"
        case Refused(reason):
            return f"550 5.7.1 {reason[:200]}"
    raise AssertionError(f"unmapped outcome {outcome!r}")


class IntakeHandler:
    """aiosmtpd handler: recipient policy and DATA -> pipeline, off the event loop."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        executor: ThreadPoolExecutor,
        committer: GroupCommitter | None = None,
    ):
        self.pipeline = pipeline
        self.settings = settings
        self.executor = executor
        # With a committer, its writer thread parses and stores whatever the connections have
        # delivered meanwhile, in one transaction.
        self.committer = committer
        self.inflight = 0
        self.accepting = True

    def accepts(self, address: str) -> bool:
        address = address.lower()
        cfg = self.settings.smtp
        local, _, domain = address.rpartition("@")
        # Plus-addressed forms of our addresses are the tickets' signed reply addresses
        # (support+INC-000123.token@...): notifications name them in Reply-To.
        base = f"{local.partition('+')[0]}@{domain}"
        return address in cfg.addresses or base in cfg.addresses or domain in cfg.domains

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self.accepts(address):
            return f"550 5.1.1 <{address}>: no such support address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.accepting:
            return "421 4.3.2 Shutting down, try again later"
        data = envelope.original_content or b""
        self.inflight += 1
        metrics.SMTP_SESSIONS.inc()
        try:
            loop = asyncio.get_running_loop()
            if self.committer is None:
                outcome = await loop.run_in_executor(self.executor, self._store, data, envelope)
            else:
                prepare = partial(self._prepare, data, envelope)
                outcome = await asyncio.wrap_future(self.committer.submit(prepare))
        except StoreUnavailable as exc:
            log.warning("smtp: store unavailable, answered 451: %s", exc)
            return TEMPFAIL
        finally:
            self.inflight -= 1
            metrics.SMTP_SESSIONS.dec()
        return reply_for(outcome)

    def _parse(self, data: bytes, envelope: Envelope) -> MailIntake:
        return mail_to_intake(
            data,
            Source.SMTP,
            self.settings,
            envelope_from=envelope.mail_from or "",
            envelope_to=tuple(envelope.rcpt_tos),
        )

    def _store(self, data: bytes, envelope: Envelope) -> Outcome:
        return self.pipeline.process(*self._prepare(data, envelope))

    def _prepare(self, data: bytes, envelope: Envelope) -> tuple[Intake, RawInput]:
        mail = self._parse(data, envelope)
        return mail.intake, mail.raw

    async def handle_exception(self, error: BaseException) -> str:
        # aiosmtpd's default is "500 Error: (Class) message": the sender would bounce the mail
        # and learn our internals. An unexpected failure must make it retry instead.
        log.exception("smtp: unexpected error", exc_info=error)
        return "451 4.3.0 Temporary failure, try again later"


class GatewaySMTP(SMTP):
    """aiosmtpd's server with a size refusal that tells the sender the limit."""

    async def push(self, status: str) -> None:
        # aiosmtpd answers oversize mail with a fixed "552 Error: ..." text; RFC 5321 §4.5.3.1.10
        # wants 552 either way, and a sender can act on the limit only if it is told it.
        if status.startswith("552 Error"):
            status = f"552 5.3.4 Message too big: the limit is {self.data_size_limit} bytes"
        await super().push(status)


class PasswordAuthenticator:
    """SMTP AUTH against `[smtp] users`, compared in constant time."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {u.encode(): p.encode() for u, p in users.items()}

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        expected = self.users.get(data.login, b"")
        # Compare even for unknown users so timing does not reveal which logins exist.
        ok = hmac.compare_digest(expected or b"\0" * 32, data.password) and bool(expected)
        return AuthResult(success=ok, handled=False)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    cfg = settings.smtp
    if not (cfg.tls_cert and cfg.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return context


def make_smtp_factory(handler: IntakeHandler, settings: Settings) -> Any:
    cfg = settings.smtp
    context = tls_context(settings)
    authenticator = PasswordAuthenticator(cfg.users) if cfg.users else None

    def factory() -> SMTP:
        return GatewaySMTP(
            handler,
            data_size_limit=cfg.max_message_bytes,
            hostname=cfg.hostname,
            ident="ESMTP ops-gateway",
            enable_SMTPUTF8=True,
            tls_context=context,
            require_starttls=cfg.require_tls and context is not None,
            authenticator=authenticator,
            auth_required=cfg.auth_required,
            auth_require_tls=cfg.auth_require_tls,
        )

    return factory
