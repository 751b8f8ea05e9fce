"""Outbox payload -> RFC 5322 message (pure): threading headers, loop guards, text + HTML.

`email.policy.SMTP` writes CRLF lines and RFC 2047 encoded-words for non-ASCII names and
subjects. Header values are checked here, once: CR or LF in any of them is refused
(`HeaderInjection`), so no value can start a header of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from gateway.config import OutboundSettings

# The header classify_automatic() recognises as our own mail come back (never a new ticket).
OWN_HEADER = "X-OpsGateway-Ticket"
EVENT_HEADER = "X-OpsGateway-Event"
MAX_REFERENCES = 20


class HeaderInjection(ValueError):
    """A header value carries CR or LF: refused instead of sent."""


def clean(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"{name} contains a line break: {value[:80]!r}")
    return value


def new_message_id(from_address: str, key: str | None) -> str:
    """A Message-ID of ours, without the angle brackets (as the intake stores ids)."""
    domain = from_address.rpartition("@")[2] or "ops-gateway.invalid"
    tag = f"{key.lower()}." if key else ""
    return f"{tag}{uuid.uuid4().hex}@{domain}"


def _angle(ids: Sequence[str]) -> str:
    return " ".join(f"<{clean('Message-ID', i)}>" for i in ids)


def _address(name: str, display: str, addr_spec: str) -> Address:
    clean(name, display)
    clean(name, addr_spec)
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain or any(c in addr_spec for c in " <>,;\t"):
        raise HeaderInjection(f"{name} is not a single address: {addr_spec[:80]!r}")
    return Address(display_name=display, addr_spec=addr_spec)


def build_message(
    *,
    message_id: str,
    recipient: str,
    payload: Mapping[str, Any],
    cfg: OutboundSettings,
    now: datetime,
) -> EmailMessage:
    """The mail for one outbox row; raises HeaderInjection for an unsafe value."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _address("From", cfg.from_name, cfg.from_address)
    msg["To"] = _address("To", "", recipient)
    msg["Subject"] = clean("Subject", str(payload["subject"]))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = _angle([message_id])
    chain = [str(i) for i in payload.get("references", ())][-MAX_REFERENCES:]
    if chain:
        # RFC 5322 §3.6.4: In-Reply-To names the parent, References the thread up to it.
        msg["In-Reply-To"] = _angle(chain[-1:])
        msg["References"] = _angle(chain)
    reply_to = str(payload.get("reply_to") or "")
    if reply_to:
        msg["Reply-To"] = _address("Reply-To", cfg.from_name, reply_to)
    # RFC 3834 §5: machine-generated, so well-behaved responders stay quiet; Exchange honours
    # X-Auto-Response-Suppress; our own header stops the intake from taking it as new work.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[OWN_HEADER] = clean(OWN_HEADER, str(payload.get("key") or "digest"))
    msg[EVENT_HEADER] = clean(EVENT_HEADER, str(payload.get("event", "")))
    msg.set_content(str(payload["text"]), charset="utf-8")
    msg.add_alternative(str(payload["html"]), subtype="html", charset="utf-8")
    return msg
