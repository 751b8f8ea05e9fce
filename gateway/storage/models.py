"""SQLAlchemy 2 models. The schema itself is owned by the alembic migrations beside this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names keep alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tz() -> UTCDateTime:
    return UTCDateTime()


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), index=True)
    subject: Mapped[str] = mapped_column(String(998))
    description: Mapped[str] = mapped_column(Text, default="")
    requester: Mapped[str | None] = mapped_column(String(320), index=True)
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    assignee: Mapped[str | None] = mapped_column(String(320), index=True)
    group: Mapped[str | None] = mapped_column("group_name", String(100), index=True)
    category: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(32))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # People besides the requester who take part (mail CC); reply-to-update trusts them.
    participants: Mapped[list[Any]] = mapped_column(JSON, default=list)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str | None] = mapped_column(String(200), index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    # Alert tickets: when the alert last fired (repeats count occurrences, not journal rows).
    last_seen: Mapped[datetime | None] = mapped_column(_tz())
    approvers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    approvals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sla_policy: Mapped[str | None] = mapped_column(String(100))
    response_due: Mapped[datetime | None] = mapped_column(_tz(), index=True)
    resolution_due: Mapped[datetime | None] = mapped_column(_tz(), index=True)
    responded_at: Mapped[datetime | None] = mapped_column(_tz())
    resolved_at: Mapped[datetime | None] = mapped_column(_tz())
    closed_at: Mapped[datetime | None] = mapped_column(_tz())
    breached: Mapped[bool] = mapped_column(Boolean, default=False)
    # A rule chose `sla_policy`: a priority/type change keeps it instead of re-mapping.
    sla_pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the SLA scanner must next look at this ticket (a level or a breach is due), or
    # "now" after a change it has not evaluated yet; NULL = nothing ahead. The scanner reads
    # only rows at or before now through this index, whatever the number of open tickets.
    next_escalation_at: Mapped[datetime | None] = mapped_column(_tz(), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(_tz(), index=True)
    updated_at: Mapped[datetime] = mapped_column(_tz())

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", lazy="selectin"
    )
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id", lazy="selectin")
    # Inspection steps; the state machine refuses to resolve with mandatory ones unticked.
    checklist: Mapped[list[ChecklistItem]] = relationship(
        order_by="ChecklistItem.position", lazy="selectin"
    )


class ChecklistItem(Base):
    """One step of a ticket's checklist (an inspection's template makes them), numbered
    from 1 as agents name them (`#check 2`). A row each, so two agents ticking different
    items never overwrite each other."""

    __tablename__ = "checklist_items"
    __table_args__ = (UniqueConstraint("ticket_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(500))
    mandatory: Mapped[bool] = mapped_column(Boolean, default=True)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_by: Mapped[str | None] = mapped_column(String(320))
    done_at: Mapped[datetime | None] = mapped_column(_tz())
    note: Mapped[str] = mapped_column(String(500), default="")


class InspectionSchedule(Base):
    """An inspection schedule defined through the API (config-file ones live in the config);
    `spec` is what `[[inspections]]` would hold, validated by the same model."""

    __tablename__ = "inspection_schedules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(_tz())
    updated_at: Mapped[datetime] = mapped_column(_tz())


class InspectionRun(Base):
    """What became of one fire time of a schedule: the unique key makes each fire time
    produce at most one ticket, across restarts and several daemons on one database.

    status: created | catch_up (a ticket), skipped (missed while down), armed (the schedule
    was first seen then: nothing before it is due), manual (`gateway inspections run`).
    """

    __tablename__ = "inspection_runs"
    __table_args__ = (UniqueConstraint("schedule", "fire_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    schedule: Mapped[str] = mapped_column(String(100))
    fire_at: Mapped[datetime] = mapped_column(_tz())
    status: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    recorded_at: Mapped[datetime] = mapped_column(_tz())


class SlaEscalation(Base):
    """An escalation level that fired: the unique key makes each level fire once per ticket,
    across restarts and several daemons on one database (inserted with its journal event)."""

    __tablename__ = "sla_escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "level"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    level: Mapped[str] = mapped_column(String(160))  # "<policy>/<level name>"
    event: Mapped[str] = mapped_column(String(32))  # sla_warning | sla_breach
    due_at: Mapped[datetime] = mapped_column(_tz())
    fired_at: Mapped[datetime] = mapped_column(_tz())


class PendingEnrichment(Base):
    """A ticket whose CMDB lookup failed or did not fit intake's time budget: the retry job
    looks it up later. One row per ticket; the row goes when the lookup has an answer."""

    __tablename__ = "pending_enrichments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(_tz(), index=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(_tz())


class ApprovalInstance(Base):
    """A change's approval instance in an OA system (connectors/oa.py): the OA's callbacks
    name the instance, this row names the ticket."""

    __tablename__ = "approval_instances"
    __table_args__ = (UniqueConstraint("connector", "instance_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    connector: Mapped[str] = mapped_column(String(100))  # the [connectors.NAME]
    instance_id: Mapped[str] = mapped_column(String(200))
    # pending | approved | rejected: how the ticket's chain ended, as far as we know
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(_tz())
    updated_at: Mapped[datetime] = mapped_column(_tz())


class TicketEvent(Base):
    """The journal: who changed what, when, through which channel."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(_tz())
    actor: Mapped[str] = mapped_column(String(320))
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    # Visible to the requester (a public comment or a status change) or internal.
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketKeyCounter(Base):
    """Next number per key prefix; bumped under a row lock so keys never repeat."""

    __tablename__ = "ticket_key_counters"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


