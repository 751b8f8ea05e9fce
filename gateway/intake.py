"""The one shape every intake channel produces (STYLE.md: adapters -> one pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    ALERTMANAGER = "alertmanager"
    ZABBIX = "zabbix"
    GENERIC = "generic"
    INSPECTION = "inspection"
    API = "api"


@dataclass(frozen=True)
class IntakeFile:
    """A file that came with an intake (mail attachment), already within the size limits."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Intake:
    """A normalised request for work, whatever channel it came through.

    ``dedup_key`` makes intake idempotent: a second intake with the same key is a duplicate.
    ``fingerprint`` is an alert identity (one open ticket per active fingerprint).
    ``raw_id`` points at the stored raw inbound message, when there is one.
    """

    source: Source
    sender: str
    subject: str
    body: str = ""
    recipients: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    sender_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # Alert annotations (summary, description, runbook ...): rule fields `annotations.<name>`.
    annotations: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None
    dedup_key: str | None = None
    raw_id: int | None = None
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    received_at: datetime | None = None
    # Mail only: the new text of a reply (quoted history and signature removed), and the kind
    # of automatic mail (bounce, autoreply, list, own_loop, ...) or None for a person's mail.
    reply_text: str | None = None
    auto: str | None = None
    files: tuple[IntakeFile, ...] = ()
    # Files over the limits: named on the ticket, their bytes not kept (the raw message is).
    dropped_files: tuple[str, ...] = ()
    # Fields that a channel already knows (API form, inspection template) and that
    # classification must not override.
    type: str | None = None
    priority: str | None = None
    category: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    # What the channel suggests (an alert's severity map, "incident" for alerts) and a rule
    # that sets the field refines; the rules' default does not override these.
    base_type: str | None = None
    base_priority: str | None = None
