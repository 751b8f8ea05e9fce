"""Storage on real databases: SQLite always, PostgreSQL when GATEWAY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.config import DatabaseSettings, TicketSettings
from gateway.storage import migrate
from gateway.storage.db import Database, StoreUnavailable
from gateway.storage.models import Base, IntakeKey, RawMessage, Ticket, TicketKeyCounter
from gateway.tickets import service
from gateway.tickets.keys import format_key, next_key

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
ACTOR = service.Actor("alice@example.com", "agent", "test")


def test_migrations_match_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"include_object": migrate.include_object}),
            Base.metadata,
        )
    assert diff == []
    assert migrate.current_revision(db.engine) == migrate.head_revision()


def test_upgrade_twice_is_a_no_op(db: Database) -> None:
    migrate.upgrade(db.engine)
    assert migrate.current_revision(db.engine) == migrate.head_revision()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_times_come_back_aware_utc(db: Database) -> None:
    with db.unit() as s:
        t = service.create_ticket(
            s, TicketSettings(), service.NewTicket("incident", "P1", "disk", "api"), ACTOR, NOW
        )
        key = t.key
    with db.unit(readonly=True) as s:
        t = s.scalars(select(Ticket).where(Ticket.key == key)).one()
        assert t.created_at == NOW
        assert t.created_at.tzinfo is not None


def test_keys_have_per_type_prefixes_and_increase(db: Database) -> None:
    cfg = TicketSettings(key_prefixes={"incident": "FLT"}, key_digits=5)
    keys = []
    with db.unit() as s:
        for typ in ("incident", "incident", "change", "request", "inspection"):
            t = service.create_ticket(
                s, cfg, service.NewTicket(typ, "P2", f"t {typ}", "api"), ACTOR, NOW
            )
            keys.append(t.key)
    assert keys == ["FLT-00001", "FLT-00002", "CHG-00001", "REQ-00001", "INS-00001"]
    assert format_key("INC", 123, 6) == "INC-000123"


def test_rolled_back_allocation_does_not_leave_a_duplicate(db: Database) -> None:
    with pytest.raises(RuntimeError), db.unit() as s:
        next_key(s, "INC", 6)
        raise RuntimeError("abort")
    with db.unit() as s:
        first = next_key(s, "INC", 6)
        second = next_key(s, "INC", 6)
    assert (first, second) == ("INC-000001", "INC-000002")


def test_ticket_keys_never_repeat_under_8_concurrent_writers(db: Database) -> None:
    """8 threads, each its own connection and transactions, creating tickets at once."""
    per_writer = 25
    barrier = threading.Barrier(8)

    def writer(n: int) -> list[str]:
        barrier.wait()
        made = []
        for i in range(per_writer):
            with db.unit() as s:
                t = service.create_ticket(
                    s,
                    TicketSettings(),
                    service.NewTicket("incident", "P2", f"w{n}-{i}", "api"),
                    ACTOR,
                    NOW,
                )
                s.flush()
                made.append(t.key)
        return made

    with ThreadPoolExecutor(8) as pool:
        keys = [k for batch in pool.map(writer, range(8)) for k in batch]
    assert len(keys) == 8 * per_writer
    assert len(set(keys)) == len(keys)
    with db.unit(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == len(keys)
        counter = s.get(TicketKeyCounter, "INC")
        assert counter is not None and counter.last_value == len(keys)
    assert sorted(keys) == [format_key("INC", i, 6) for i in range(1, len(keys) + 1)]


def test_raw_messages_are_unique_by_message_id(db: Database) -> None:
    def raw(mid: str | None, data: bytes) -> RawMessage:
        return RawMessage(
            source="smtp",
            message_id=mid,
            sha256="0" * 64,
            received_at=NOW,
            size=len(data),
            data=data,
        )

    with db.unit() as s:
        s.add(raw("a@x", b"\xff\xfe not even text"))
        s.add(raw(None, b"one"))
        s.add(raw(None, b"two"))  # messages without a Message-ID never collide on it
    with pytest.raises(IntegrityError), db.unit() as s:
        s.add(raw("a@x", b"again"))
    with db.unit(readonly=True) as s:
        stored = s.scalars(select(RawMessage).where(RawMessage.message_id == "a@x")).one()
        assert stored.data == b"\xff\xfe not even text"


def test_dedup_ledger_is_unique_per_source_and_key(db: Database) -> None:
    with db.unit() as s:
        s.add(IntakeKey(source="smtp", key="k", first_seen=NOW, last_seen=NOW))
        s.add(IntakeKey(source="api", key="k", first_seen=NOW, last_seen=NOW))
    with pytest.raises(IntegrityError), db.unit() as s:
        s.add(IntakeKey(source="smtp", key="k", first_seen=NOW, last_seen=NOW))


def test_unreachable_database_is_store_unavailable(tmp_path) -> None:
    bad = Database(DatabaseSettings(url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with pytest.raises(StoreUnavailable), bad.unit() as s:
        s.execute(select(1))
    assert bad.ping() is False
