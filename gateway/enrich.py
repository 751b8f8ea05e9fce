"""CMDB enrichment: which hosts an intake names, their configuration items as `cmdb.*` labels
(rule fields `cmdb.<attr>`), and the job that retries lookups intake could not wait for.

Lookups never run inside a database transaction (SQLite serialises writers): the pipeline
calls `prefetch` before it opens one, within `[enrichment] budget_ms`, and classification then
reads the answers from the cache. A host without an answer makes the ticket "pending": it is
created at once and `EnrichmentJob` writes the CI into its labels later, journalled `enriched`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connectors.base import BreakerOpen, Cmdb, ConfigItem, ConnectorError, Monotonic, TtlCache
from connectors.registry import build_cmdb
from connectors.settings import EnrichmentSettings
from gateway.clock import Clock, utc_now
from gateway.config import Settings
from gateway.ingest.alertmanager import instance_host
from gateway.intake import Intake, Source
from gateway.rules.model import Decision
from gateway.storage.db import Database
from gateway.storage.models import PendingEnrichment, Ticket
from gateway.tickets import service

log = logging.getLogger(__name__)

# On a ticket: "pending" until the retry job has an answer, "failed" when it gave up.
LOOKUP_LABEL = "cmdb.lookup"
# Labels that name the host an alert is about (Alertmanager instance/host, Zabbix host and
# host_ip, the generic webhook's host).
HOST_LABELS = ("instance", "host", "hostname", "host_ip")
# Conservative on purpose: dotted quads, and names with at least three labels ending in a
# letter (db-bj-03.prod.example: not "v1.2.3"), not part of an address or a URL.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_FQDN = re.compile(
    r"(?<![\w@/.-])[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+\.[a-z][a-z0-9-]*[a-z](?![\w@-])",
    re.IGNORECASE,
)
# What of a mail body is scanned for hosts: the top says what is broken; a pasted log
# further down must not cost lookups.
MAX_SCAN_CHARS = 4000


def hosts_of(labels: Mapping[str, str], text: str = "", max_text_hosts: int = 3) -> list[str]:
    """Candidate hosts, labels first (they are exact), then what the text names. Pure."""
    found: list[str] = []
    for name in HOST_LABELS:
        value = instance_host(str(labels.get(name) or "").strip())
        if value and value.lower() not in found:
            found.append(value.lower())
    if max_text_hosts and text:
        scan = text[:MAX_SCAN_CHARS]
        from_text = [m.group(0) for m in _IPV4.finditer(scan) if _is_ipv4(m.group(0))]
        from_text += [m.group(0).lower() for m in _FQDN.finditer(scan)]
        for host in from_text:
            if max_text_hosts <= 0:
                break
            if host not in found:
                found.append(host)
                max_text_hosts -= 1
    return found


def build_enricher(settings: Settings, now: Monotonic = time.monotonic) -> Enricher | None:
    """The enricher `[enrichment] cmdb` names, or None when CMDB enrichment is off."""
    name = settings.enrichment.cmdb
    if not name:
        return None
    conf = settings.connectors[name]
    return Enricher(build_cmdb(name, conf, now=now), settings.enrichment, conf.cache_seconds, now)


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


class Enricher:
    """Lookups through one CMDB connector with a TTL cache and a per-delivery time budget."""

    def __init__(
        self,
        cmdb: Cmdb,
        settings: EnrichmentSettings,
        cache_seconds: float,
        now: Monotonic = time.monotonic,
    ) -> None:
        self.cmdb = cmdb
        self.settings = settings
        self.now = now
        self.cache = TtlCache(cache_seconds, now)

    def hosts(self, intake: Intake) -> list[str]:
        return hosts_of(
            intake.labels, f"{intake.subject}\n{intake.body}", self.settings.max_text_hosts
        )

    def prefetch(self, hosts: Iterable[str]) -> None:
        """Look up what the cache lacks until the budget is spent; never raises."""
        deadline = self.now() + self.settings.budget_ms / 1000
        for host in hosts:
            if self.cache.get(host)[0]:
                continue
            if self.now() >= deadline:
                return  # the rest is the retry job's
            try:
                self.cache.put(host, self.cmdb.find(host, deadline))
            except BreakerOpen:
                return  # the CMDB is known to be down: skip at once
            except ConnectorError as exc:
                log.info("cmdb %s: %s not looked up: %s", self.cmdb.name, host, exc)

    def labels(self, hosts: Sequence[str]) -> dict[str, str]:
        """From the cache only: the first host's CI as labels, `{}` when the CMDB knows none of
        them, or the pending marker when some host has no answer yet."""
        if not hosts:
            return {}
        unknown = False
        for host in hosts:
            hit, item = self.cache.get(host)
            if hit and item is not None:
                return item.labels()
            unknown = unknown or not hit
        return {LOOKUP_LABEL: "pending"} if unknown else {}

    def lookup(self, hosts: Sequence[str]) -> ConfigItem | None:
        """Outside intake (the retry job): no budget, the connector's timeouts and retries."""
        for host in hosts:
            hit, item = self.cache.get(host)
            if not hit:
                item = self.cmdb.find(host)
                self.cache.put(host, item)
            if item is not None:
                return item
        return None

    def enriched(self, intake: Intake) -> Intake:
        """The intake with `cmdb.*` labels from the cache (or the pending marker)."""
        extra = self.labels(self.hosts(intake))
        if not extra:
            return intake
        # A new dict: the caller's intake (and a retried batch) keeps its own labels.
        return replace(intake, labels={**intake.labels, **extra})


