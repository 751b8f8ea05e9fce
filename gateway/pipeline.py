"""The one intake pipeline: Intake -> dedup -> classify -> apply to a ticket, in one transaction.

Every channel (SMTP, IMAP, webhooks, inspections, API) builds an `Intake` and calls
`Pipeline.process`; none of them writes tickets by itself (STYLE.md habit 1).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.alerts.apply import AlertOutcome, apply_batch
from gateway.alerts.model import AlertBatch
from gateway.clock import Clock, utc_now
from gateway.config import Settings, WebhookSource
from gateway.ingest.followup import key_from_addresses
from gateway.intake import Intake
from gateway.rules.model import Group
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import IntakeKey, OutboxMessage, RawMessage, Ticket
from gateway.tickets import service
from gateway.tickets.assignment import choose_assignee
from gateway.tickets.followups import apply_followup, sender_role
from gateway.tickets.states import DONE_STATUSES

log = logging.getLogger(__name__)

TICKET_TAG = re.compile(r"\[([A-Z][A-Z0-9]{1,15}-\d{3,12})\]")


class Decision(Protocol):
    """What classification hands the pipeline (gateway.rules produces it)."""

    type: str
    priority: str
    category: str | None
    group: str | None
    assignee: str | None
    tags: Any
    sla_policy: str | None
    approvers: Any

    def to_dict(self) -> dict[str, Any]: ...


class Classifier(Protocol):
    def __call__(self, intake: Intake) -> Decision: ...


# The group definitions (members, strategy) of the rules in force.
GroupLookup = Callable[[str], Group | None]


@dataclass(frozen=True)
class RawInput:
    """An inbound message exactly as received, stored before anything else is done with it."""

    data: bytes
    envelope_from: str = ""
    envelope_to: tuple[str, ...] = ()
    quarantine_reason: str = ""  # non-empty: kept, but no ticket is touched

    @cached_property
    def sha256(self) -> str:
        # Used for the dedup key and the stored row: hash the bytes once.
        return hashlib.sha256(self.data).hexdigest()


# Explicit outcomes (STYLE.md habit 4); the edges map them to SMTP codes and HTTP statuses.
@dataclass(frozen=True)
class Created:
    key: str


@dataclass(frozen=True)
class Updated:
    key: str


@dataclass(frozen=True)
class Duplicate:
    key: str | None


@dataclass(frozen=True)
class Quarantined:
    reason: str


@dataclass(frozen=True)
class Refused:
    reason: str


Outcome = Created | Updated | Duplicate | Quarantined | Refused


class Pipeline:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        classify: Classifier,
        clock: Clock = utc_now,
        groups: GroupLookup = lambda _name: None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.classify = classify
        self.clock = clock
        self.groups = groups
        # People who may work any ticket by mail: agent/admin API token holders and the
        # configured list.
        self.agents = frozenset(
            {t.email for t in settings.api.tokens.values() if t.role in ("agent", "admin")}
            | set(settings.replies.agents)
        )

    def process(self, intake: Intake, raw: RawInput | None = None) -> Outcome:
        """Turn one intake into a new ticket or an update, committed before returning.

        Raises StoreUnavailable when the database cannot take the write: the caller answers
        "retry later" and the sender's redelivery then goes through dedup.
        """
        started = time.perf_counter()
        try:
            outcome = self._process_once(intake, raw)
        except IntegrityError:
            # A concurrent delivery of the same message won the race on a unique key; this
            # one is a duplicate of it.
            outcome = self._process_once(intake, raw)
        except StoreUnavailable:
            metrics.INTAKE.labels(intake.source, "unavailable").inc()
            raise
        metrics.INTAKE.labels(intake.source, type(outcome).__name__.lower()).inc()
        metrics.PIPELINE_SECONDS.labels(intake.source).observe(time.perf_counter() - started)
        return outcome

    def _process_once(self, intake: Intake, raw: RawInput | None) -> Outcome:
        now = self.clock()
        dedup_key = intake.dedup_key or _raw_key(intake, raw)
        with self.db.unit() as session:
            if dedup_key:
                seen = session.scalars(
                    select(IntakeKey).where(
                        IntakeKey.source == intake.source, IntakeKey.key == dedup_key
                    )
                ).first()
                if seen is not None:
                    seen.deliveries += 1
                    seen.last_seen = now
                    key = session.get(Ticket, seen.ticket_id).key if seen.ticket_id else None
                    return Duplicate(key)
            raw_row = self._store_raw(session, intake, raw, now) if raw else None
            raw_id = raw_row.id if raw_row else intake.raw_id
            if raw is not None and raw.quarantine_reason:
                outcome: Outcome = Quarantined(raw.quarantine_reason)
                ticket: Ticket | None = None
            else:
                outcome, ticket = self._apply(session, intake, raw_id, now)
            if raw_row is not None and isinstance(outcome, Quarantined):
                raw_row.status, raw_row.reason = "quarantined", outcome.reason
            session.flush()  # assigns ticket.id
            if ticket is not None and isinstance(outcome, Created | Updated):
                self._keep_files(session, ticket, intake, now)
            if raw_row is not None and ticket is not None:
                raw_row.ticket_id = ticket.id
            if dedup_key:
                session.add(
                    IntakeKey(
                        source=str(intake.source),
                        key=dedup_key,
                        ticket_id=ticket.id if ticket else None,
                        first_seen=now,
                        last_seen=now,
                        deliveries=1,
                    )
                )
            session.flush()
        if isinstance(outcome, Created) and ticket is not None:
            metrics.TICKETS_CREATED.labels(ticket.type, ticket.priority).inc()
        return outcome

    def process_alerts(
        self, batch: AlertBatch, raw: RawInput, policy: WebhookSource
    ) -> list[AlertOutcome]:
        """Apply a webhook's alerts and keep its raw body, in one transaction, committed on
        return (so a 200 means stored). Raises StoreUnavailable like `process`."""
        source = str(batch.source)
        started = time.perf_counter()
        try:
            try:
                outcomes = self._alerts_once(batch, raw, policy)
            except IntegrityError:
                # Another connection saw the same new identity first and committed its ledger
                # row; run again and this batch's firing counts as a repeat of it.
                outcomes = self._alerts_once(batch, raw, policy)
        except StoreUnavailable:
            metrics.INTAKE.labels(source, "unavailable").inc()
            raise
        for outcome, n in Counter(o.outcome for o in outcomes).items():
            metrics.INTAKE.labels(source, outcome).inc(n)
        metrics.PIPELINE_SECONDS.labels(source).observe(time.perf_counter() - started)
        return outcomes

    def _alerts_once(
        self, batch: AlertBatch, raw: RawInput, policy: WebhookSource
    ) -> list[AlertOutcome]:
        now = self.clock()
        created: list[Ticket] = []
        with self.db.unit() as session:
            raw_id = (
                self._store_raw_body(session, str(batch.source), raw, now)
                if policy.keep_raw == "all"
                else None
            )

            def create(session: Session, intake: Intake, parent: Ticket | None) -> Ticket:
                ticket = self._create(session, intake, raw_id, now, parent=parent)
                session.flush()  # the ledger row and later repeats need ticket.id
                created.append(ticket)
                return ticket

            outcomes = apply_batch(session, batch, policy, now, create)
        for ticket in created:
            metrics.TICKETS_CREATED.labels(ticket.type, ticket.priority).inc()
        return outcomes

    def keep_unparsed(self, source: str, raw: RawInput, reason: str) -> None:
        """Keep a webhook body that could not be parsed (the sender gets a 400)."""
        with self.db.unit() as session:
            self._store_raw_body(session, source, raw, self.clock(), reason=reason)
        metrics.INTAKE.labels(source, "refused").inc()

    def _store_raw_body(
        self, session: Session, source: str, raw: RawInput, now: datetime, reason: str = ""
    ) -> int:
        # A Core insert: one row per webhook delivery is on the storm's hot path.
        table = RawMessage.__table__
        return (
            session.connection()
            .execute(
                insert(table)
                .values(
                    source=source,
                    message_id=None,
                    sha256=raw.sha256,
                    received_at=now,
                    envelope_from=raw.envelope_from,
                    envelope_to=list(raw.envelope_to),
                    size=len(raw.data),
                    data=raw.data,
                    status="quarantined" if reason else "parsed",
                    reason=reason,
                )
                .returning(table.c.id)
            )
            .scalar_one()
        )

    def _keep_files(self, session: Session, ticket: Ticket, intake: Intake, now: datetime) -> None:
        if intake.files:
            service.attach_files(session, ticket, intake.files)
        if intake.dropped_files:
            service.journal(
                session,
                ticket,
                service.system_actor(str(intake.source)),
                "attachments_dropped",
                now,
                note="not kept (the raw message has them): " + ", ".join(intake.dropped_files),
                public=False,
            )

    def _store_raw(self, session: Session, intake: Intake, raw: RawInput, now: Any) -> RawMessage:
        row = RawMessage(
            source=str(intake.source),
            message_id=intake.message_id,
            sha256=raw.sha256,
            received_at=now,
            envelope_from=raw.envelope_from,
            envelope_to=list(raw.envelope_to),
            size=len(raw.data),
            data=raw.data,
            status="quarantined" if raw.quarantine_reason else "parsed",
            reason=raw.quarantine_reason,
        )
        session.add(row)
        session.flush()
        return row

    def _apply(
        self, session: Session, intake: Intake, raw_id: int | None, now: datetime
    ) -> tuple[Outcome, Ticket | None]:
        target = self._find_target(session, intake)
        if target is not None and intake.fingerprint and target.fingerprint == intake.fingerprint:
            # A repeat of an active alert counts an occurrence instead of flooding the journal.
            target.occurrences += 1
            target.updated_at = now
            return Updated(target.key), target
        if target is not None:
            role = sender_role(target, intake.sender, self.agents)
            if role is not None or intake.auto:
                apply_followup(
                    session, target, intake, role or "", self.settings.replies, now, raw_id=raw_id
                )
                return Updated(target.key), target
            # A stranger writing about somebody's ticket never changes it: their mail becomes
            # a ticket of its own, linked to the one it names.
            ticket = self._create(session, intake, raw_id, now, parent=target)
            service.journal(
                session,
                target,
                service.system_actor(str(intake.source)),
                "linked",
                now,
                after={"ticket": ticket.key},
                note=f"{intake.sender or 'unknown sender'} wrote about this ticket: {ticket.key}",
                public=False,
            )
            return Created(ticket.key), ticket
        if intake.auto:
            return Quarantined(f"automatic mail ({intake.auto}) that names no ticket"), None
        ticket = self._create(session, intake, raw_id, now)
        return Created(ticket.key), ticket

    def _find_target(self, session: Session, intake: Intake) -> Ticket | None:
        """The ticket this intake continues, if any, by the strongest evidence first."""
        if intake.fingerprint:
            found = session.scalars(
                select(Ticket)
                .where(
                    Ticket.fingerprint == intake.fingerprint,
                    Ticket.source == str(intake.source),
                    Ticket.status.not_in(DONE_STATUSES),
                )
                .order_by(Ticket.id.desc())
            ).first()
            if found is not None:
                return found
        if intake.in_reply_to:
            # A reply to a notification we sent: its Message-ID is recorded in the outbox.
            ticket_id = session.scalar(
                select(OutboxMessage.ticket_id)
                .where(OutboxMessage.message_id.in_(intake.in_reply_to[-50:]))
                .order_by(OutboxMessage.id.desc())
                .limit(1)
            )
            if ticket_id is not None:
                return session.get(Ticket, ticket_id)
        secret = self.settings.replies.secret
        key = key_from_addresses(intake.recipients, secret) if secret else None
        if key is None:
            match = TICKET_TAG.search(intake.subject)
            key = match.group(1) if match else None
        if key is not None:
            return session.scalars(select(Ticket).where(Ticket.key == key)).first()
        return None

    def _create(
        self,
        session: Session,
        intake: Intake,
        raw_id: int | None,
        now: datetime,
        *,
        parent: Ticket | None = None,
    ) -> Ticket:
        decision = self.classify(intake)
        defaults = self.settings.tickets
        group = intake.group or decision.group or defaults.default_group
        assignee = decision.assignee
        strategy = None
        if assignee is None:
            rule_group = self.groups(group)
            assignee = choose_assignee(session, rule_group)
            strategy = rule_group.strategy if assignee and rule_group else None
        # A channel's suggestion (alert severity) beats the rules' default, not a rule's choice.
        ruled = set(getattr(decision, "set_by_rules", ()) or ())
        base_type = None if "type" in ruled else intake.base_type
        base_priority = None if "priority" in ruled else intake.base_priority
        new = service.NewTicket(
            type=intake.type or base_type or decision.type or defaults.default_type,
            priority=intake.priority
            or base_priority
            or decision.priority
            or defaults.default_priority,
            subject=intake.subject or "(no subject)",
            source=str(intake.source),
            description=intake.body,
            requester=intake.sender or None,
            requester_name=intake.sender_name,
            assignee=assignee,
            group=group,
            category=intake.category or decision.category,
            tags=sorted({*intake.tags, *(decision.tags or ())}),
            participants=sorted(set(intake.cc)),
            labels=dict(intake.labels),
            fingerprint=intake.fingerprint,
            approvers=list(decision.approvers or ()),
            sla_policy=decision.sla_policy,
            parent_id=parent.id if parent is not None else None,
        )
        actor = service.Actor(intake.sender or service.SYSTEM, "requester", str(intake.source))
        ticket = service.create_ticket(session, defaults, new, actor, now, raw_id=raw_id)
        service.journal(
            session,
            ticket,
            service.system_actor("rules"),
            "classified",
            now,
            after=decision.to_dict(),
            note=_explain(decision.to_dict()),
            public=False,
        )
        if strategy:
            service.journal(
                session,
                ticket,
                service.system_actor("routing"),
                "routed",
                now,
                after={"group": group, "assignee": assignee},
                note=f"{assignee} picked from {group} by {strategy}",
                public=False,
            )
        return ticket


def _raw_key(intake: Intake, raw: RawInput | None) -> str | None:
    # Same Message-ID, or the same bytes when there is none, is the same delivery.
    if intake.message_id:
        return f"msgid:{intake.message_id}"
    if raw is not None:
        return f"sha256:{raw.sha256}"
    return None


def _explain(decision: dict[str, Any]) -> str:
    matches = decision.get("matches") or []
    rule = decision.get("rule") or "default"
    if not matches:
        return f"rule {rule}: no keyword matched"
    parts = [
        f"{m.get('keyword') or m.get('pattern')!r} in {m.get('field')}"
        for m in matches
        if isinstance(m, dict)
    ]
    return f"rule {rule}: " + ", ".join(parts)


__all__ = [
    "Created",
    "Duplicate",
    "Outcome",
    "Pipeline",
    "Quarantined",
    "RawInput",
    "Refused",
    "StoreUnavailable",
]
