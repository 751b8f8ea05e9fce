"""The brief's two SLA examples end to end: pipeline -> scanner -> outbox, on real databases.

"故障工单 2 小时内响应,8 小时内解决" and "P0 故障 1 小时内未响应,自动通知运维经理;4 小时未解决,
升级至 IT 负责人": the right people get the right notification at the right business minute,
once, also with several scanners on one database.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from gateway.config import Settings
from gateway.intake import Intake, Source
from gateway.pipeline import Created, Pipeline
from gateway.sla.scanner import scan
from gateway.storage.db import Database
from gateway.storage.models import OutboxMessage, SlaEscalation, Ticket
from gateway.tickets import service
from gateway.tickets.states import Command
from tests.sla.conftest import T0

M = timedelta(minutes=1)
H = timedelta(hours=1)


def create(pipeline: Pipeline, subject: str, sender: str = "alice@example.com") -> str:
    out = pipeline.process(Intake(Source.SMTP, sender, subject, "details"))
    assert isinstance(out, Created)
    return out.key


def sla_rows(db: Database) -> list[tuple[str, str, str]]:
    """(event, channel, recipient) of every SLA notification queued so far."""
    with db.unit(readonly=True) as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.event.in_(("sla_warning", "sla_breach")))
            .order_by(OutboxMessage.id)
        )
        return [(r.event, r.channel, r.recipient or "") for r in rows]


def at(db: Database, settings: Settings, when: datetime) -> list[tuple[str, str, str]]:
    """Run the scanner at `when`; the SLA notifications it added."""
    before = len(sla_rows(db))
    scan(db, settings, when)
    return sla_rows(db)[before:]


def ticket(db: Database, key: str) -> Ticket:
    with db.unit(readonly=True) as s:
        return s.scalars(select(Ticket).where(Ticket.key == key)).one()


def act(db: Database, key: str, action: str, when: datetime) -> None:
    with db.unit() as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        cmd = Command(action, "olga@example.com", "agent")
        assert not hasattr(service.apply_command(s, t, cmd, "api", when), "reason")


def test_p0_not_answered_in_an_hour_reaches_the_manager_then_the_it_head(
    db, sla_settings, pipeline
) -> None:
    key = create(pipeline, "服务器宕机，官网打不开")
    t = ticket(db, key)
    assert (t.priority, t.sla_policy, t.sla_pinned) == ("P0", "incident-p0", True)
    assert t.response_due == T0 + H and t.resolution_due == T0 + 4 * H
    assert t.next_escalation_at == T0 + 48 * M

    assert at(db, sla_settings, T0 + 47 * M) == []
    assert at(db, sla_settings, T0 + 48 * M) == [("sla_warning", "mail", "ops@example.com")]
    assert at(db, sla_settings, T0 + 59 * M) == []
    assert at(db, sla_settings, T0 + 60 * M) == [
        ("sla_breach", "mail", "ops-manager@example.com"),
        ("sla_breach", "chat", "ops-robot"),
    ]
    assert ticket(db, key).breached
    # Again at the same minute, and from a second scanner (its own engine, as another
    # daemon would have): nothing more.
    assert at(db, sla_settings, T0 + 60 * M) == []
    other = Database(sla_settings.database)
    assert at(other, sla_settings, T0 + 61 * M) == []
    other.dispose()
    assert at(db, sla_settings, T0 + 4 * H - M) == []
    assert at(db, sla_settings, T0 + 4 * H) == [
        ("sla_breach", "mail", "it-head@example.com"),
        ("sla_breach", "chat", "ops-robot"),
    ]
    assert at(db, sla_settings, T0 + 48 * H) == []
    assert ticket(db, key).next_escalation_at is None
    with db.unit(readonly=True) as s:
        kinds = [e.kind for e in s.scalars(select(Ticket).where(Ticket.key == key)).one().events]
    assert kinds.count("sla_warning") == 1 and kinds.count("sla_breach") == 2


def test_incident_responds_in_2_and_resolves_in_8_business_hours(
    db, sla_settings, pipeline
) -> None:
    key = create(pipeline, "应用报错 500")
    t = ticket(db, key)
    assert (t.type, t.priority, t.sla_policy) == ("incident", "P1", "incident")
    # Wed 17:00 + 2 business hours = Thu 10:00 Shanghai; + 8 = Thu 17:00 (lunch excluded).
    assert t.response_due == datetime(2026, 11, 26, 2, tzinfo=UTC)
    assert t.resolution_due == datetime(2026, 11, 26, 9, tzinfo=UTC)
    # 80% of the response target: 60 min on Wednesday, 36 on Thursday = 09:36 Shanghai.
    warn = datetime(2026, 11, 26, 1, 36, tzinfo=UTC)
    assert at(db, sla_settings, warn - M) == []
    assert at(db, sla_settings, warn) == [("sla_warning", "mail", "ops@example.com")]
    act(db, key, "start", warn + 14 * M)  # answered at 09:50: in time
    assert at(db, sla_settings, datetime(2026, 11, 26, 2, tzinfo=UTC)) == []
    # Waiting on the requester from Thu 11:00 to Fri 09:00 stops the clock.
    act(db, key, "pend", datetime(2026, 11, 26, 3, tzinfo=UTC))
    assert at(db, sla_settings, datetime(2026, 11, 26, 9, tzinfo=UTC)) == []
    assert ticket(db, key).resolution_due is None
    act(db, key, "start", datetime(2026, 11, 27, 1, tzinfo=UTC))
    assert at(db, sla_settings, datetime(2026, 11, 27, 1, tzinfo=UTC)) == []
    # 3 business hours used before the pause, 5 left from Fri 09:00 = Fri 15:00 Shanghai.
    due = datetime(2026, 11, 27, 7, tzinfo=UTC)
    assert ticket(db, key).resolution_due == due
    assert at(db, sla_settings, due - M) == []
    # The robot takes breaches of P1 and above ([outbound.chat] min_priority default).
    assert at(db, sla_settings, due) == [
        ("sla_breach", "mail", "ops@example.com"),
        ("sla_breach", "chat", "ops-robot"),
    ]
    assert at(db, sla_settings, due + H) == []


def test_raising_the_priority_recomputes_from_the_history(db, sla_settings, pipeline) -> None:
    key = create(pipeline, "应用报错 500")
    with db.unit() as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        actor = service.Actor("olga@example.com", "agent", "api")
        assert service.update_fields(s, t, {"priority": "P0"}, actor, T0 + 2 * H) is None
    # Two hours into a P0's one-hour response target: the warning and the breach fire now.
    assert at(db, sla_settings, T0 + 2 * H) == [
        ("sla_warning", "mail", "ops@example.com"),
        ("sla_breach", "mail", "ops-manager@example.com"),
        ("sla_breach", "chat", "ops-robot"),
    ]
    t = ticket(db, key)
    assert t.sla_policy == "incident-p0" and t.response_due == T0 + H


def test_a_lost_schedule_never_fires_a_level_twice(db, sla_settings, pipeline) -> None:
    key = create(pipeline, "服务器宕机")
    assert len(at(db, sla_settings, T0 + 2 * H)) == 3
    # As after a restore or a bug: the ticket asks to be looked at again.
    with db.unit() as s:
        s.execute(update(Ticket).values(next_escalation_at=T0))
    assert at(db, sla_settings, T0 + 2 * H) == []
    with db.unit(readonly=True) as s:
        levels = s.scalars(select(SlaEscalation.level).order_by(SlaEscalation.id)).all()
    assert levels == ["incident-p0/response-warning", "incident-p0/response-breach"]
    assert ticket(db, key).breached


def test_bulk_path_sets_due_times(db, sla_settings, pipeline, caplog) -> None:
    caplog.set_level(logging.INFO, "gateway.pipeline")
    outcomes = pipeline.process_batch(
        [(Intake(Source.SMTP, f"u{n}@example.com", "服务器宕机", "x"), None) for n in range(3)]
    )
    assert all(isinstance(o, Created) for o in outcomes)
    assert "fell back" not in caplog.text
    for o in outcomes:
        t = ticket(db, o.key)
        assert t.response_due == T0 + H and t.next_escalation_at == T0 + 48 * M


def test_two_scanners_racing_fire_each_level_once(db, sla_settings, pipeline) -> None:
    keys = [create(pipeline, "服务器宕机", f"u{n}@example.com") for n in range(20)]
    go = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        own = Database(sla_settings.database)  # a daemon of its own
        try:
            go.wait()
            for minute in (48, 60, 240):
                scan(own, sla_settings, T0 + minute * M)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    with db.unit(readonly=True) as s:
        fired = s.scalar(select(func.count()).select_from(SlaEscalation))
    assert fired == 3 * len(keys)
    per = Counter(sla_rows(db))
    assert per[("sla_warning", "mail", "ops@example.com")] == 20
    assert per[("sla_breach", "mail", "ops-manager@example.com")] == 20
    assert per[("sla_breach", "mail", "it-head@example.com")] == 20
    assert per[("sla_breach", "chat", "ops-robot")] == 40