class _HasId(Protocol):
    id: Any


def record_pending(
    session: Session, tickets: Iterable[tuple[_HasId, Mapping[str, Any]]], now: datetime
) -> None:
    """A retry row for each new ticket (ORM or bulk row) whose labels say "pending"."""
    for ticket, labels in tickets:
        if labels.get(LOOKUP_LABEL) == "pending":
            if ticket.id is None:
                session.flush()  # an ORM ticket gets its id here, only when it is needed
            session.add(PendingEnrichment(ticket_id=ticket.id, next_at=now, created_at=now))


@dataclass(frozen=True)
class _Due:
    id: int
    ticket_id: int
    attempts: int
    hosts: list[str]


# What a late CI may change on a ticket nobody has picked up yet.
ROUTED_FIELDS = ("priority", "group", "category")


def cmdb_changes(
    without: Decision, with_cmdb: Decision, current: Mapping[str, object]
) -> dict[str, str]:
    """The routing the CMDB's labels change (pure): fields where the rules decide otherwise
    with the CI than without it, and the ticket does not already hold the new value. Fields
    the CI does not sway are left alone, so a channel's or a person's choice survives."""
    changes: dict[str, str] = {}
    for name in ROUTED_FIELDS:
        old, new = getattr(without, name), getattr(with_cmdb, name)
        if new and new != old and current.get(name) != new:
            changes[name] = str(new)
    return changes


