"""The one intake pipeline: Intake -> dedup -> classify -> apply to a ticket, in one transaction.

Every channel (SMTP, IMAP, webhooks, inspections, API) builds an `Intake` and calls
`Pipeline.process`; none of them writes tickets by itself (STYLE.md habit 1).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.approvals.queue import calls_enabled
from gateway.clock import Clock, utc_now
from gateway.config import Settings
from gateway.enrich import Enricher, record_pending
from gateway.ingest.followup import key_from_addresses
from gateway.intake import Intake
from gateway.kb import suggest as kb_suggest
from gateway.outbound.notify import queue_notifications
from gateway.rules.model import Group
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import IntakeKey, OutboxMessage, RawMessage, Ticket, TicketEvent
from gateway.tickets import bulk, service
from gateway.tickets.assignment import choose_assignee
from gateway.tickets.followups import apply_followup, sender_role
from gateway.tickets.states import DONE_STATUSES

log = logging.getLogger(__name__)
# The ledger lookups of every batch, built once (building them cost more than running them).
_LEDGER = select(IntakeKey).where(
    IntakeKey.source == bindparam("source"), IntakeKey.key.in_(bindparam("keys", expanding=True))
)
_INSERT_RAW = insert(RawMessage.__table__).returning(
    RawMessage.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_LEDGER = insert(IntakeKey.__table__)
_LEDGER_KEYS = select(IntakeKey.key).where(
    IntakeKey.source == bindparam("source"), IntakeKey.key.in_(bindparam("keys", expanding=True))
)

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
        enricher: Enricher | None = None,
    ) -> None:
        self.db = db
        self.enricher = enricher
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
        self.prefetch([intake])
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

    def prefetch(self, intakes: Iterable[Intake]) -> None:
        """CMDB lookups for these intakes, within the budget; call outside any transaction."""
        if self.enricher is not None:
            enricher = self.enricher
            # Automatic mail (bounces, out-of-office) quotes hosts but makes no ticket to route.
            wanted = (i for i in intakes if not i.auto)
            enricher.prefetch(host for intake in wanted for host in enricher.hosts(intake))

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
                    return self._redelivered(session, seen, now)
            return self._handle(session, intake, raw, dedup_key, now)

    def process_batch(
        self, items: Sequence[tuple[Intake, RawInput | None]]
    ) -> list[Outcome | Exception]:
        """Process several intakes in one transaction (group commit), in order.

        Each result is what `process` would have returned or raised for that item. Brand-new
        tickets take the bulk path (a few multi-row INSERTs for the whole batch); everything
        else goes through the same code as `process`, inside the same transaction.
        """
        started = time.perf_counter()
        # One budget for the whole batch, spent before the transaction opens.
        self.prefetch(intake for intake, _ in items)
        try:
            outcomes = self._batch_once(items)
        except StoreUnavailable as exc:
            for intake, _ in items:
                metrics.INTAKE.labels(intake.source, "unavailable").inc()
            return [exc] * len(items)
        except Exception as exc:
            # A lost race on a unique key (another daemon), or one item the bulk path cannot
            # take: redo them one by one so each gets its own answer and nobody else's error.
            log.info("batch of %d fell back to one by one: %s", len(items), exc)
            results: list[Outcome | Exception] = []
            for intake, raw in items:
                try:
                    results.append(self.process(intake, raw))
                except Exception as one:
                    results.append(one)
            return results
        elapsed = time.perf_counter() - started
        for (intake, _), outcome in zip(items, outcomes, strict=True):
            metrics.INTAKE.labels(intake.source, type(outcome).__name__.lower()).inc()
            metrics.PIPELINE_SECONDS.labels(intake.source).observe(elapsed)
        return list(outcomes)

    def _batch_once(self, items: Sequence[tuple[Intake, RawInput | None]]) -> list[Outcome]:
        now = self.clock()
        keys = [intake.dedup_key or _raw_key(intake, raw) for intake, raw in items]
        outcomes: list[Outcome | None] = [None] * len(items)
        repeats: list[int] = []
        bulk_items: list[tuple[int, bulk.TicketSpec]] = []
        specs = self._classify_ahead(items, keys)
        with self.db.unit() as session:
            seen = self._ledger(session, items, keys)
            first: set[tuple[str, str]] = set()
            for i, ((intake, raw), key) in enumerate(zip(items, keys, strict=True)):
                ident = (str(intake.source), key or "")
                if key and ident in seen:
                    outcomes[i] = self._redelivered(session, seen[ident], now)
                elif key and ident in first:
                    repeats.append(i)  # the same message twice in one batch: after commit
                elif (spec := specs[i]) is not None:
                    bulk_items.append((i, spec))
                else:
                    outcomes[i] = self._handle(session, intake, raw, key, now)
                if key:
                    first.add(ident)
            for i, key in self._insert_new(session, bulk_items, items, keys, now):
                outcomes[i] = Created(key)
        for i in repeats:
            outcomes[i] = self.process(*items[i])
        return [o for o in outcomes if o is not None]

    def _classify_ahead(
        self, items: Sequence[tuple[Intake, RawInput | None]], keys: Sequence[str | None]
    ) -> list[bulk.TicketSpec | None]:
        """The bulk path's new tickets, classified before the write transaction opens.

        Classification is CPU work: inside the transaction it held SQLite's writer slot (and,
        with several processes, the lock file) for nothing. A read of the ledger first keeps
        redeliveries and repeats within the batch from being classified (and counted) at all;
        one that lands between this read and the transaction just leaves its spec unused.
        """
        with self.db.unit(readonly=True) as session:
            seen = self._seen(session, items, keys)
            specs: list[bulk.TicketSpec | None] = []
            first: set[tuple[str, str]] = set()
            for (intake, raw), key in zip(items, keys, strict=True):
                ident = (str(intake.source), key or "")
                fresh = not key or (ident not in seen and ident not in first)
                specs.append(self._bulk_spec(intake, raw) if fresh else None)
                if key:
                    first.add(ident)
            # Known fixes, looked up for the whole batch in one statement, are journalled
            # beside "created" (the acknowledgement and assignment mails show them); a read,
            # so it too stays out of the write transaction.
            new = [(i, spec) for i, spec in enumerate(specs) if spec is not None]
            texts = [
                kb_suggest.ticket_text(self.settings.kb, s.new.subject, s.new.description)
                for _, s in new
            ]
            found_all = kb_suggest.find(session, self.settings.kb, texts)
            for (i, spec), found in zip(new, found_all, strict=True):
                if found:
                    specs[i] = replace(spec, notes=(*spec.notes, kb_suggest.as_note(found)))
        return specs

    def _ledger(
        self,
        session: Session,
        items: Sequence[tuple[Intake, RawInput | None]],
        keys: Sequence[str | None],
    ) -> dict[tuple[str, str], IntakeKey]:
        found: dict[tuple[str, str], IntakeKey] = {}
        for source, wanted in _keys_by_source(items, keys).items():
            rows = session.scalars(_LEDGER, {"source": source, "keys": wanted})
            found.update(((row.source, row.key), row) for row in rows)
        return found

    @staticmethod
    def _seen(
        session: Session,
        items: Sequence[tuple[Intake, RawInput | None]],
        keys: Sequence[str | None],
    ) -> set[tuple[str, str]]:
        """The (source, key) pairs the ledger already holds: `_ledger` without ORM objects."""
        conn = session.connection()
        seen: set[tuple[str, str]] = set()
        for source, wanted in _keys_by_source(items, keys).items():
            rows = conn.execute(_LEDGER_KEYS, {"source": source, "keys": wanted})
            seen.update((source, key) for (key,) in rows)
        return seen

    def _redelivered(self, session: Session, seen: IntakeKey, now: datetime) -> Duplicate:
        seen.deliveries += 1
        seen.last_seen = now
        key = session.get(Ticket, seen.ticket_id).key if seen.ticket_id else None
        return Duplicate(key)

    def _handle(
        self,
        session: Session,
        intake: Intake,
        raw: RawInput | None,
        dedup_key: str | None,
        now: datetime,
    ) -> Outcome:
        """Everything after the dedup check, inside the caller's transaction."""
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
        # Notifications commit with the change that caused them (the outbox).
        queue_notifications(
            session,
            self.settings,
            service.journalled(session),
            trigger_auto=intake.auto or "",
            now=now,
        )
        if isinstance(outcome, Created) and ticket is not None:
            metrics.TICKETS_CREATED.labels(ticket.type, ticket.priority).inc()
        return outcome

    def _bulk_spec(self, intake: Intake, raw: RawInput | None) -> bulk.TicketSpec | None:
        """The new ticket this intake makes, when nothing about it needs a per-item query."""
        if (
            (raw is not None and raw.quarantine_reason)
            or intake.auto
            or intake.files
            or intake.dropped_files
            or intake.fingerprint
            or intake.in_reply_to
            or TICKET_TAG.search(intake.subject)
            or (self.settings.replies.secret and any("+" in r for r in intake.recipients))
        ):
            return None
        new, decision = self._new_ticket(intake)
        if new.assignee is None:
            group = self.groups(new.group or "")
            if group is not None and group.strategy != "none" and group.members:
                return None  # routing reads live ticket counts: the per-item path does that
        return bulk.TicketSpec(
            new,
            self._requester(intake),
            (bulk.Note(**self._classified_note(decision)),),
        )

    def _insert_new(
        self,
        session: Session,
        bulk_items: Sequence[tuple[int, bulk.TicketSpec]],
        items: Sequence[tuple[Intake, RawInput | None]],
        keys: Sequence[str | None],
        now: datetime,
    ) -> list[tuple[int, str]]:
        if not bulk_items:
            return []
        specs = [spec for _, spec in bulk_items]
        tickets = bulk.insert_tickets(session, self.settings.tickets, specs, now)
        record_pending(session, zip(tickets, (s.new.labels for s in specs), strict=True), now)
        raws = [
            (items[i][0], items[i][1], t.id) for (i, _), t in zip(bulk_items, tickets, strict=True)
        ]
        raw_rows = [
            raw_fields(str(intake.source), intake.message_id, raw, now) | {"ticket_id": ticket_id}
            for intake, raw, ticket_id in raws
            if raw is not None
        ]
        raw_ids = iter(
            session.connection().execute(_INSERT_RAW, raw_rows).scalars() if raw_rows else ()
        )
        event_raw_ids = [
            next(raw_ids) if raw is not None else intake.raw_id for intake, raw, _ in raws
        ]
        bulk.insert_journal(session, specs, tickets, event_raw_ids, now)
        if self.settings.outbound.enabled or calls_enabled(self.settings):
            # The bulk rows bypassed the ORM; the acknowledgements are planned from the
            # journal rows just written, like those of the per-item path.
            created = session.scalars(
                select(TicketEvent)
                .where(TicketEvent.ticket_id.in_([t.id for t in tickets]))
                .order_by(TicketEvent.id)
            )
            queue_notifications(session, self.settings, created, now=now)
        ledger = [
            {
                "source": str(items[i][0].source),
                "key": keys[i],
                "ticket_id": t.id,
                "first_seen": now,
                "last_seen": now,
                "deliveries": 1,
            }
            for (i, _), t in zip(bulk_items, tickets, strict=True)
            if keys[i]
        ]
        if ledger:
            session.connection().execute(_INSERT_LEDGER, ledger)
        for t in tickets:
            metrics.TICKETS_CREATED.labels(t.type, t.priority).inc()
        return [(i, t.key) for (i, _), t in zip(bulk_items, tickets, strict=True)]

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
        row = RawMessage(**raw_fields(str(intake.source), intake.message_id, raw, now))
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
            ticket = self.create_ticket(session, intake, raw_id, now, parent=target)
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
        ticket = self.create_ticket(session, intake, raw_id, now)
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

    def _new_ticket(
        self, intake: Intake, parent: Ticket | None = None
    ) -> tuple[service.NewTicket, Decision]:
        """What classification makes of the intake; the assignee only if a rule names one."""
        if self.enricher is not None:
            intake = self.enricher.enriched(intake)  # cmdb.* labels: rules route by them
        decision = self.classify(intake)
        defaults = self.settings.tickets
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
            assignee=decision.assignee,
            group=intake.group or decision.group or defaults.default_group,
            category=intake.category or decision.category,
            tags=sorted({*intake.tags, *(decision.tags or ())}),
            participants=sorted(set(intake.cc)),
            labels=dict(intake.labels),
            fingerprint=intake.fingerprint,
            approvers=list(decision.approvers or ()),
            sla_policy=decision.sla_policy,
            parent_id=parent.id if parent is not None else None,
        )
        if self.settings.sla.enabled:
            new.sla = self.settings.sla_book().start(new.type, new.priority, new.sla_policy)
        return new, decision

    @staticmethod
    def _requester(intake: Intake) -> service.Actor:
        return service.Actor(intake.sender or service.SYSTEM, "requester", str(intake.source))

    @staticmethod
    def _classified_note(decision: Decision) -> dict[str, Any]:
        after = decision.to_dict()
        return {
            "actor": service.system_actor("rules"),
            "kind": "classified",
            "after": after,
            "note": _explain(after),
            "public": False,
        }

    def create_ticket(
        self,
        session: Session,
        intake: Intake,
        raw_id: int | None,
        now: datetime,
        *,
        parent: Ticket | None = None,
    ) -> Ticket:
        """A new ticket from the intake, classified and routed, in the caller's transaction."""
        new, decision = self._new_ticket(intake, parent)
        strategy = None
        if new.assignee is None:
            rule_group = self.groups(new.group or "")
            new.assignee = choose_assignee(session, rule_group)
            strategy = rule_group.strategy if new.assignee and rule_group else None
        ticket = service.create_ticket(
            session, self.settings.tickets, new, self._requester(intake), now, raw_id=raw_id
        )
        service.journal(session, ticket, now=now, **self._classified_note(decision))
        record_pending(session, [(ticket, new.labels)], now)
        kb_suggest.attach(session, self.settings.kb, [ticket], now)
        if strategy:
            service.journal(
                session,
                ticket,
                service.system_actor("routing"),
                "routed",
                now,
                after={"group": new.group, "assignee": new.assignee},
                note=f"{new.assignee} picked from {new.group} by {strategy}",
                public=False,
            )
        return ticket


def raw_fields(source: str, message_id: str | None, raw: RawInput, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        # Unique when set: an empty one (a Message-ID of only NUL or blanks) is no identity.
        "message_id": message_id or None,
        "sha256": raw.sha256,
        "received_at": now,
        "envelope_from": raw.envelope_from,
        "envelope_to": list(raw.envelope_to),
        "size": len(raw.data),
        "data": raw.data,
        "status": "quarantined" if raw.quarantine_reason else "parsed",
        "reason": raw.quarantine_reason,
    }


def _keys_by_source(
    items: Sequence[tuple[Intake, RawInput | None]], keys: Sequence[str | None]
) -> dict[str, list[str]]:
    """The batch's dedup keys grouped by source: the ledger is looked up one source at a time."""
    by_source: dict[str, list[str]] = {}
    for (intake, _), key in zip(items, keys, strict=True):
        if key:
            by_source.setdefault(str(intake.source), []).append(key)
    return by_source


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
