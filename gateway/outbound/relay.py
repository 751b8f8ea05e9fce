"""The SMTP relay notifications go through: one connection per batch, errors by class."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from gateway.config import RelaySettings
from gateway.outbound.policy import Failed, Outcome, Sent


class Relay:
    """Opens the connection on first use and keeps it for the batch (`with Relay(cfg) as r`)."""

    def __init__(self, cfg: RelaySettings, local_hostname: str | None = None) -> None:
        self.cfg = cfg
        self.local_hostname = local_hostname
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        context = ssl.create_default_context(cafile=cfg.ca_file or None)
        client: smtplib.SMTP
        if cfg.ssl:
            client = smtplib.SMTP_SSL(
                cfg.host, cfg.port, self.local_hostname, timeout=cfg.timeout_seconds,
                context=context,
            )  # fmt: skip
        else:
            client = smtplib.SMTP(
                cfg.host, cfg.port, self.local_hostname, timeout=cfg.timeout_seconds
            )
        try:
            client.ehlo()
            if cfg.starttls and not cfg.ssl:
                client.starttls(context=context)
                client.ehlo()
            if cfg.username:
                client.login(cfg.username, cfg.password)
        except BaseException:
            client.close()
            raise
        return client

    def send(self, msg: EmailMessage, sender: str, recipient: str) -> Outcome:
        """Hand one message to the relay; the outcome says whether and how to retry."""
        try:
            if self._client is None:
                self._client = self._connect()
            self._client.send_message(msg, from_addr=sender, to_addrs=[recipient])
            return Sent()
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset()
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            return _by_code(code, reply, "recipient refused")
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            self._reset()
            return _by_code(exc.smtp_code, exc.smtp_error, "refused")
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is the relay's configuration, not the message's fault: keep the
            # mail and retry, so fixing the config delivers it.
            self.close()
            return Failed(f"relay authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}")
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Failed(f"relay {self.cfg.host}:{self.cfg.port} unavailable: {exc!r}")

    def _reset(self) -> None:
        # After a refused transaction the connection is still good (RFC 5321 §4.1.1.5 RSET).
        if self._client is not None:
            try:
                self._client.rset()
            except (smtplib.SMTPException, OSError):
                self.close()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _by_code(code: int, reply: bytes | str, what: str) -> Failed:
    # RFC 5321 §4.2.1: 4yz is transient (try again later), 5yz permanent.
    return Failed(f"{what}: {code} {_text(reply)}", permanent=500 <= code < 600)