class RawMessage(Base):
    """Every inbound message exactly as received, kept even when it cannot be parsed."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(_tz())
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # parsed | quarantined | ignored (automatic mail that only got stored)
    status: Mapped[str] = mapped_column(String(16), default="parsed")
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)


class Blob(Base):
    """Content-addressed attachment bytes: the same file attached twice is stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_events.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))


class Alert(Base):
    """One alert identity as seen by a monitoring source, tied to its current ticket.

    `fingerprint` is the identity (Alertmanager fingerprint, Zabbix problem event id, generic
    key, or a group key with `group_by`); `ticket_id` moves to a new ticket when the identity
    fires again after the reopen window. The row changes on state changes only (firing,
    resolved, new ticket): repeats are counted on the ticket (`occurrences`, `last_seen`).
    """

    __tablename__ = "alerts"
    # One ledger row per identity and source: the batch lookup is one index range scan, and
    # two concurrent first sightings cannot both insert (the loser retries as a repeat).
    __table_args__ = (Index("ix_alerts_source_fingerprint", "source", "fingerprint", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(_tz())
    last_seen: Mapped[datetime] = mapped_column(_tz())
    resolved_at: Mapped[datetime | None] = mapped_column(_tz())


class OutboxMessage(Base):
    """A notification written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_outbox_recipient_created_at", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # mail | chat
    event: Mapped[str] = mapped_column(String(32))
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    # pending | sent | dead | held (over the rate limit, waiting for a digest) | digested
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # One row per recipient (an address, or the chat robot's name): the rate limits count it.
    recipient: Mapped[str | None] = mapped_column(String(320))
    # The worker that claimed the row and until when; an expired lease may be claimed again.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(_tz())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(_tz())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(_tz())
    sent_at: Mapped[datetime | None] = mapped_column(_tz())

    @classmethod
    def queued(
        cls,
        *,
        channel: str,
        event: str,
        recipient: str,
        payload: dict[str, Any],
        now: datetime,
        ticket_id: int | None = None,
        message_id: str | None = None,
        state: str = "pending",
    ) -> OutboxMessage:
        """A new row for one recipient, due now, never tried."""
        return cls(
            ticket_id=ticket_id,
            channel=channel,
            event=event,
            recipients=[recipient],
            recipient=recipient,
            payload=payload,
            message_id=message_id,
            state=state,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            created_at=now,
        )


class IntakeKey(Base):
    """Dedup ledger: one row per idempotency key seen; redelivery finds it and stops."""

    __tablename__ = "intake_keys"
    __table_args__ = (UniqueConstraint("source", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(512))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    first_seen: Mapped[datetime] = mapped_column(_tz())
    last_seen: Mapped[datetime] = mapped_column(_tz())
    deliveries: Mapped[int] = mapped_column(Integer, default=1)


class KbEntry(Base):
    """A knowledge-base entry, written when a ticket is resolved with a solution.

    `search_text` is every searchable field, NFKC-normalised and case-folded (gateway/kb/text.py):
    SQLite's FTS5 trigram table `kb_fts` follows it through triggers, PostgreSQL indexes it
    with pg_trgm; both are created by migration 0008 only (see migrate.include_object).
    """

    __tablename__ = "kb_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # One entry per ticket: resolving it again after a reopen updates the entry.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), unique=True)
    title: Mapped[str] = mapped_column(String(998))
    symptom: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[str] = mapped_column(Text, default="")
    solution: Mapped[str] = mapped_column(Text, default="")
    prevention: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    category: Mapped[str | None] = mapped_column(String(100))
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(_tz())
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(_tz(), index=True)


class Lease(Base):
    """Singleton work (an IMAP mailbox) held by one process at a time, until `expires_at`."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(_tz())
    renewed_at: Mapped[datetime] = mapped_column(_tz())
