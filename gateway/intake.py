"""The one shape every intake channel produces (STYLE.md: adapters -> one pipeline)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeVar


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


T = TypeVar("T")


def without_nul(value: T) -> T:
    """`value` (an Intake, an alert batch, any dataclass or container) without NUL characters
    in its text.

    PostgreSQL text columns cannot hold NUL (SQLite can), and damaged mail carries it in
    headers and bodies, JSON alerts as "\\u0000": unremoved, the commit failed and the sender
    was told to retry forever (found by tests/fuzz). The raw bytes, kept as they came, still
    have it.
    """
    if isinstance(value, str):
        # Only when needed: a StrEnum (Source, Kind) must stay what it is.
        return value.replace("\x00", "") if "\x00" in value else value  # type: ignore[return-value]
    if isinstance(value, tuple | list):
        return type(value)(without_nul(v) for v in value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}  # type: ignore[return-value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(
            value, **{f.name: without_nul(getattr(value, f.name)) for f in fields(value) if f.init}
        )
    if callable(value) and not isinstance(value, type):
        # Text built on demand (AlertEvent.describe) is cleaned when it is built.
        function = value
        return lambda *args, **kwargs: without_nul(function(*args, **kwargs))  # type: ignore[return-value]
    return value
