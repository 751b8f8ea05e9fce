"""Human ticket numbers (INC-000123): one counter row per prefix, bumped atomically."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Integer, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.storage.models import TicketKeyCounter


def format_key(prefix: str, number: int, digits: int) -> str:
    return f"{prefix}-{number:0{digits}d}"


@cache
def _bump(dialect: str) -> Any:
    """The upsert, built once per dialect: building it per batch cost more than running it."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = TicketKeyCounter.__table__
    n = bindparam("n", type_=Integer())
    stmt = insert(table).values(prefix=bindparam("prefix"), last_value=n)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.prefix], set_={"last_value": table.c.last_value + n}
    ).returning(table.c.last_value)


def allocate_keys(session: Session, prefix: str, digits: int, count: int = 1) -> list[str]:
    """Allocate `count` consecutive keys for `prefix` inside the caller's transaction.

    The upsert takes a row lock on PostgreSQL (SQLite serialises writers anyway), so two
    concurrent transactions can never read the same value; if the caller rolls back, the numbers
    were never used by a ticket, so keys still never repeat. A batch takes its whole range in
    one statement.
    """
    if count < 1:
        return []
    stmt = _bump(session.get_bind().dialect.name)
    last = session.connection().execute(stmt, {"prefix": prefix, "n": count}).scalar_one()
    return [format_key(prefix, n, digits) for n in range(last - count + 1, last + 1)]


def next_key(session: Session, prefix: str, digits: int) -> str:
    """Allocate the next key for `prefix` inside the caller's transaction."""
    return allocate_keys(session, prefix, digits)[0]
