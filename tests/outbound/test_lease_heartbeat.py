"""Outbox leases: short, renewed while the worker lives, taken over when it is gone."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from gateway.clock import utc_now
from gateway.intake import Intake, Source
from gateway.outbound.worker import OutboxWorker
from gateway.storage.models import OutboxMessage


def queue_mail(pipeline, n: int) -> None:
    for i in range(n):
        pipeline.process(Intake(Source.SMTP, f"user{i}@example.com", f"打印机坏了 {i}"))


def test_a_dead_workers_rows_go_to_another_after_the_lease(
    db, out_settings, pipeline, clock
) -> None:
    settings = out_settings.model_copy(
        update={"outbound": out_settings.outbound.model_copy(update={"lease_seconds": 30})}
    )
    queue_mail(pipeline, 3)
    dead = OutboxWorker(db, settings, clock=clock, name="dead")
    claimed = dead.claim_batch()
    assert len(claimed) == 3  # then its process is killed: no heartbeat, no record
    other = OutboxWorker(db, settings, clock=clock, name="other")
    clock.now += timedelta(seconds=20)
    assert other.claim_batch() == []  # still within the dead worker's lease
    clock.now += timedelta(seconds=11)
    assert {c.id for c in other.claim_batch()} == {c.id for c in claimed}


def test_a_live_worker_keeps_its_rows_by_renewing(db, out_settings, pipeline, clock) -> None:
    settings = out_settings.model_copy(
        update={"outbound": out_settings.outbound.model_copy(update={"lease_seconds": 30})}
    )
    queue_mail(pipeline, 2)
    slow = OutboxWorker(db, settings, clock=clock, name="slow")
    assert len(slow.claim_batch()) == 2
    other = OutboxWorker(db, settings, clock=clock, name="other")
    for _ in range(5):  # two and a half minutes of a relay that does not answer
        clock.now += timedelta(seconds=29)
        assert slow.renew() == 2
        assert other.claim_batch() == []


def test_the_heartbeat_thread_renews_until_stopped(db, out_settings, pipeline) -> None:
    settings = out_settings.model_copy(
        update={"outbound": out_settings.outbound.model_copy(update={"lease_seconds": 3})}
    )
    queue_mail(pipeline, 1)
    worker = OutboxWorker(db, settings, clock=utc_now, name="live")
    [item] = worker.claim_batch()

    def lease() -> object:
        with db.unit(readonly=True) as s:
            return s.scalar(select(OutboxMessage.lease_until).where(OutboxMessage.id == item.id))

    first = lease()
    stop = threading.Event()
    beat = threading.Thread(target=worker.keep_leases, args=(stop,))
    beat.start()
    time.sleep(2.5)  # one renewal is due every second
    stop.set()
    beat.join(10)
    assert not beat.is_alive()
    assert lease() > first
