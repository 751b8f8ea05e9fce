"""An alert storm through the HTTP app: 10,000 firings of 50 alerts make exactly 50 tickets."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from gateway.config import Settings
from gateway.storage.db import Database
from gateway.storage.models import Alert, Ticket, TicketEvent
from tests.ingest.alerting import am_alert, am_body, make_client, post_am, webhook_settings

FIRINGS, DISTINCT, BATCH = 10_000, 50, 100


def test_storm_of_10000_firings_makes_50_tickets(settings: Settings, db: Database) -> None:
    client = make_client(webhook_settings(settings), db)
    rng = random.Random(5)
    # Random order with repeats inside a batch: the same alert twice in one body counts twice.
    firings = [f"storm-{i % DISTINCT:02d}" for i in range(FIRINGS)]
    rng.shuffle(firings)
    for start in range(0, FIRINGS, BATCH):
        body = am_body(*(am_alert(fp) for fp in firings[start : start + BATCH]))
        r = post_am(client, body)
        assert r.status_code == 200
    with db.unit(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == DISTINCT
        assert s.scalar(select(func.sum(Ticket.occurrences))) == FIRINGS
        assert s.scalar(select(func.count(func.distinct(Ticket.fingerprint)))) == DISTINCT
        assert s.scalar(select(func.count()).select_from(Alert)) == DISTINCT
        # No journal flood: only the rows of each ticket's creation.
        per_ticket = s.scalar(select(func.count()).select_from(TicketEvent)) / DISTINCT
        assert per_ticket <= 3