class EnrichmentJob:
    """The scheduler job: look up pending tickets' hosts again and write the CI when it lands.

    With `classify`, a ticket still `new` and unassigned is routed again: an alert whose CMDB
    lookup was late must still reach the site's group and a critical item's priority.
    """

    def __init__(
        self,
        db: Database,
        enricher: Enricher,
        clock: Clock = utc_now,
        batch: int = 50,
        classify: Callable[[Intake], Decision] | None = None,
    ) -> None:
        self.db = db
        self.enricher = enricher
        self.settings = enricher.settings
        self.clock = clock
        self.batch = batch
        self.classify = classify

    def run(self) -> int:
        """One pass over the due rows; returns how many tickets were enriched."""
        due = self._due(self.clock())
        answers: list[tuple[_Due, ConfigItem | None, str]] = []
        for row in due:
            # The lookups happen between two short transactions, never inside one.
            try:
                answers.append((row, self.enricher.lookup(row.hosts), ""))
            except BreakerOpen:
                break  # still down: every other row would fail the same way
            except ConnectorError as exc:
                answers.append((row, None, str(exc)[:500]))
        if not answers:
            return 0
        enriched = 0
        with self.db.unit() as session:
            now = self.clock()
            for row, item, error in answers:
                enriched += self._settle(session, row, item, error, now)
        return enriched

    def _due(self, now: datetime) -> list[_Due]:
        with self.db.unit(readonly=True) as session:
            rows = session.execute(
                select(
                    PendingEnrichment.id,
                    PendingEnrichment.ticket_id,
                    PendingEnrichment.attempts,
                    Ticket.labels,
                    Ticket.subject,
                    Ticket.description,
                )
                .join(Ticket, Ticket.id == PendingEnrichment.ticket_id)
                .where(PendingEnrichment.next_at <= now)
                .order_by(PendingEnrichment.next_at)
                .limit(self.batch)
            ).all()
        limit = self.settings.max_text_hosts
        return [
            _Due(r.id, r.ticket_id, r.attempts, hosts_of(r.labels or {}, f"{r[4]}\n{r[5]}", limit))
            for r in rows
        ]

    def _settle(
        self, session: Session, row: _Due, item: ConfigItem | None, error: str, now: datetime
    ) -> int:
        if error and row.attempts + 1 < self.settings.max_attempts:
            pending = session.get(PendingEnrichment, row.id)
            if pending is not None:
                pending.attempts = row.attempts + 1
                # Back off: 1, 2, 4 ... 32 times retry_seconds between attempts.
                factor = 2 ** min(row.attempts, 5)
                pending.next_at = now + timedelta(seconds=self.settings.retry_seconds * factor)
                pending.last_error = error
            return 0
        # Deleting first makes the row ours: with two daemons on one database only the one
        # whose DELETE hit writes the labels and the journal.
        gone = session.execute(delete(PendingEnrichment).where(PendingEnrichment.id == row.id))
        ticket = session.get(Ticket, row.ticket_id)
        if not gone.rowcount or ticket is None:
            return 0
        labels = {k: v for k, v in (ticket.labels or {}).items() if k != LOOKUP_LABEL}
        actor = service.system_actor("cmdb")
        if error:
            labels[LOOKUP_LABEL] = "failed"
            ticket.labels = labels
            service.journal(
                session, ticket, actor, "enrichment_failed", now, note=error, public=False
            )
            return 0
        if item is None:
            ticket.labels = labels  # the CMDB knows none of its hosts: nothing to add
            return 0
        ticket.labels = {**labels, **item.labels()}
        service.journal(
            session,
            ticket,
            actor,
            "enriched",
            now,
            after=item.labels(),
            note=f"CMDB {self.enricher.cmdb.name}: {item.name}",
            public=False,
        )
        if self.classify is not None and ticket.status == "new" and not ticket.assignee:
            self._reroute(session, ticket, labels, item, now)
        return 1

    def _reroute(
        self,
        session: Session,
        ticket: Ticket,
        plain: dict[str, str],
        item: ConfigItem,
        now: datetime,
    ) -> None:
        assert self.classify is not None
        try:
            source = Source(ticket.source)
        except ValueError:
            source = Source.API
        intake = Intake(
            source=source,
            sender=ticket.requester or "",
            subject=ticket.subject,
            body=ticket.description or "",
            labels={k: v for k, v in plain.items() if not k.startswith("cmdb.")},
        )
        without = self.classify(intake)
        with_cmdb = self.classify(replace(intake, labels={**intake.labels, **item.labels()}))
        current = {name: getattr(ticket, name) for name in ROUTED_FIELDS}
        changes = cmdb_changes(without, with_cmdb, current)
        if not changes:
            return
        before = {name: current[name] for name in changes}
        for name, value in changes.items():
            setattr(ticket, name, value)
        if "priority" in changes:
            service.sla_changed(ticket, now)
        service.journal(
            session,
            ticket,
            service.system_actor("rules"),
            "rerouted",
            now,
            before=before,
            after=changes,
            note=f"rules re-run with CMDB item {item.name}: {', '.join(with_cmdb.rules)}",
            public=False,
        )
