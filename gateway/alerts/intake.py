"""A webhook's alert batch into the pipeline: one transaction per delivery, committed on return.

The adapters (gateway/ingest/alertmanager.py, zabbix.py, generic.py) parse a body into an
`AlertBatch`; this applies it with `apply_batch` (dedup, lifecycle, batched repeats), creates
tickets for new identities through the pipeline's one ticket-creation path, and queues the
notifications those changes call for.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.alerts.apply import AlertOutcome, apply_batch
from gateway.alerts.model import AlertBatch, Kind
from gateway.config import WebhookSource
from gateway.enrich import hosts_of
from gateway.intake import Intake, without_nul
from gateway.outbound.notify import queue_notifications
from gateway.pipeline import Pipeline, RawInput, raw_fields
from gateway.storage.db import StoreUnavailable
from gateway.storage.models import RawMessage, Ticket
from gateway.tickets import service


def process_alerts(
    pipeline: Pipeline, batch: AlertBatch, raw: RawInput, policy: WebhookSource
) -> list[AlertOutcome]:
    """Apply the alerts and keep the raw body; raises StoreUnavailable like `Pipeline.process`."""
    source = str(batch.source)
    started = time.perf_counter()
    if pipeline.enricher is not None:
        # CMDB lookups before the transaction; new alert tickets read them from the cache.
        hosts = (h for e in batch.events if e.kind is Kind.FIRING for h in hosts_of(e.labels))
        pipeline.enricher.prefetch(hosts)
    try:
        try:
            outcomes = _once(pipeline, batch, raw, policy)
        except IntegrityError:
            # Another connection saw the same new identity first and committed its ledger
            # row; run again and this batch's firing counts as a repeat of it.
            outcomes = _once(pipeline, batch, raw, policy)
    except StoreUnavailable:
        metrics.INTAKE.labels(source, "unavailable").inc()
        raise
    for outcome, n in Counter(o.outcome for o in outcomes).items():
        metrics.INTAKE.labels(source, outcome).inc(n)
    metrics.PIPELINE_SECONDS.labels(source).observe(time.perf_counter() - started)
    return outcomes


def keep_unparsed(pipeline: Pipeline, source: str, raw: RawInput, reason: str) -> None:
    """Keep a webhook body that could not be parsed (the sender gets a 400)."""
    with pipeline.db.unit() as session:
        # The reason names the field, perhaps a key with NUL in it (PostgreSQL refuses NUL).
        _store_raw_body(session, source, raw, pipeline.clock(), reason=without_nul(reason))
    metrics.INTAKE.labels(source, "refused").inc()


def _once(
    pipeline: Pipeline, batch: AlertBatch, raw: RawInput, policy: WebhookSource
) -> list[AlertOutcome]:
    now = pipeline.clock()
    created: list[Ticket] = []
    with pipeline.db.unit() as session:
        raw_id = (
            _store_raw_body(session, str(batch.source), raw, now)
            if policy.keep_raw == "all"
            else None
        )

        def create(session: Session, intake: Intake, parent: Ticket | None) -> Ticket:
            ticket = pipeline.create_ticket(session, intake, raw_id, now, parent=parent)
            session.flush()  # the ledger row and later repeats need ticket.id
            created.append(ticket)
            return ticket

        outcomes = apply_batch(session, batch, policy, now, create)
        # New, reopened and resolved alert tickets notify like any other change (a P0 from
        # monitoring is what the chat robots are for); repeats journal nothing, so a storm
        # queues nothing.
        queue_notifications(session, pipeline.settings, service.journalled(session), now=now)
    for ticket in created:
        metrics.TICKETS_CREATED.labels(ticket.type, ticket.priority).inc()
    return outcomes


def _store_raw_body(
    session: Session, source: str, raw: RawInput, now: datetime, reason: str = ""
) -> int:
    # A Core insert: one row per webhook delivery is on the storm's hot path.
    table = RawMessage.__table__
    values = raw_fields(source, None, raw, now) | {
        "status": "quarantined" if reason else "parsed",
        "reason": reason,
    }
    stmt = insert(table).values(**values).returning(table.c.id)
    return session.connection().execute(stmt).scalar_one()
