"""Several workers on one PostgreSQL claim rows without ever sending one twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from gateway.intake import Intake, Source
from gateway.outbound.worker import OutboxWorker
from gateway.storage.db import Database
from gateway.storage.models import OutboxMessage


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_never_double_send(db, out_settings, pipeline, sink, clock) -> None:
    sink.start()
    cfg = out_settings.outbound.model_copy(update={"batch": 3})
    settings = out_settings.model_copy(update={"outbound": cfg})
    for n in range(40):
        pipeline.process(Intake(Source.SMTP, f"user{n}@example.com", f"request {n}"))
    go = threading.Barrier(4)

    def work(name: str) -> None:
        # Each worker has its own engine and connections, as separate daemons would.
        own_db = Database(settings.database)
        worker = OutboxWorker(own_db, settings, clock=clock, name=name)
        go.wait()
        while worker.run_once():
            pass
        own_db.dispose()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = Counter(str(m["Message-ID"]) for m in sink.messages())
    assert len(ids) == 40 and set(ids.values()) == {1}
    with db.unit(readonly=True) as s:
        assert {r.state for r in s.scalars(select(OutboxMessage))} == {"sent"}
